"""The security defaults of docs/smtp.md: no SMTP smuggling, no STARTTLS injection, AUTH
only under TLS, and every bound (line, size, recipients, connections, errors, time).

Each test checks what the client got, what reached the sink (usually: nothing) and the
daemon's log. Clients are raw sockets so that the exact bytes on the wire are the test's.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_security.py
"""
import random
import re
import socket
import ssl
import time

import pytest

from conftest import ALICE, PASSWORDS, b64, client_bytes, upstream_conf

BARE = b'550 5.6.0 Bare CR or LF in message; lines must end with CRLF'

# What a smuggling client hopes a server takes for the end of the data, each followed by
# a second transaction that must never run.
SMUGGLED = (b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n'
            b'Subject: smuggled\r\n\r\nsmuggled body\r\n')


@pytest.mark.parametrize('body', [
    b'Subject: a\r\n\r\nline\n.\n' + SMUGGLED,
    b'Subject: a\r\n\r\nline\r.\r' + SMUGGLED,
    b'Subject: a\r\n\r\nline\n.\r\n' + SMUGGLED,
    b'Subject: a\r\n\r\nline\r\n.\n' + SMUGGLED,
    b'.\n' + SMUGGLED,
], ids=['LF.LF', 'CR.CR', 'LF.CRLF', 'CRLF.LF', 'dot-LF-first'])
def test_smuggled_end_of_data_neither_ends_the_message_nor_runs_a_second_one(relay, sink,
                                                                           body):
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<alice@example.org>').code == 250
    assert c.cmd(b'RCPT TO:<bob@example.com>').code == 250
    assert c.cmd(b'DATA').code == 354
    c.send(body + b'.\r\nNOOP\r\n')
    assert c.replies(2) == [(550, BARE[4:]), (250, b'2.0.0 Ok')]
    c.send(b'QUIT\r\n')
    assert c.reply() == (221, b'2.0.0 Bye')  # nothing else came before it
    c.close()
    [reject] = relay.wait_logs('smtp.reject')
    assert (reject['code'], reject['enhanced']) == (550, '5.6.0')
    assert [x['commands'] for x in relay.wait_logs('session.close')] == [7]
    assert relay.logs('relay.done') == []
    assert sink.messages() == [] and list(sink.transcripts.iterdir()) == []


def test_message_after_a_refused_smuggling_attempt_is_relayed_alone(relay, sink):
    c = relay.raw_authed()
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n')
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    c.send(b'x\n.\n' + SMUGGLED + b'.\r\n')
    assert c.reply() == (550, BARE[4:])
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<carl@example.com>\r\nDATA\r\n'
           b'Subject: honest\r\n\r\nok\r\n.\r\n')
    replies = c.replies(4)
    assert [r.code for r in replies] == [250, 250, 354, 250]
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: honest\r\n\r\nok\r\n'
    assert sink.events()[0]['rcpt'] == ['carl@example.com']
    assert b'victim' not in sink.transcript_in()


@pytest.mark.parametrize('line', [b'NOOP\n', b'NOOP\rNOOP\r\n', b'\n'])
def test_bare_cr_or_lf_in_a_command_gets_500_and_the_session_goes_on(relay, sink, line):
    c = relay.raw()
    c.send(line + b'NOOP\r\n')
    assert c.replies(2) == [(500, b'5.5.2 Bare CR or LF in command; use CRLF'),
                            (250, b'2.0.0 Ok')]
    c.close()
    [reject] = relay.wait_logs('smtp.reject')
    assert (reject['code'], reject['enhanced']) == (500, '5.5.2')
    assert list(sink.transcripts.iterdir()) == []


def test_a_command_ended_by_a_bare_lf_is_never_executed(relay, sink):
    c = relay.raw_authed()
    c.send(b'MAIL FROM:<alice@example.org>\nRCPT TO:<bob@example.com>\r\n')
    assert c.replies(2) == [(500, b'5.5.2 Bare CR or LF in command; use CRLF'),
                            (503, b'5.5.1 Need MAIL command first')]
    c.close()
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 2)] == [500, 503]
    assert list(sink.transcripts.iterdir()) == []


