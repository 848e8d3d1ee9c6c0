"""Slow clients and connection caps (docs/security.md, "Connections and slow clients"):
octets that trickle in cannot extend a deadline -- not in a command line, not in DATA or
BDAT, not in a TLS handshake, not in an AUTH exchange -- and each expiry is one 421 4.4.2
(just the close, mid-handshake), one session.timeout log line and the end of the
connection, within the configured seconds. A client that is slow but keeps going still
gets its mail through. Connections are capped per client network, which policies see as
session.client.

Every trickle is bounded: one octet per INTERVAL, at most a few seconds against
two-second deadlines."""
import select
import socket
import ssl
import time

import pytest

from conftest import ALICE, PASSWORDS, SHIPPED_POLICIES, b64, client_bytes, upstream_conf

T = 2.0          # every deadline below, seconds
INTERVAL = 0.2   # one octet this often
EARLY = 0.25     # the server may see the first octet a moment after the client sent it
LATE = 1.5       # scheduling on a shared machine
TIMEOUTS = 'greeting = %g, command = %g, data = %g, tls = %g' % (T, T, T, T)


@pytest.fixture
def slow(make_relay, sink):
    return make_relay(upstream_conf(sink.port), timeouts=TIMEOUTS,
                      limits='min_data_rate = 500')


def read_to_eof(sock):
    """Everything the server sends until it closes (bounded by the socket timeout)."""
    got = b''
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got, True
            got += chunk
    except (ConnectionResetError, ssl.SSLError):
        return got, True
    except socket.timeout:
        return got, False


