"""DSN (RFC 3461) through the relay, as docs/smtp.md "Delivery status notifications" says:
sluice offers DSN, checks RET and ENVID on MAIL and NOTIFY and ORCPT on RCPT, passes them on
unchanged to an upstream whose EHLO offers DSN, drops them (and says so in the 250 and the
log) for one that does not, and shows them to policies as tx fields.

The upstream is aiosmtpd (tests/integration/dsn_upstream.py), an independent SMTP server
that records the MAIL and RCPT arguments exactly as they arrived; without DSN it refuses
the parameters with 555, as a server that does not know them may. The last test goes
through a real Postfix (postfix_server.py), whose "relayed" report shows that it got
every parameter.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_dsn.py
"""
import json
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import (ALICE, SHIPPED_POLICIES, free_port, stop, upstream_conf, wait_until)

HERE = pathlib.Path(__file__).resolve().parent
BODY = b'From: Alice <alice@example.org>\r\nTo: <x@example.com>\r\nSubject: dsn\r\n\r\nhi\r\n'


class Upstream:
    """dsn_upstream.py on a free loopback port; `records()` is what it accepted."""

    def __init__(self, tmp, offer_dsn):
        self.port = free_port()
        self.path = tmp / ('upstream-%s.jsonl' % ('dsn' if offer_dsn else 'nodsn'))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / 'dsn_upstream.py'), str(self.port), str(self.path),
             'dsn' if offer_dsn else 'nodsn'],
            stdout=subprocess.PIPE, stderr=open(tmp / 'upstream.err', 'wb'))
        assert self.proc.stdout.readline().strip() == b'ready'

    def records(self):
        if not self.path.exists():
            return []
        return [json.loads(l) for l in self.path.read_text().splitlines() if l.strip()]

    def wait_records(self, n):
        wait_until(lambda: len(self.records()) >= n, '%d message(s) upstream' % n)
        return self.records()

    def stop(self):
        stop(self.proc)


@pytest.fixture
def make_upstream(tmp_path):
    made = []

    def factory(offer_dsn):
        u = Upstream(tmp_path, offer_dsn)
        made.append(u)
        return u
    yield factory
    for u in made:
        u.stop()


def send_with_dsn(relay):
    """One message: RET, ENVID, and three recipients with NOTIFY/ORCPT, with neither,
    with NOTIFY=NEVER. The reply to the end of the data, as (code, text)."""
    c = relay.smtps()
    try:
        assert c.mail(ALICE, ['RET=HDRS', 'ENVID=QQ314159+2Bx'])[0] == 250
        assert c.rcpt('x@example.com', ['NOTIFY=SUCCESS,FAILURE',
                                        'ORCPT=rfc822;x+2Bold@example.com'])[0] == 250
        assert c.rcpt('y@example.com')[0] == 250
        assert c.rcpt('z@example.com', ['notify=never'])[0] == 250
        code, text = c.data(BODY)
        return code, text.decode()
    finally:
        c.quit()


def test_dsn_parameters_reach_an_upstream_that_offers_dsn_unchanged(make_relay,
                                                                     make_upstream):
    up = make_upstream(True)
    relay = make_relay(upstream_conf(up.port))
    code, text = send_with_dsn(relay)
    assert code == 250 and 'DSN not relayed' not in text, text
    rec = up.wait_records(1)[0]
    assert re.fullmatch(r'FROM:<alice@example\.org> SIZE=\d+ RET=HDRS ENVID=QQ314159\+2Bx',
                        rec['mail']), rec['mail']
    assert rec['rcpts'] == ['TO:<x@example.com> NOTIFY=SUCCESS,FAILURE '
                            'ORCPT=rfc822;x+2Bold@example.com',
                            'TO:<y@example.com>',
                            'TO:<z@example.com> NOTIFY=never']
    done = relay.wait_logs('relay.done')[0]
    assert done['code'] == 250 and 'dsn' not in done


def test_dsn_parameters_are_dropped_and_the_client_told_without_upstream_dsn(make_relay,
                                                                              make_upstream):
    up = make_upstream(False)
    relay = make_relay(upstream_conf(up.port))
    code, text = send_with_dsn(relay)
    assert code == 250, text
    assert text.endswith('; DSN not relayed: the upstream does not offer it'), text
    rec = up.wait_records(1)[0]
    assert re.fullmatch(r'FROM:<alice@example\.org> SIZE=\d+', rec['mail']), rec['mail']
    assert rec['rcpts'] == ['TO:<x@example.com>', 'TO:<y@example.com>', 'TO:<z@example.com>']
    assert relay.wait_logs('relay.done')[0]['dsn'] == 'dropped'
    assert relay.wait_logs('upstream.relay')[0]['dsn'] == 'dropped'


