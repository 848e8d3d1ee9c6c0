"""`sluice sink`, the capturing upstream, checked with real clients.

The relay's integration tests trust what the sink writes (Maildir files, --log lines,
--transcript files), so these tests pin down that evidence: the exact bytes stored,
the numbering that proves connection reuse, and the protocol-level replies.

Run: SLUICE_BIN=build/sluice /usr/bin/python3 -m pytest tests/integration/test_sink.py
"""
import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_read_by_peer

ROOT = Path(__file__).resolve().parents[2]
SLUICE_BIN = os.environ.get('SLUICE_BIN') or str(ROOT / 'build' / 'sluice')

# A missing binary is a failure, never a skip: a skipped suite must not look green.
assert os.access(SLUICE_BIN, os.X_OK), f'no sluice binary at {SLUICE_BIN} (set SLUICE_BIN)'


class Sink:
    """One `sluice sink` process on 127.0.0.1 with an ephemeral port."""

    def __init__(self, tmp_path, args):
        self.dir = tmp_path / f'sink-{time.monotonic_ns()}'
        self.dir.mkdir()
        self.maildir = self.dir / 'maildir'
        self.log = self.dir / 'log.jsonl'
        self.transcript = self.dir / 'transcript'
        self.stderr = self.dir / 'stderr'
        cmd = [SLUICE_BIN, 'sink', '--listen', '127.0.0.1:0', '--log', str(self.log),
               '--transcript', str(self.transcript), '--pid-file', str(self.dir / 'pid')]
        if '--discard' not in args:
            cmd += ['--maildir', str(self.maildir)]
        with open(self.stderr, 'wb') as err:
            self.proc = subprocess.Popen(cmd + list(args), stdout=subprocess.DEVNULL,
                                         stderr=err)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(r'^sink listening on 127\.0\.0\.1:(\d+)$',
                          self.stderr.read_text(errors='replace'), re.M)
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError('sink did not start: ' + self.stderr.read_text(errors='replace'))

    def stop(self):
        """SIGTERM by PID; returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def messages(self):
        return sorted((self.maildir / 'new').iterdir())

    def events(self, name=None):
        lines = self.log.read_text(encoding='utf-8').splitlines() if self.log.exists() else []
        events = [json.loads(line) for line in lines]
        return [e for e in events if name is None or e['event'] == name]

    def smtp(self):
        return smtplib.SMTP('127.0.0.1', self.port, local_hostname='client.test', timeout=10)

    def raw(self):
        sock = socket.create_connection(('127.0.0.1', self.port), timeout=10)
        assert read_reply(sock)[0].startswith(b'220 ')
        return sock


@pytest.fixture
def start_sink(tmp_path):
    sinks = []

    def start(*args):
        sinks.append(Sink(tmp_path, args))
        return sinks[-1]

    yield start
    for s in sinks:
        assert s.stop() == 0, s.stderr.read_text(errors='replace')


@pytest.fixture
def cert(tmp_path):
    key, crt = tmp_path / 'key.pem', tmp_path / 'cert.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', str(key),
                    '-out', str(crt), '-days', '1', '-subj', '/CN=localhost'],
                   check=True, capture_output=True)
    return ['--tls-cert', str(crt), '--tls-key', str(key)]


def insecure_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_reply(sock, count=1):
    """Reads `count` complete (possibly multi-line) replies; returns their last lines."""
    buf, last = b'', []
    while len(last) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        last = [line for line in buf.split(b'\r\n') if re.match(rb'^\d{3} ', line)]
    return last


MESSAGE = (b'From: a@example.org\r\nSubject: sink test\r\n\r\n'
           b'.a line that starts with a dot\r\n..two dots\r\n.\r\n'
           b'8-bit: \xc3\xa9t\xc3\xa9 \xff\xfe\r\n\tend\r\n')


def test_a_message_is_stored_byte_exact_after_dot_unstuffing(start_sink):
    sink = start_sink()
    with sink.smtp() as c:
        c.ehlo()
        assert c.mail('a@example.org', ['BODY=8BITMIME'])[0] == 250
        assert c.rcpt('b@example.net')[0] == 250
        code, text = c.data(MESSAGE)
    assert code == 250 and text.startswith(b'2.0.0 Ok: queued as ')
    [path] = sink.messages()
    assert path.read_bytes() == MESSAGE
    assert text.endswith(path.name.encode())
    assert list((sink.maildir / 'tmp').iterdir()) == []
    [event] = sink.events('sink.message')
    assert event['file'] == 'new/' + path.name
    assert event['mail_from'] == 'a@example.org' and event['rcpt'] == ['b@example.net']
    assert event['size'] == len(MESSAGE) and event['tls'] is False and event['auth'] is None


def test_two_messages_on_one_connection_are_numbered_within_one_session(start_sink):
    sink = start_sink()
    with sink.smtp() as c:
        c.sendmail('a@example.org', ['b@example.net'], b'Subject: 1\r\n\r\none\r\n')
        c.sendmail('a@example.org', ['c@example.net'], b'Subject: 2\r\n\r\ntwo\r\n')
    with sink.smtp() as c:
        c.sendmail('a@example.org', ['d@example.net'], b'Subject: 3\r\n\r\nthree\r\n')
    events = sink.events('sink.message')
    assert [(e['session'], e['msg_in_session']) for e in events] == [(1, 1), (1, 2), (2, 1)]
    assert [e['rcpt'] for e in events] == [['b@example.net'], ['c@example.net'],
                                          ['d@example.net']]
    assert sink.stop() == 0  # waits for the connection threads: sink.close follows the 221
    assert [e['messages'] for e in sink.events('sink.close')] == [2, 1]


def test_reject_rcpt_gives_550_and_keeps_the_other_recipients(start_sink):
    sink = start_sink('--reject-rcpt', 'nobody', '--tempfail-rcpt', 'later')
    with sink.smtp() as c:
        c.ehlo()
        c.mail('a@example.org')
        assert c.rcpt('nobody@example.net') == (550, b'5.1.1 Recipient rejected')
        assert c.rcpt('later@example.net')[0] == 451
        assert c.rcpt('b@example.net')[0] == 250
        assert c.data(b'hello\r\n')[0] == 250
    [event] = sink.events('sink.message')
    assert event['rcpt'] == ['b@example.net']


@pytest.mark.parametrize('option, code, enhanced', [
    ('--reject-data', 554, b'5.6.0'),
    ('--tempfail-data', 451, b'4.3.0'),
])
def test_data_rules_refuse_a_matching_message_and_store_nothing(start_sink, option, code,
                                                                enhanced):
    sink = start_sink(option, 'X-Spam: yes')
    with sink.smtp() as c:
        c.ehlo()
        c.mail('a@example.org')
        c.rcpt('b@example.net')
        reply = c.data(b'X-Spam: yes\r\n\r\nbody\r\n')
        assert reply[0] == code and reply[1].startswith(enhanced)
        assert c.noop()[0] == 250  # the session goes on
    assert sink.messages() == []
    assert [e['code'] for e in sink.events('sink.reject')] == [code]


def test_drop_data_closes_the_connection_without_a_reply(start_sink):
    sink = start_sink('--drop-data', 'DIE')
    c = sink.smtp()
    c.ehlo()
    c.mail('a@example.org')
    c.rcpt('b@example.net')
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.data(b'Subject: DIE\r\n\r\nbody\r\n')
    c.close()
    assert sink.messages() == []
    [drop] = sink.events('sink.drop')
    assert drop['msg_in_session'] == 1
    out = (sink.transcript / 'conn-1.out').read_bytes()
    assert out.endswith(b'354 End data with <CR><LF>.<CR><LF>\r\n')


def test_starttls_then_auth_then_a_message(start_sink, cert):
    sink = start_sink(*cert, '--require-tls', '--auth', 'ann:s3cret')
    with sink.smtp() as c:
        c.ehlo()
        assert c.has_extn('starttls') and not c.has_extn('auth')
        assert c.mail('a@example.org')[0] == 530
        assert c.starttls(context=insecure_context())[0] == 220
        c.ehlo()
        assert c.esmtp_features['auth'].split() == ['PLAIN', 'LOGIN']
        assert not c.has_extn('starttls')
        assert c.mail('a@example.org')[0] == 530  # AUTH first
        c.rset()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login('ann', 'wrong')
        assert c.login('ann', 's3cret')[0] == 235
        c.sendmail('a@example.org', ['b@example.net'], MESSAGE)
    [event] = sink.events('sink.message')
    assert event['tls'] is True and event['auth'] == 'ann'
    assert sink.messages()[0].read_bytes() == MESSAGE


def test_auth_login_is_offered_and_checked(start_sink):
    sink = start_sink('--auth', 'ann:s3cret')
    with sink.smtp() as c:
        c.ehlo()
        c.user, c.password = 'ann', 's3cret'
        assert c.auth('LOGIN', c.auth_login)[0] == 235
        c.sendmail('a@example.org', ['b@example.net'], b'x\r\n')
    assert sink.events('sink.message')[0]['auth'] == 'ann'


def test_implicit_tls_speaks_tls_from_the_first_byte(start_sink, cert):
    sink = start_sink(*cert, '--implicit-tls')
    with smtplib.SMTP_SSL('127.0.0.1', sink.port, context=insecure_context(),
                          timeout=10) as c:
        c.sendmail('a@example.org', ['b@example.net'], MESSAGE)
    assert sink.messages()[0].read_bytes() == MESSAGE
    assert sink.events('sink.message')[0]['tls'] is True


def test_bdat_chunks_are_stored_verbatim_and_concatenated(start_sink):
    sink = start_sink()
    chunks = [b'Subject: bdat\r\n\r\n.not unstuffed\r\n', b'', b'last line\r\n']
    sock = sink.raw()
    sock.sendall(b'EHLO client.test\r\n')
    assert b'CHUNKING' in sock.recv(4096)
    sock.sendall(b'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n'
                 + b'BDAT %d\r\n' % len(chunks[0]) + chunks[0]
                 + b'BDAT 0\r\n'
                 + b'BDAT %d LAST\r\n' % len(chunks[2]) + chunks[2])
    replies = read_reply(sock, 5)
    assert [r[:3] for r in replies] == [b'250'] * 5
    assert replies[-1].startswith(b'250 2.0.0 Ok: queued as ')
    sock.sendall(b'QUIT\r\n')
    assert read_reply(sock)[0].startswith(b'221 ')
    sock.close()
    assert sink.messages()[0].read_bytes() == b''.join(chunks)


def test_pipelined_commands_arrive_in_one_read_and_get_ordered_replies(start_sink):
    sink = start_sink()
    sock = sink.raw()
    sock.sendall(b'EHLO client.test\r\n')
    read_reply(sock)
    batch = b'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n'
    sock.sendall(batch)
    assert [r[:3] for r in read_reply(sock, 3)] == [b'250', b'250', b'354']
    sock.sendall(b'hi\r\n.\r\nRSET\r\nQUIT\r\n')
    assert [r[:3] for r in read_reply(sock, 3)] == [b'250', b'250', b'221']
    sock.close()
    sink.stop()
    received = (sink.transcript / 'conn-1.in').read_bytes()
    assert received == (b'EHLO client.test\r\n' + batch + b'hi\r\n.\r\nRSET\r\nQUIT\r\n')
    reads = (sink.transcript / 'conn-1.reads').read_text().split()
    assert str(len(batch)) in reads  # MAIL, RCPT and DATA came in one segment


def test_data_split_across_reads_at_every_awkward_point_is_stored_exact(start_sink):
    sink = start_sink()
    sock = sink.raw()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b'EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n')
    read_reply(sock, 4)
    # cut between CR and LF, after a line's CRLF, after a leading dot, inside the end
    pieces = [b'A\r', b'\n.', b'.b\r\n', b'.', b'c\r\n\r\n', b'.', b'\r', b'\n']
    for piece in pieces:
        sock.sendall(piece)
        wait_read_by_peer(sock)  # each piece its own read
    assert read_reply(sock)[0].startswith(b'250 2.0.0 ')
    sock.close()
    assert b''.join(pieces) == b'A\r\n..b\r\n.c\r\n\r\n.\r\n'  # what went on the wire
    assert sink.messages()[0].read_bytes() == b'A\r\n.b\r\nc\r\n\r\n'


def test_input_pipelined_behind_starttls_is_discarded(start_sink, cert):
    sink = start_sink(*cert)
    sock = sink.raw()
    sock.sendall(b'EHLO c\r\n')
    read_reply(sock)
    sock.sendall(b'STARTTLS\r\nMAIL FROM:<injected@x.test>\r\n')
    assert read_reply(sock) == [b'220 2.0.0 Ready to start TLS']
    tls = insecure_context().wrap_socket(sock)
    tls.sendall(b'NOOP\r\n')
    assert read_reply(tls) == [b'250 2.0.0 Ok']  # not a reply to the injected MAIL
    tls.close()
    assert b'injected' in (sink.transcript / 'conn-1.in').read_bytes()


def test_a_bare_lf_neither_ends_the_data_nor_is_accepted(start_sink):
    sink = start_sink()
    sock = sink.raw()
    sock.sendall(b'EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n')
    read_reply(sock, 3)
    sock.sendall(b'DATA\r\n')
    read_reply(sock)
    sock.sendall(b'one\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n')  # a smuggling attempt
    assert read_reply(sock)[0].startswith(b'550 5.6.0 ')
    sock.close()
    assert sink.messages() == []


def test_an_overlong_command_line_gets_500_and_the_session_recovers(start_sink):
    sink = start_sink()
    sock = sink.raw()
    sock.sendall(b'NOOP ' + b'x' * 5000 + b'\r\nNOOP\r\n')
    replies = read_reply(sock, 2)
    assert replies[0].startswith(b'500 5.5.2') and replies[1].startswith(b'250 2.0.0')
    sock.close()


def test_size_is_advertised_and_enforced(start_sink):
    sink = start_sink('--max-size', '100')
    with sink.smtp() as c:
        c.ehlo()
        assert c.esmtp_features['size'] == '100'
        assert c.mail('a@example.org', ['SIZE=101'])[0] == 552
        c.mail('a@example.org')
        c.rcpt('b@example.net')
        assert c.data(b'x' * 200 + b'\r\n')[0] == 552
    assert sink.messages() == []


def test_smtputf8_addresses_are_accepted_only_with_the_parameter_and_logged(start_sink):
    sink = start_sink()
    sock = sink.raw()
    sock.sendall('EHLO c\r\nMAIL FROM:<jö@example.org>\r\n'.encode())
    assert read_reply(sock, 2)[1].startswith(b'553 5.6.7')
    sock.close()
    with sink.smtp() as c:
        c.ehlo()
        assert c.mail('jö@example.org', ['SMTPUTF8'])[0] == 250
        assert c.rcpt('"quo\\"te"@example.net')[0] == 250
        assert c.data(b'x\r\n')[0] == 250
    [event] = sink.events('sink.message')  # every line parses as JSON
    assert event['mail_from'] == 'jö@example.org'
    assert event['rcpt'] == ['"quo\\"te"@example.net']


def test_greeting_code_421_refuses_the_connection(start_sink):
    sink = start_sink('--greeting-code', '421')
    with pytest.raises(smtplib.SMTPConnectError) as e:
        sink.smtp()
    assert e.value.smtp_code == 421


def test_inject_before_tls_sends_the_bogus_line_with_the_220(start_sink, cert):
    sink = start_sink(*cert, '--inject-before-tls')
    sock = sink.raw()
    sock.sendall(b'EHLO c\r\n')
    read_reply(sock)
    sock.sendall(b'STARTTLS\r\n')
    assert read_reply(sock, 2) == [b'220 2.0.0 Ready to start TLS', b'250 injected']
    sock.close()
    sink.stop()
    out = (sink.transcript / 'conn-1.out').read_bytes()
    assert out.endswith(b'220 2.0.0 Ready to start TLS\r\n250 injected\r\n')


def test_sigterm_stops_promptly_with_connections_open(start_sink):
    sink = start_sink('--discard')
    sock = sink.raw()
    sock.sendall(b'EHLO c\r\nMAIL FROM:<a@x.test>\r\n')
    read_reply(sock, 2)
    started = time.monotonic()
    assert sink.stop() == 0
    assert time.monotonic() - started < 3
    assert not (sink.dir / 'pid').exists()
    sock.close()