def trickle(sock, data):
    """Send data one octet per INTERVAL until the server answers or closes. Returns what
    it sent until it closed, whether it closed, the seconds from the first octet to its
    answer, and how many octets went out."""
    start = time.monotonic()
    sent = 0
    for i in range(len(data)):
        try:
            sock.sendall(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            break
        sent += 1
        if select.select([sock], [], [], INTERVAL)[0]:
            break
    answered = time.monotonic() - start
    got, closed = read_to_eof(sock)
    return got, closed, answered, sent


def assert_in_window(seconds):
    assert T - EARLY <= seconds <= T + LATE, seconds


def assert_timeout_logged(relay, phase):
    [line] = relay.wait_logs('session.timeout')
    assert (line['phase'], line['ip'], line['limit']) == (phase, '127.0.0.1', T), line
    assert T - EARLY <= line['elapsed'] <= T + LATE, line
    return line


def tls_client_hello(relay):
    """The first flight of a real TLS client, as octets to trickle."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = relay.tls_context().wrap_bio(incoming, outgoing, server_hostname=relay.host)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert len(hello) > 100  # far more than T / INTERVAL octets
    return hello


def test_a_command_line_trickled_an_octet_at_a_time_gets_421_at_its_deadline(slow, sink):
    c = slow.raw(tls=False)
    assert c.cmd(b'EHLO client.test').code == 250
    got, closed, answered, sent = trickle(c.sock, b'NOOP ' + b'x' * 60 + b'\r\n')
    assert got == b'421 4.4.2 Timeout: command line not completed in time, closing connection\r\n'
    assert closed
    assert_in_window(answered)
    assert sent < 20
    c.close()
    line = assert_timeout_logged(slow, 'command_line')
    [close] = slow.wait_logs('session.close')
    assert close['reason'] == 'Timeout: command line not completed in time, closing connection'
    assert close['sid'] == line['sid']
    assert list(sink.transcripts.iterdir()) == []


def test_an_idle_client_gets_421_when_the_command_timeout_runs_out(slow, sink):
    c = slow.raw(tls=False)
    started = time.monotonic()
    got, closed = read_to_eof(c.sock)
    assert got == b'421 4.4.2 Timeout waiting for a command, closing connection\r\n'
    assert closed
    assert_in_window(time.monotonic() - started)
    c.close()
    assert_timeout_logged(slow, 'greeting')


@pytest.mark.parametrize('verb', ['DATA', 'BDAT'])
def test_message_content_trickled_an_octet_at_a_time_gets_421_at_its_deadline(slow, sink,
                                                                             verb):
    c = slow.raw_authed()
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode()).code == 250
    assert c.cmd(b'RCPT TO:<bob@example.com>').code == 250
    if verb == 'DATA':
        assert c.cmd(b'DATA').code == 354
    else:
        c.send(b'BDAT 1000 LAST\r\n')
    got, closed, answered, sent = trickle(c.sock, b'Subject: slow\r\n\r\n' + b'y' * 200)
    assert got == b'421 4.4.2 Timeout: message data too slow, closing connection\r\n'
    assert closed
    assert_in_window(answered)
    c.close()
    line = assert_timeout_logged(slow, 'data')
    assert 1 <= line['octets'] <= sent
    assert sink.messages() == [] and list(sink.transcripts.iterdir()) == []


def test_bdat_chunks_of_one_octet_share_one_deadline(slow, sink):
    """Each chunk is a complete command, answered at once; the content's deadline still
    runs from the first one."""
    c = slow.raw_authed()
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode()).code == 250
    assert c.cmd(b'RCPT TO:<bob@example.com>').code == 250
    started = time.monotonic()
    replies = []
    for _ in range(int(3 * T / INTERVAL)):
        c.send(b'BDAT 1\r\nx')
        replies.append(c.reply())
        if replies[-1].code != 250:
            break
        time.sleep(INTERVAL)  # the client's pace, not a wait for the server
    assert replies[-1] == (421, b'4.4.2 Timeout: message data too slow, closing connection')
    assert [r.text for r in replies[:-1]] == [b'2.0.0 %d octets received' % (i + 1)
                                              for i in range(len(replies) - 1)]
    assert_in_window(time.monotonic() - started)
    assert c.at_eof()
    c.close()
    assert_timeout_logged(slow, 'data')


def test_an_auth_continuation_trickled_an_octet_at_a_time_gets_421_at_its_deadline(slow,
                                                                                  sink):
    c = slow.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd(b'AUTH LOGIN') == (334, b'VXNlcm5hbWU6')
    got, closed, answered, sent = trickle(c.sock, (b64(ALICE) * 4).encode() + b'\r\n')
    assert got == (b'421 4.4.2 Timeout: authentication not completed in time, '
                   b'closing connection\r\n')
    assert closed
    assert_in_window(answered)
    c.close()
    assert_timeout_logged(slow, 'auth')
    assert slow.logs('auth.ok') == []


def test_an_implicit_tls_handshake_trickled_an_octet_at_a_time_is_closed_at_its_deadline(
        slow, sink):
    hello = tls_client_hello(slow)
    sock = socket.create_connection((slow.host, slow.smtps_port), timeout=10)
    got, closed, answered, sent = trickle(sock, hello)
    sock.close()
    assert (got, closed) == (b'', True)  # no SMTP before the handshake: nothing to say
    assert_in_window(answered)
    assert sent < len(hello)
    assert_timeout_logged(slow, 'tls')
    [close] = slow.wait_logs('session.close')
    assert close['reason'] == 'TLS handshake timeout'


def test_a_starttls_handshake_trickled_an_octet_at_a_time_is_closed_at_its_deadline(
        slow, sink):
    hello = tls_client_hello(slow)
    c = slow.raw(tls=False)
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd(b'STARTTLS') == (220, b'2.0.0 Ready to start TLS')
    got, closed, answered, sent = trickle(c.sock, hello)
    c.close()
    assert (got, closed) == (b'', True)
    assert_in_window(answered)
    assert_timeout_logged(slow, 'tls')


def test_a_slow_but_steady_client_gets_its_message_through(slow, sink):
    """Pauses just under the deadlines, lines in pieces, content at twice the minimum
    rate: the session lasts several times T and succeeds."""
    c = slow.raw()
    started = time.monotonic()

    def send_in_pieces(line, pieces=3, pause=0.3):
        step = -(-len(line) // pieces)
        for i in range(0, len(line), step):
            c.send(line[i:i + step])
            time.sleep(pause)  # the client's pace: 0.6 s per line, under T

    send_in_pieces(b'EHLO client.test\r\n')
    assert c.reply().code == 250
    time.sleep(T * 0.6)  # thinking before the next command, under T
    send_in_pieces(b'AUTH LOGIN\r\n')
    assert c.reply() == (334, b'VXNlcm5hbWU6')
    send_in_pieces(b64(ALICE).encode() + b'\r\n')
    assert c.reply() == (334, b'UGFzc3dvcmQ6')
    send_in_pieces(b64(PASSWORDS[ALICE]).encode() + b'\r\n')
    assert c.reply() == (235, b'2.7.0 Authentication successful')
    for line in [b'MAIL FROM:<%s>' % ALICE.encode(), b'RCPT TO:<bob@example.com>']:
        send_in_pieces(line + b'\r\n')
        assert c.reply().code == 250
    send_in_pieces(b'DATA\r\n')
    assert c.reply().code == 354
    body = b'Subject: steady\r\n\r\n' + b''.join(b'%03d ' % i + b'z' * 94 + b'\r\n'
                                                for i in range(40))
    data_started = time.monotonic()
    for i in range(0, len(body), 100):
        c.send(body[i:i + 100])
        time.sleep(0.1)  # ~1000 octets/s: twice limits.min_data_rate
    c.send(b'.\r\n')
    reply = c.reply()
    assert reply.code == 250, reply
    assert time.monotonic() - data_started > 1.5 * T  # longer than timeouts.data
    assert c.cmd(b'QUIT').code == 221
    c.close()
    assert time.monotonic() - started > 3 * T
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == body
    assert slow.logs('session.timeout') == []


CLIENT_POLICY = """
local sluice = require('sluice')
return {
  on_connect = function(session)
    sluice.log('info', 'client.seen', { client = session.client, ip = session.client_address })
  end,
}
"""


@pytest.mark.parametrize('address, client', [('127.0.0.1', '127.0.0.1'), ('::1', '::/64')])
def test_a_second_connection_from_one_client_network_gets_421_and_policies_see_its_name(
        make_relay, sink, tmp_path, address, client):
    show = tmp_path / 'show_client.lua'
    show.write_text(CLIENT_POLICY)
    relay = make_relay(upstream_conf(sink.port), address=address,
                       limits='max_connections_per_ip = 1',
                       policies=[str(show)] + SHIPPED_POLICIES)
    with relay.raw(tls=False) as first:
        with relay.raw(tls=False) as second:
            assert second.greeting == (421, b'4.7.0 Too many connections, try again later')
            assert second.at_eof()
        assert first.cmd(b'NOOP') == (250, b'2.0.0 Ok')
    [refused] = relay.wait_logs('session.refuse')
    assert (refused['ip'], refused['client'], refused['reason']) == (
        address, client, 'max_connections_per_ip')
    [seen] = relay.wait_logs('client.seen')
    assert (seen['client'], seen['ip']) == (client, address)
    relay.wait_logs('session.close', 2)
    with relay.raw(tls=False) as again:  # the slot was given back
        assert again.greeting.code == 220
