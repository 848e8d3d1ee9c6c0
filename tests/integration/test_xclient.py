"""XCLIENT and XFORWARD to the upstream (docs/upstreams.md "XCLIENT and XFORWARD"): a real
Postfix upstream (postfix_server.py) relaying to a `sluice sink`, and real smtplib
clients bound to loopback addresses other than sluice's own (127.0.0.1), so that what
Postfix wrote can only have come from XCLIENT or XFORWARD."""
import smtplib
import socket
import threading

import pytest

from conftest import ALICE, PASSWORDS, upstream_conf
from postfix_server import PostfixServer

BOB = 'bob@example.org'


def client(relay, source, login=ALICE, helo='client.test'):
    """smtplib over implicit TLS from the loopback address `source`, logged in."""
    c = smtplib.SMTP_SSL(relay.host, relay.smtps_port, local_hostname=helo,
                         context=relay.tls_context(), timeout=20,
                         source_address=(source, 0))
    c.ehlo()
    c.login(login, PASSWORDS[login])
    return c


def send(c, sender, subject):
    c.sendmail(sender, ['rcpt@example.com'],
               ('From: %s\r\nTo: rcpt@example.com\r\nSubject: %s\r\n\r\nhello\r\n'
                % (sender, subject)).encode())


def postfix_received(stored):
    """Postfix's Received: header, the first of the stored message, unfolded."""
    head = stored.split(b'\r\n\r\n', 1)[0].decode()
    first = head.split('\nReceived: ')[0] if head.startswith('Received: ') else ''
    return ' '.join(first.replace('\r\n', '\n').replace('\n\t', ' ').split())


def by_subject(msgs, subject):
    found = [m for m in msgs if ('Subject: %s\r\n' % subject).encode() in m]
    assert len(found) == 1, [m[:600] for m in msgs]
    return found[0]


@pytest.fixture
def postfix(tmp_path, make_sink):
    made = []

    def factory(**kw):
        sink = make_sink(name='pfsink')
        pf = PostfixServer(tmp_path / ('postfix%d' % len(made)), sink.port, **kw)
        pf.sink = sink
        made.append(pf)
        return pf
    yield factory
    for pf in made:
        pf.stop()


def test_xclient_gives_postfix_the_client_address_helo_and_login(postfix, make_relay):
    pf = postfix()
    relay = make_relay(upstream_conf(pf.port, extra=', xclient = true'))
    with client(relay, '127.0.0.7', helo='laptop.example.org') as c:
        send(c, ALICE, 'one')
    stored = pf.sink.wait_messages(1, timeout=30)
    assert len(stored) == 1, pf.log_text()[-3000:]
    rec = postfix_received(stored[0])
    print(stored[0].decode(errors='replace'))
    assert rec.startswith('Received: from laptop.example.org (unknown [127.0.0.7])'), rec
    assert '(Authenticated sender: %s)' % ALICE in rec, rec
    m = pf.wait_log(r'client=unknown\[127\.0\.0\.7\], sasl_method=\S*, sasl_username=(\S+)')
    assert m.group(1) == ALICE


def test_two_clients_on_one_pooled_connection_each_carry_their_own_address(
        postfix, make_relay):
    pf = postfix()
    relay = make_relay(upstream_conf(pf.port, extra=', xclient = true'))
    for source, login, subject in (('127.0.0.7', ALICE, 'from-7'), ('127.0.0.8', BOB, 'from-8'),
                                   ('127.0.0.7', ALICE, 'again-7')):
        with client(relay, source, helo='host%s.example.org' % source[-1], login=login) as c:
            send(c, login, subject)
    stored = pf.sink.wait_messages(3, timeout=30)
    assert len(stored) == 3, pf.log_text()[-3000:]
    for subject, addr, login in (('from-7', '127.0.0.7', ALICE), ('from-8', '127.0.0.8', BOB),
                                 ('again-7', '127.0.0.7', ALICE)):
        rec = postfix_received(by_subject(stored, subject))
        assert rec.startswith('Received: from host%s.example.org (unknown [%s]) '
                              '(Authenticated sender: %s) ' % (addr[-1], addr, login)), rec
    # one upstream connection carried all three
    assert len(relay.logs('upstream.connect')) == 1
    assert [r['reused'] for r in relay.wait_logs('upstream.relay', 3)] == [False, True, True]
    print(pf.log_text())


def test_xforward_when_the_upstream_offers_only_xforward(postfix, make_relay):
    """Postfix logs what XFORWARD says (orig_client, orig_queue_id: the id our 250 gave);
    its Received: names the connection, sluice, as XFORWARD_README says."""
    pf = postfix(xclient_hosts='')
    relay = make_relay(upstream_conf(pf.port, extra=', xclient = true'))
    ids = []
    with client(relay, '127.0.0.9', helo='desk.example.org') as c:
        for subject in ('one', 'two'):
            c.mail(ALICE)
            c.rcpt('rcpt@example.com')
            code, text = c.data(('Subject: %s\r\n\r\nhello\r\n' % subject).encode())
            assert code == 250, text
            ids.append(text.decode().split('queued as ')[1].split()[0])
    stored = pf.sink.wait_messages(2, timeout=30)
    assert len(stored) == 2, pf.log_text()[-3000:]
    for ident in ids:
        pf.wait_log(r'client=localhost\[127\.0\.0\.1\], orig_queue_id=%s, '
                    r'orig_client=unknown\[127\.0\.0\.9\]' % ident.replace('.', r'\.'))
    [ready] = relay.logs('upstream.ready')
    assert ready['xclient'] == 'xforward'
    assert [r['reused'] for r in relay.wait_logs('upstream.relay', 2)] == [False, True]