def test_commands_pipelined_behind_starttls_are_discarded(relay, sink):
    c = relay.raw(tls=False)
    assert c.cmd(b'EHLO client.test').code == 250
    c.send(b'STARTTLS\r\nMAIL FROM:<alice@example.org>\r\nRSET\r\n')
    assert c.reply() == (220, b'2.0.0 Ready to start TLS')
    assert c.buf == b''
    c.sock = relay.tls_context().wrap_socket(c.sock, server_hostname=c.host)
    code, text = c.cmd(b'EHLO client.test')  # the first reply after the handshake
    assert code == 250 and text.startswith(b'relay.test Hello client.test')
    assert c.cmd(b'QUIT') == (221, b'2.0.0 Bye')
    c.close()
    assert relay.logs('smtp.reject') == []
    [close] = relay.wait_logs('session.close')
    assert close['commands'] == 4  # EHLO STARTTLS EHLO QUIT: the injected ones never ran
    assert list(sink.transcripts.iterdir()) == []


def test_after_starttls_mail_without_a_new_ehlo_gets_503(relay, sink):
    c = relay.raw(tls=False)
    assert c.cmd(b'EHLO client.test').code == 250
    c.starttls(relay.tls_context())
    assert c.cmd(b'MAIL FROM:<alice@example.org>') == (503, b'5.5.1 Send EHLO first')
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE]))) == (
        503, b'5.5.1 Send EHLO first')
    c.close()
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 2)] == [503, 503]
    assert relay.logs('auth.ok') == []


def test_auth_is_neither_offered_nor_accepted_before_starttls(relay, sink):
    c = relay.raw(tls=False)
    code, text = c.cmd(b'EHLO client.test')
    assert code == 250 and b'\nSTARTTLS' in text and b'AUTH' not in text
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE]))) == (
        530, b'5.7.0 Must issue a STARTTLS command first')
    assert c.cmd(b'MAIL FROM:<alice@example.org>') == (530, b'5.7.0 Authentication required')
    c.starttls(relay.tls_context())
    code, text = c.cmd(b'EHLO client.test')
    assert b'\nAUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER' in text and b'STARTTLS' not in text
    assert c.cmd(b'STARTTLS') == (503, b'5.5.1 TLS already active')
    c.close()
    assert [(r['code'], r['enhanced']) for r in relay.wait_logs('smtp.reject', 3)] == [
        (530, '5.7.0'), (530, '5.7.0'), (503, '5.5.1')]
    assert relay.logs('auth.ok') == [] and relay.logs('auth.fail') == []
    assert list(sink.transcripts.iterdir()) == []


def test_mail_before_auth_gets_530_under_tls(relay, sink):
    c = relay.raw()
    code, text = c.cmd(b'EHLO client.test')
    assert b'STARTTLS' not in text  # implicit TLS: nothing to start
    assert c.cmd(b'STARTTLS') == (503, b'5.5.1 TLS already active')
    assert c.cmd(b'MAIL FROM:<alice@example.org>') == (530, b'5.7.0 Authentication required')
    assert c.cmd(b'RCPT TO:<bob@example.com>') == (503, b'5.5.1 Need MAIL command first')
    c.close()
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 3)] == [503, 530, 503]
    assert list(sink.transcripts.iterdir()) == []


def test_a_513_octet_command_gets_500_and_a_512_octet_one_is_fine(relay, sink):
    c = relay.raw()
    longest = b'NOOP ' + b'x' * 505 + b'\r\n'
    assert len(longest) == 512
    c.send(longest)
    assert c.reply() == (250, b'2.0.0 Ok')
    c.send(b'NOOP ' + b'x' * 506 + b'\r\nNOOP\r\n')
    assert c.replies(2) == [(500, b'5.5.2 Line too long'), (250, b'2.0.0 Ok')]
    c.send(b'NOOP ' + b'y' * 20000 + b'\r\nNOOP\r\n')  # far too long, in many reads
    assert c.replies(2) == [(500, b'5.5.2 Line too long'), (250, b'2.0.0 Ok')]
    c.close()
    assert [r['text'] for r in relay.wait_logs('smtp.reject', 2)] == ['Line too long'] * 2
    assert list(sink.transcripts.iterdir()) == []


LIMITS = 'max_message_size = 10000, max_recipients = 2, max_connections_per_ip = 3, ' \
         'max_errors = 5'


@pytest.fixture
def small(make_relay, sink):
    return make_relay(upstream_conf(sink.port), limits=LIMITS)