def test_a_message_without_dsn_parameters_is_not_flagged(make_relay, make_upstream):
    up = make_upstream(False)
    relay = make_relay(upstream_conf(up.port))
    c = relay.smtps()
    c.sendmail(ALICE, ['x@example.com'], BODY)
    c.quit()
    assert up.wait_records(1)[0]['rcpts'] == ['TO:<x@example.com>']
    assert 'dsn' not in relay.wait_logs('relay.done')[0]


BAD = [
    # (command, code, enhanced, text)
    (b'MAIL FROM:<alice@example.org> RET=BODY', 501, b'5.5.4',
     b'Bad RET parameter: FULL or HDRS'),
    (b'MAIL FROM:<alice@example.org> RET=FULL RET=FULL', 501, b'5.5.4',
     b'Duplicate DSN parameter'),
    (b'MAIL FROM:<alice@example.org> ENVID=' + b'x' * 101, 501, b'5.5.4',
     b'Bad ENVID parameter: xtext of printable ASCII, 1 to 100 characters'),
    (b'MAIL FROM:<alice@example.org> ENVID=a+0Db', 501, b'5.5.4',
     b'Bad ENVID parameter: xtext of printable ASCII, 1 to 100 characters'),
    (b'MAIL FROM:<alice@example.org> ENVID=a+2b', 501, b'5.5.4',
     b'Bad ENVID parameter: xtext of printable ASCII, 1 to 100 characters'),
    (b'MAIL FROM:<alice@example.org> NOTIFY=SUCCESS', 555, b'5.5.4',
     b'Unsupported MAIL parameter'),
]

BAD_RCPT = [
    (b'RCPT TO:<x@example.com> NOTIFY=NEVER,SUCCESS', 501, b'5.5.4',
     b'NOTIFY=NEVER cannot be combined with other values'),
    (b'RCPT TO:<x@example.com> NOTIFY=ALWAYS', 501, b'5.5.4',
     b'Bad NOTIFY parameter: NEVER, or a list of SUCCESS, FAILURE, DELAY'),
    (b'RCPT TO:<x@example.com> NOTIFY=SUCCESS NOTIFY=DELAY', 501, b'5.5.4',
     b'Duplicate DSN parameter'),
    (b'RCPT TO:<x@example.com> ORCPT=x@example.com', 501, b'5.5.4',
     b'Bad ORCPT parameter: addr-type;xtext, up to 500 characters'),
    (b'RCPT TO:<x@example.com> ORCPT=rfc822;a+ZZ', 501, b'5.5.4',
     b'Bad ORCPT parameter: addr-type;xtext, up to 500 characters'),
    (b'RCPT TO:<x@example.com> ORCPT=x400;c=us', 501, b'5.5.4',
     b'Syntax error in parameters or arguments'),  # '=' is not even an esmtp-value
    (b'RCPT TO:<x@example.com> ORCPT=x400;c+3Dus', 555, b'5.5.4',
     b'Unsupported ORCPT address type: rfc822 or utf-8'),
    (b'RCPT TO:<x@example.com> ORCPT=rfc822;a@b ORCPT=rfc822;a@b', 501, b'5.5.4',
     b'Duplicate DSN parameter'),
    (b'RCPT TO:<x@example.com> RET=FULL', 555, b'5.5.4', b'Unsupported RCPT parameter'),
]


def test_bad_dsn_parameters_get_the_reply_that_names_the_rule(make_relay, make_upstream):
    up = make_upstream(True)
    relay = make_relay(upstream_conf(up.port), limits='max_errors = 100')
    c = relay.raw_authed()
    for line, code, enh, text in BAD:
        assert c.cmd(line) == (code, enh + b' ' + text), line
    assert c.cmd(b'MAIL FROM:<alice@example.org> RET=full ENVID=ok')[0] == 250
    for line, code, enh, text in BAD_RCPT:
        assert c.cmd(line) == (code, enh + b' ' + text), line
    # the transaction goes on: a good recipient after the bad ones is taken
    assert c.cmd(b'RCPT TO:<x@example.com> NOTIFY=DELAY')[0] == 250
    c.close()
    rejects = relay.wait_logs('smtp.reject', n=len(BAD) + len(BAD_RCPT))
    assert [(r['code'], r['text'].encode()) for r in rejects] == \
        [(code, text) for _, code, _, text in BAD + BAD_RCPT]
    assert up.records() == []


POLICY = """
local sluice = require('sluice')
return {
  on_rcpt = function(session, tx, rcpt)
    if tx.rcpt_notify == 'NEVER' then
      return sluice.reject(550, '5.7.1', 'no NEVER for ' .. rcpt .. ' orcpt ' ..
                           tostring(tx.rcpt_orcpt))
    end
  end,
  on_data = function(session, tx)
    return sluice.reject(550, '5.7.1', table.concat({
      tx.dsn_ret, tx.dsn_envid, tostring(tx.dsn_notify[1]), tostring(tx.dsn_notify[2]),
      tostring(tx.dsn_orcpt[1]), tostring(tx.dsn_orcpt[2]) }, ' '))
  end,
}
"""


