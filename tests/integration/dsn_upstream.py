"""An independent SMTP upstream for test_dsn.py: aiosmtpd (Debian's python3-aiosmtpd 1.4),
offering DSN in its EHLO reply or not, recording what each transaction received.

Usage: dsn_upstream.py PORT RECORD_FILE dsn|nodsn

Each accepted message appends one JSON line to RECORD_FILE: the MAIL and RCPT command
arguments exactly as they arrived ("FROM:<a@b> SIZE=12 RET=HDRS"), and the message.
aiosmtpd itself knows no DSN: with `dsn` the RFC 3461 parameters are taken off the
arguments before aiosmtpd parses them (as a DSN server would consume them); with `nodsn`
they are left on, so aiosmtpd refuses them with 555 as any server without DSN may. Prints
"ready" once listening; stops on SIGTERM.
"""
import json
import signal
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

DSN_KEYS = ('RET', 'ENVID', 'NOTIFY', 'ORCPT')


def strip_dsn(arg):
    return ' '.join(w for w in arg.split(' ')
                    if w.split('=', 1)[0].upper() not in DSN_KEYS)


class RecordingSMTP(SMTP):
    """Keeps the raw MAIL and RCPT arguments of the transaction in progress."""

    def __init__(self, handler, offer_dsn, **kw):
        super().__init__(handler, **kw)
        self.offer_dsn = offer_dsn
        self.raw = {'mail': None, 'rcpts': []}

    async def smtp_MAIL(self, arg):
        self.raw = {'mail': arg, 'rcpts': []}
        await super().smtp_MAIL(strip_dsn(arg) if self.offer_dsn and arg else arg)

    async def smtp_RCPT(self, arg):
        if arg:
            self.raw['rcpts'].append(arg)
        await super().smtp_RCPT(strip_dsn(arg) if self.offer_dsn and arg else arg)


class Handler:
    def __init__(self, path, offer_dsn):
        self.path = path
        self.offer_dsn = offer_dsn
        self.count = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.offer_dsn:  # before the last line ("250 HELP")
            responses.insert(len(responses) - 1, '250-DSN')
            # RFC 3461 4.1-4.4: RCPT lines 530 octets longer, MAIL 108
            server.command_size_limits['RCPT'] = 512 + 530
            server.command_size_limits['MAIL'] += 108
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {'mail': server.raw['mail'], 'rcpts': server.raw['rcpts'],
                  'data': envelope.content.decode('utf-8', 'replace')}
        with open(self.path, 'a') as f:
            f.write(json.dumps(record) + '\n')
        return '250 2.0.0 Ok: queued as UP%d' % self.count


class DsnController(Controller):
    def factory(self):
        return RecordingSMTP(self.handler, self.handler.offer_dsn, enable_SMTPUTF8=True,
                             decode_data=False, hostname='upstream.test')


def main():
    port, path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    controller = DsnController(Handler(path, mode == 'dsn'), hostname='127.0.0.1', port=port)
    controller.start()
    print('ready', flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == '__main__':
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