def body_of_size(n):
    head = b'Subject: size\r\n\r\n'
    line = b'y' * 98 + b'\r\n'
    body = head + line * ((n - len(head)) // len(line))
    return body + b'z' * (n - len(body) - 2) + b'\r\n'


def test_declared_size_over_the_limit_gets_552_at_mail(small, sink):
    c = small.raw_authed()
    code, text = c.cmd(b'EHLO client.test')
    assert b'\nSIZE 10000\n' in text
    assert c.cmd(b'MAIL FROM:<alice@example.org> SIZE=10001') == (
        552, b'5.3.4 Message size exceeds fixed maximum size')
    assert c.cmd(b'MAIL FROM:<alice@example.org> SIZE=10000') == (250, b'2.1.0 Sender ok')
    c.close()
    [reject] = small.wait_logs('smtp.reject')
    assert (reject['code'], reject['enhanced']) == (552, '5.3.4')
    assert list(sink.transcripts.iterdir()) == []


@pytest.mark.parametrize('verb', ['DATA', 'BDAT'])
def test_actual_size_over_the_limit_gets_552_and_exactly_the_limit_passes(small, sink,
                                                                          verb):
    c = small.raw_authed()
    for size, expect in [(10001, 552), (10000, 250)]:
        message = body_of_size(size)
        assert len(message) == size
        assert c.cmd(b'MAIL FROM:<alice@example.org>').code == 250
        assert c.cmd(b'RCPT TO:<bob@example.com>').code == 250
        if verb == 'DATA':
            assert c.cmd(b'DATA').code == 354
            c.send(message + b'.\r\n')
        else:
            c.send(b'BDAT %d LAST\r\n' % size + message)
        reply = c.reply()
        assert reply.code == expect, reply
        if expect == 552:
            assert reply.text == b'5.3.4 Message size exceeds fixed maximum size'
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == body_of_size(10000)
    [reject] = small.wait_logs('smtp.reject')
    assert (reject['code'], reject['enhanced']) == (552, '5.3.4')
    assert small.wait_logs('relay.done')[0]['size'] == 10000


@pytest.mark.parametrize('verb', ['DATA', 'BDAT'])
def test_message_near_the_limit_with_commands_pipelined_behind_it_arrives_whole(small, sink,
                                                                             verb):
    message = body_of_size(9500)
    behind = b'NOOP\r\n' * 800  # more than the limit again, already in the read buffer
    c = small.raw_authed()
    head = b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n'
    if verb == 'DATA':
        c.send(head + b'DATA\r\n' + message + b'.\r\n' + behind)
        n = 4
    else:
        c.send(head + b'BDAT %d LAST\r\n' % len(message) + message + behind)
        n = 3
    replies = c.replies(n + 800)
    assert replies[n - 1].code == 250, replies[n - 1]
    assert replies[n:] == [(250, b'2.0.0 Ok')] * 800
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == message
    assert small.wait_logs('relay.done')[0]['size'] == len(message)


def test_oversized_bdat_chunk_is_refused_early_and_the_rest_is_read_in_sync(small, sink):
    c = small.raw_authed()
    big = b'x' * 6000
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n'
           b'BDAT 6000\r\n' + big + b'BDAT 6000\r\n' + big + b'BDAT 3 LAST\r\nz\r\nNOOP\r\n')
    replies = c.replies(6)
    assert [r.code for r in replies] == [250, 250, 250, 552, 503, 250]
    assert replies[3] == (552, b'5.3.4 Message size exceeds fixed maximum size')
    c.close()
    assert sink.messages() == [] and list(sink.transcripts.iterdir()) == []


def test_third_recipient_gets_452_and_the_message_goes_to_two(small, sink):
    c = small.raw_authed()
    assert c.cmd(b'MAIL FROM:<alice@example.org>').code == 250
    assert c.cmd(b'RCPT TO:<one@example.com>').code == 250
    assert c.cmd(b'RCPT TO:<two@example.com>').code == 250
    assert c.cmd(b'RCPT TO:<three@example.com>') == (452, b'4.5.3 Too many recipients')
    assert c.cmd(b'DATA').code == 354
    assert c.cmd(b'Subject: two\r\n\r\nx\r\n.').code == 250
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: two\r\n\r\nx\r\n'
    assert sink.events()[0]['rcpt'] == ['one@example.com', 'two@example.com']
    [reject] = small.wait_logs('smtp.reject')
    assert (reject['code'], reject['enhanced']) == (452, '4.5.3')