class RefusesXclient:
    """An SMTP server that lists XCLIENT and then refuses it, as Postfix does for a client
    outside smtpd_authorized_xclient_hosts (550 5.7.0): what a Postfix whose list changed
    under a pooled connection says. One connection at a time; every read bounded."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.commands = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(10)
                self._session(conn)

    def _session(self, conn):
        f = conn.makefile('rb')
        conn.sendall(b'220 refuser ESMTP\r\n')
        for _ in range(20):
            line = f.readline()
            if not line:
                return
            verb = line.split()[0].upper() if line.split() else b''
            self.commands.append(line.strip())
            if verb == b'EHLO':
                conn.sendall(b'250-refuser\r\n250-PIPELINING\r\n'
                             b'250 XCLIENT NAME ADDR PORT PROTO HELO LOGIN\r\n')
            elif verb == b'XCLIENT':
                conn.sendall(b'550 5.7.0 Error: insufficient authorization\r\n')
            elif verb == b'QUIT':
                conn.sendall(b'221 2.0.0 Bye\r\n')
                return
            else:
                conn.sendall(b'503 5.5.1 Error: not expected here\r\n')

    def stop(self):
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def refuser():
    r = RefusesXclient()
    yield r
    r.stop()


def test_a_refused_xclient_fails_closed_and_the_next_server_gets_the_message(
        refuser, make_relay, sink):
    relay = make_relay("{ default = { { host = '127.0.0.1', port = %d, tls = 'none', "
                       "xclient = true }, { host = '127.0.0.1', port = %d, tls = 'none' } } }"
                       % (refuser.port, sink.port))
    with client(relay, '127.0.0.7') as c:
        send(c, ALICE, 'one')
    [stored] = sink.wait_messages(1)
    assert b'Subject: one' in stored
    assert not any(c.startswith((b'MAIL', b'RCPT', b'DATA', b'BDAT')) for c in refuser.commands)
    [error] = relay.logs('upstream.error')
    assert error['stage'] == 'xclient'
    assert error['error'] == 'XCLIENT refused: 550 Error: insufficient authorization'
    assert relay.logs('relay.done')[0]['upstream'] == '127.0.0.1:%d' % sink.port


def test_a_refused_xclient_gets_the_client_451_4_3_0_when_no_server_is_left(
        refuser, make_relay):
    relay = make_relay(upstream_conf(refuser.port, extra=', xclient = true'))
    with client(relay, '127.0.0.7') as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            send(c, ALICE, 'one')
    assert e.value.smtp_code == 451
    assert e.value.smtp_error.decode() == (
        '4.3.0 No upstream available (127.0.0.1:%d: XCLIENT refused: 550 Error: '
        'insufficient authorization)' % refuser.port)
    assert [c.split()[0] for c in refuser.commands] == [b'EHLO', b'XCLIENT']
    addr = [c for c in refuser.commands if c.startswith(b'XCLIENT')][0]
    assert b' ADDR=127.0.0.7 ' in addr and b' LOGIN=alice@example.org' in addr, addr


def test_an_upstream_without_xclient_or_xforward_gets_the_mail_without_them(
        make_relay, sink):
    """xclient = true asks for it where offered; `sluice sink` offers neither: the mail goes
    as it would without the key, and the connection's set-up says so once."""
    relay = make_relay(upstream_conf(sink.port, extra=', xclient = true'))
    with client(relay, '127.0.0.7') as c:
        send(c, ALICE, 'one')
        send(c, ALICE, 'two')
    assert len(sink.wait_messages(2)) == 2
    got = sink.transcript_in()
    assert b'XCLIENT' not in got and b'XFORWARD' not in got
    [warn] = relay.logs('upstream.xclient')
    assert 'offers neither XCLIENT nor XFORWARD' in warn['msg'], warn
    assert relay.logs('upstream.ready')[0]['xclient'] == 'none'


def test_xclient_required_skips_a_server_that_offers_neither(postfix, make_relay):
    pf = postfix(xclient_hosts='', xforward_hosts='')
    relay = make_relay(upstream_conf(pf.port, extra=", xclient = 'required'"))
    with client(relay, '127.0.0.7') as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            send(c, ALICE, 'one')
    assert e.value.smtp_code == 451
    assert e.value.smtp_error.decode().startswith('4.3.0 No upstream available (127.0.0.1:%d: '
                                                  'upstream offers neither XCLIENT nor '
                                                  'XFORWARD' % pf.port), e.value.smtp_error
    assert 'client=' not in pf.log_text()