def test_policies_read_the_dsn_parameters_as_tx_fields(make_relay, make_upstream, tmp_path):
    up = make_upstream(True)
    policy = tmp_path / 'dsn.lua'
    policy.write_text(POLICY)
    relay = make_relay(upstream_conf(up.port), policies=SHIPPED_POLICIES + [str(policy)])
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<alice@example.org> RET=hdrs ENVID=id+2B1')[0] == 250
    assert c.cmd(b'RCPT TO:<x@example.com> NOTIFY=success,delay '
                 b'ORCPT=rfc822;old+2Bx@example.com')[0] == 250
    assert c.cmd(b'RCPT TO:<y@example.com>')[0] == 250
    assert c.cmd(b'RCPT TO:<z@example.com> NOTIFY=NEVER ORCPT=utf-8;z\\x{E4}@example.com') == \
        (550, b'5.7.1 no NEVER for z@example.com orcpt utf-8;z\\x{E4}@example.com')
    assert c.cmd(b'DATA')[0] == 354
    assert c.cmd(BODY + b'.') == (
        550, b'5.7.1 HDRS id+1 SUCCESS,DELAY false rfc822;old+x@example.com false')
    c.close()
    assert up.records() == []


def test_rcpt_lines_may_be_530_octets_longer_for_dsn_parameters(make_relay, make_upstream):
    """RFC 3461 4.1-4.2: NOTIFY and ORCPT lengthen RCPT by 530 octets: a 500-character ORCPT
    behind a long address still fits, one more octet is a line too long."""
    up = make_upstream(True)
    relay = make_relay(upstream_conf(up.port))
    rcpt = b'r' * 60 + b'@' + b'd' * 60 + b'.example.com'
    orcpt = b'rfc822;' + b'o' * 493
    line = b'RCPT TO:<' + rcpt + b'> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=' + orcpt
    assert 512 < len(line) + 2 <= 512 + 530
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<alice@example.org>')[0] == 250
    assert c.cmd(line) == (250, b'2.1.5 Recipient ok')
    assert c.cmd(b'RCPT TO:<x@example.com> ' + b'X' * (1042 - 2 - 24 + 1)) == \
        (500, b'5.5.2 Line too long')
    r = c.cmd(b'DATA')
    assert r[0] == 354, r
    assert c.cmd(BODY + b'.')[0] == 250
    c.close()
    assert up.wait_records(1)[0]['rcpts'] == [line[len(b'RCPT '):].decode()]


def test_postfix_takes_the_parameters_and_sends_the_relayed_dsn_they_ask_for(
        make_relay, make_sink, tmp_path):
    """End to end with a real Postfix upstream (it offers DSN) relaying on to a `sluice sink`
    (which does not): Postfix does what RFC 3461 section 5.2.2 asks of it and reports
    "relayed" to the sender, a report only the parameters sluice passed on can have made:
    the ENVID, the ORCPT, NOTIFY=SUCCESS, and RET=HDRS (headers only, no body)."""
    from postfix_server import PostfixServer
    sink = make_sink(name='pfsink')
    pf = PostfixServer(tmp_path / 'postfix', sink.port, xclient_hosts='', xforward_hosts='')
    try:
        relay = make_relay(upstream_conf(pf.port))
        c = relay.raw_authed(ALICE)
        assert c.cmd(b'MAIL FROM:<%s> RET=HDRS ENVID=QQ314159+2Bx' % ALICE.encode())[0] == 250
        assert c.cmd(b'RCPT TO:<x@example.com> NOTIFY=SUCCESS,FAILURE '
                     b'ORCPT=rfc822;orig+2Bx@example.com')[0] == 250
        assert c.cmd(b'DATA')[0] == 354
        reply = c.cmd(BODY + b'[body-marker]\r\n.')
        c.close()
        assert reply[0] == 250 and b'DSN not relayed' not in reply[1], reply
        stored = sink.wait_messages(2, timeout=30)
        assert len(stored) == 2, pf.log_text()[-3000:]
        report = [m for m in stored if b'multipart/report' in m]
        assert len(report) == 1, [m[:400] for m in stored]
        text = report[0].decode(errors='replace')
        # the report shows the values decoded (RFC 3464): xtext's +2B is '+'
        assert 'Original-Envelope-Id: QQ314159+x\r\n' in text, text
        assert re.search(r'Original-Recipient: rfc822;\s*orig\+x@example.com', text), text
        assert re.search(r'Action: relayed', text), text
        assert 'Subject: dsn' in text        # RET=HDRS: the headers come back ...
        assert '[body-marker]' not in text   # ... and not the body
    finally:
        pf.stop()