def test_fourth_connection_from_one_ip_gets_421_and_the_first_three_still_work(small,
                                                                               sink):
    first = [small.raw(tls=False) for _ in range(3)]
    assert [c.greeting.code for c in first] == [220] * 3
    fourth = small.raw(tls=False)
    assert fourth.greeting == (421, b'4.7.0 Too many connections, try again later')
    assert fourth.at_eof()
    fourth.close()
    # on the implicit-TLS listener there is no SMTP before the handshake: just closed
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError)):
        small.raw(tls=True).close()
    for c in first:
        assert c.cmd(b'NOOP') == (250, b'2.0.0 Ok')
    c = first[0]
    assert c.cmd(b'EHLO client.test').code == 250
    c.starttls(small.tls_context())
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE]))).code == 235
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n'
           b'Subject: three\r\n\r\nx\r\n.\r\n')
    assert [r.code for r in c.replies(4)] == [250, 250, 354, 250]
    for c in first:
        c.close()
    refused = small.wait_logs('session.refuse', 2)
    assert [(r['ip'], r['reason']) for r in refused] == [
        ('127.0.0.1', 'max_connections_per_ip')] * 2
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: three\r\n\r\nx\r\n'
    small.wait_logs('session.close', 5)
    with small.raw(tls=False) as again:  # the slots were given back
        assert again.greeting.code == 220


def test_fifth_bad_command_gets_its_500_then_421(small, sink):
    c = small.raw()
    c.send(b'XYZZY\r\n' * 4 + b'BOGUS\r\nNOOP\r\n')
    replies = c.replies(6)
    assert replies[:5] == [(500, b'5.5.2 Command unrecognized')] * 5
    assert replies[5] == (421, b'4.7.0 Too many errors, closing connection')
    assert c.at_eof()
    c.close()
    assert len(small.wait_logs('smtp.reject', 5)) == 5
    [close] = small.wait_logs('session.close')
    assert close['reason'] == 'Too many errors, closing connection'
    assert list(sink.transcripts.iterdir()) == []


def test_idle_session_times_out_with_421(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), timeouts='command = 1')
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    started = time.monotonic()
    assert c.reply() == (421, b'4.4.2 Timeout waiting for a command, closing connection')
    assert 0.8 < time.monotonic() - started < 10  # 1 s, on a busy machine
    assert c.at_eof()
    c.close()
    [close] = relay.wait_logs('session.close')
    assert close['reason'] == 'Timeout waiting for a command, closing connection'
    assert list(sink.transcripts.iterdir()) == []


