"""XCLIENT and XFORWARD to the upstream (docs/upstreams.md "XCLIENT and XFORWARD"): a real
Postfix upstream (postfix_server.py) relaying to a `sluice sink`, and real smtplib
clients bound to loopback addresses other than sluice's own (127.0.0.1), so that what
Postfix wrote can only have come from XCLIENT or XFORWARD."""
import smtplib

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