def send_garbage(relay, data, tls):
    """Send data on a fresh connection; returns whatever the daemon answered."""
    sock = socket.create_connection((relay.host, relay.smtps_port if tls
                                     else relay.submission_port), timeout=5)
    got = b''
    try:
        if tls:
            sock = relay.tls_context().wrap_socket(sock, server_hostname=relay.host)
        sock.sendall(data)
        if not tls:
            sock.shutdown(socket.SHUT_WR)
        for _ in range(1000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except (ConnectionError, ssl.SSLError, socket.timeout):
        pass
    finally:
        sock.close()
    return got


def assert_only_replies(data):
    for line in data.split(b'\r\n')[:-1]:
        assert re.fullmatch(rb'(220 relay\.test ESMTP sluice ready'
                            rb'|[45]\d\d [45]\.\d\.\d [ -~]+)', line), line


def test_garbage_never_crashes_the_daemon_and_a_good_client_follows(relay, sink):
    rng = random.Random(5321)
    noise = bytes(rng.getrandbits(8) for _ in range(65536))
    assert_only_replies(send_garbage(relay, noise, tls=False))
    assert_only_replies(send_garbage(relay, noise, tls=True))  # inside TLS
    assert_only_replies(send_garbage(relay, b'\0' * 4096 + b'\r\n' * 20, tls=False))
    # a TLS ClientHello where cleartext SMTP is expected
    with pytest.raises((ssl.SSLError, ConnectionError)):
        sock = socket.create_connection((relay.host, relay.submission_port), timeout=5)
        try:
            relay.tls_context().wrap_socket(sock, server_hostname=relay.host)
        finally:
            sock.close()
    # cleartext SMTP, and noise, where a ClientHello is expected
    for data in [b'EHLO client.test\r\n', noise[:4096]]:
        sock = socket.create_connection((relay.host, relay.smtps_port), timeout=5)
        sock.sendall(data)
        try:
            assert sock.recv(65536)[:1] in (b'', b'\x15')  # nothing, or a TLS alert
        except ConnectionResetError:
            pass
        sock.close()
    assert relay.proc.poll() is None
    with relay.smtps() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: after\r\n\r\nfine\r\n') == {}
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: after\r\n\r\nfine\r\n'
    assert relay.wait_logs('relay.done')[0]['code'] == 250
    assert any(c['reason'] == 'TLS handshake failed' for c in relay.logs('session.close'))


@pytest.mark.parametrize('key', ['max_connections', 'max_connections_per_ip'])
def test_connection_limits_refuse_with_421_and_give_the_slot_back(make_relay, sink, key):
    relay = make_relay(upstream_conf(sink.port), limits='%s = 1' % key)
    with relay.raw(tls=False) as first:
        with relay.raw(tls=False) as second:
            assert second.greeting == (421, b'4.7.0 Too many connections, try again later')
            assert second.at_eof()
        assert first.cmd(b'NOOP') == (250, b'2.0.0 Ok')
    [refused] = relay.wait_logs('session.refuse')
    assert refused['reason'] == key
    relay.wait_logs('session.close', 2)
    with relay.smtps() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: slot\r\n\r\nx\r\n') == {}
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: slot\r\n\r\nx\r\n'


def test_mail_beyond_max_messages_gets_421_and_the_session_ends(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), limits='max_messages = 2')
    c = relay.raw_authed()
    for i in range(2):
        c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n'
               b'Subject: %d\r\n\r\nx\r\n.\r\n' % i)
        assert [r.code for r in c.replies(4)] == [250, 250, 354, 250]
    c.send(b'MAIL FROM:<alice@example.org>\r\nNOOP\r\n')
    assert c.reply() == (421, b'4.7.0 Too many messages in one session')
    assert c.at_eof()  # RFC 5321 3.8: 421 closes the channel
    c.close()
    assert [client_bytes(m) for m in sink.wait_messages(2)] == [
        b'Subject: 0\r\n\r\nx\r\n', b'Subject: 1\r\n\r\nx\r\n']
    [close] = relay.wait_logs('session.close')
    assert close['reason'] == 'Too many messages in one session' and close['messages'] == 2


def test_command_beyond_max_commands_gets_421_and_the_session_ends(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), limits='max_commands = 3')
    c = relay.raw()
    c.send(b'NOOP\r\n' * 4 + b'NOOP\r\n')
    assert c.replies(4) == [(250, b'2.0.0 Ok')] * 3 + [
        (421, b'4.7.0 Too many commands, closing connection')]
    assert c.at_eof()
    c.close()
    [close] = relay.wait_logs('session.close')
    assert close['reason'] == 'Too many commands, closing connection'


WAITING = 'Timeout waiting for a command, closing connection'
TOO_SLOW = 'Timeout: message data too slow, closing connection'


@pytest.mark.parametrize('timeouts, before, text', [
    ('greeting = 1', [], WAITING),
    ('data = 1', [b'EHLO client.test', 'AUTH PLAIN ' + b64('\0%s\0%s' % (
        ALICE, PASSWORDS[ALICE])), b'MAIL FROM:<alice@example.org>',
        b'RCPT TO:<bob@example.com>', b'DATA', b'Subject: half a message\r\n'], TOO_SLOW),
    ('data = 1', [b'EHLO client.test', 'AUTH PLAIN ' + b64('\0%s\0%s' % (
        ALICE, PASSWORDS[ALICE])), b'MAIL FROM:<alice@example.org>',
        b'RCPT TO:<bob@example.com>', b'BDAT 100 LAST\r\nonly some'], TOO_SLOW),
], ids=['greeting', 'data', 'bdat'])
def test_each_state_times_out_with_421(make_relay, sink, timeouts, before, text):
    relay = make_relay(upstream_conf(sink.port), timeouts=timeouts)
    c = relay.raw()
    for line in before:
        line = line.encode() if isinstance(line, str) else line
        if line.startswith((b'Subject', b'BDAT')):
            c.send(line)
        else:
            assert c.cmd(line).code in (235, 250, 354), line
    started = time.monotonic()
    assert c.reply() == (421, b'4.4.2 ' + text.encode())
    assert 0.8 < time.monotonic() - started < 10
    assert c.at_eof()
    c.close()
    [close] = relay.wait_logs('session.close')
    assert close['reason'] == text
    assert list(sink.transcripts.iterdir()) == []


def test_tls_handshake_timeout_closes_a_silent_client(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), timeouts='tls = 1')
    sock = socket.create_connection((relay.host, relay.smtps_port), timeout=10)
    started = time.monotonic()
    assert sock.recv(100) == b''  # no SMTP before TLS, so no 421: just closed
    assert 0.8 < time.monotonic() - started < 10
    sock.close()
    [close] = relay.wait_logs('session.close')
    assert close['reason'] == 'TLS handshake timeout'


def test_message_lines_over_1000_octets_are_refused_with_550(relay, sink):
    c = relay.raw_authed()
    longest = b'x' * 998 + b'\r\n'
    stuffed = b'..' + b'y' * 997 + b'\r\n'  # 1001 on the wire, 1000 in the message
    for body, expect in [(longest + stuffed, 250), (b'z' * 999 + b'\r\n', 550)]:
        c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n' +
               body + b'.\r\n')
        replies = c.replies(4)
        assert replies[3].code == expect, replies
    assert replies[3] == (550, b'5.6.0 Message has a line longer than 1000 octets')
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == longest + b'.' + b'y' * 997 + b'\r\n'
    [reject] = relay.wait_logs('smtp.reject')
    assert (reject['code'], reject['enhanced']) == (550, '5.6.0')


def test_refused_bdat_chunks_are_read_so_the_session_stays_in_sync(relay, sink):
    c = relay.raw_authed()
    c.send(b'BDAT 12\r\nMAIL FROM:<>' + b'BDAT 6 LAST\r\nNOOP\r\n' + b'NOOP\r\n'  # no MAIL
           b'MAIL FROM:<alice@example.org>\r\nBDAT 9\r\nRSET\r\nXYZ' + b'NOOP\r\n')  # no RCPT
    assert c.replies(6) == [(503, b'5.5.1 Need MAIL command first')] * 2 + [
        (250, b'2.0.0 Ok'), (250, b'2.1.0 Sender ok'), (554, b'5.5.1 No valid recipients'),
        (250, b'2.0.0 Ok')]
    assert c.cmd(b'DATA') == (554, b'5.5.1 No valid recipients')
    c.close()
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 4)] == [503, 503, 554, 554]
    assert list(sink.transcripts.iterdir()) == []


def test_unknown_mail_or_rcpt_parameters_get_555(relay, sink):
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<alice@example.org> X-EVIL=1') == (
        555, b'5.5.4 Unsupported MAIL parameter')
    assert c.cmd(b'MAIL FROM:<alice@example.org> BODY=BINARYMIME') == (
        555, b'5.5.4 Unsupported BODY type')
    assert c.cmd(b'MAIL FROM:<alice@example.org> SIZE=12 AUTH=<>') == (250, b'2.1.0 Sender ok')
    assert c.cmd(b'RCPT TO:<bob@example.com> X-EVIL=NEVER') == (  # NOTIFY is DSN's now
        555, b'5.5.4 Unsupported RCPT parameter')
    c.close()
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 3)] == [555, 555, 555]


def test_out_of_descriptors_pauses_accepting_instead_of_spinning(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), nofile=40)
    conns = [socket.create_connection((relay.host, relay.submission_port), timeout=10)
             for _ in range(45)]  # more than the daemon has descriptors for
    time.sleep(1)
    errors = relay.logs('listener.error')
    assert 1 <= len(errors) <= 25, len(errors)  # ~10 a second, not one per loop turn
    assert all(e['msg'] == 'accept: Too many open files; pausing' for e in errors)
    for sock in conns[:15]:
        sock.close()
    for sock in conns[15:]:  # the queued ones are served once descriptors are free
        assert sock.recv(100).startswith(b'220 relay.test ESMTP')
        sock.close()
    with relay.smtps() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: fds\r\n\r\nx\r\n') == {}
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: fds\r\n\r\nx\r\n'
