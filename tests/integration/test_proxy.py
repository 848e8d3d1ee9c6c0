"""PROXY protocol v1 and v2 on listeners (docs/security.md, "PROXY protocol"): behind a
real HAProxy (send-proxy-v2 to the implicit-TLS listener, send-proxy to the STARTTLS
one) the client's address reaches session.open and the Received: header; from raw
sockets, malformed, truncated, untrusted and slow headers close the connection with
proxy.refuse or proxy.bad and no greeting."""
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import ALICE, PASSWORDS, free_port, lua_str, stop, upstream_conf, wait_until

CLIENT = '127.0.0.2'  # the client's own loopback source, which only the header carries
V2_SIG = b'\r\n\r\n\x00\r\nQUIT\n'
PROXY_TIMEOUT = 1


def v2_header(src, dst, sport, dport, cmd=0x21):
    fam = socket.AF_INET6 if ':' in src else socket.AF_INET
    body = (socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) +
            struct.pack('>HH', sport, dport))
    return V2_SIG + bytes([cmd, 0x21 if fam == socket.AF_INET6 else 0x11]) + \
        struct.pack('>H', len(body)) + body


def listener(name, port, tls, trusted="'127.0.0.1/32', '::1'"):
    return ("{ name = %s, address = '127.0.0.1', port = %d, tls = %s,"
            " proxy_protocol = true, proxy_trusted = { %s }, proxy_timeout = %d },"
            % (lua_str(name), port, lua_str(tls), trusted, PROXY_TIMEOUT))


@pytest.fixture
def proxied(make_relay, sink):
    """A relay whose two listeners take a PROXY header from 127.0.0.1 only."""
    smtps, sub = free_port(), free_port()
    r = make_relay(upstream_conf(sink.port),
                   listeners=listener('pp-smtps', smtps, 'implicit') + '\n    ' +
                   listener('pp-submission', sub, 'starttls'))
    r.smtps_port, r.submission_port = smtps, sub
    return r


class HAProxy:
    """Debian's haproxy in the foreground with a generated configuration: frontend v2
    sends PROXY v2 to the relay's implicit-TLS listener, v1 sends v1 to STARTTLS."""

    def __init__(self, tmp, relay):
        self.v2_port, self.v1_port = free_port(), free_port()
        self.conf = tmp / 'haproxy.cfg'
        self.conf.write_text("""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v2
    bind 127.0.0.1:%d
    default_backend smtps
frontend v1
    bind 127.0.0.1:%d
    default_backend submission
backend smtps
    server s 127.0.0.1:%d send-proxy-v2
backend submission
    server s 127.0.0.1:%d send-proxy
""" % (self.v2_port, self.v1_port, relay.smtps_port, relay.submission_port))
        self.err = tmp / 'haproxy.err'
        self.proc = subprocess.Popen([shutil.which('haproxy') or '/usr/sbin/haproxy',
                                      '-db', '-f', str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.err, 'wb'))
        wait_until(lambda: self._listening(self.v2_port) and self._listening(self.v1_port),
                   'haproxy listening', timeout=10)

    def _listening(self, port):
        assert self.proc.poll() is None, self.err.read_text()
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return True
        except OSError:
            return False


@pytest.fixture
def haproxy(tmp_path, proxied):
    h = HAProxy(tmp_path, proxied)
    yield h
    stop(h.proc)


def session_open_for(relay, port):
    """The session.open line of the client whose source port is port."""
    found = []
    wait_until(lambda: found.extend(o for o in relay.logs('session.open')
                                    if o.get('port') == port) or found,
               'session.open for port %d' % port)
    return found[0]


def send_one(c):
    c.login(ALICE, PASSWORDS[ALICE])
    c.sendmail(ALICE, ['bob@example.org'], b'Subject: proxied\r\n\r\nhello\r\n')
    c.quit()


def test_haproxy_v2_gives_the_client_address_to_implicit_tls(proxied, haproxy, sink):
    c = smtplib.SMTP_SSL('127.0.0.1', haproxy.v2_port, local_hostname='client.test',
                         context=proxied.tls_context(), timeout=10,
                         source_address=(CLIENT, 0))
    port = c.sock.getsockname()[1]
    c.ehlo()
    send_one(c)
    opened = session_open_for(proxied, port)
    assert (opened['ip'], opened['proxy'], opened['listener']) == \
        (CLIENT, '127.0.0.1', 'pp-smtps')
    stored = sink.wait_messages(1)[0]
    assert b'Received: from client.test ([127.0.0.2])' in stored, stored[:200]


def test_haproxy_v1_gives_the_client_address_to_starttls(proxied, haproxy, sink):
    c = smtplib.SMTP('127.0.0.1', haproxy.v1_port, local_hostname='client.test', timeout=10,
                     source_address=(CLIENT, 0))
    port = c.sock.getsockname()[1]
    c.ehlo()
    c.starttls(context=proxied.tls_context())
    c.ehlo()
    send_one(c)
    opened = session_open_for(proxied, port)
    assert (opened['ip'], opened['proxy'], opened['listener']) == \
        (CLIENT, '127.0.0.1', 'pp-submission')
    stored = sink.wait_messages(1)[0]
    assert b'Received: from client.test ([127.0.0.2])' in stored, stored[:200]


def connect(relay, port=None, source=None):
    return socket.create_connection(('127.0.0.1', port or relay.submission_port), timeout=10,
                                    source_address=(source, 0) if source else None)


def read_all(sock):
    """Everything the server sends until it closes the connection (a reset, when it
    closed with our octets unread, is a close too)."""
    out = b''
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def test_a_v2_header_then_the_client_hello_in_one_segment_starts_tls(proxied):
    """The header is read exactly: the ClientHello right behind it is TLS's, not lost."""
    ctx = proxied.tls_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname='127.0.0.1')
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    s = connect(proxied, proxied.smtps_port)
    s.sendall(v2_header('2001:db8::7', '2001:db8::1', 40000, 465) + out.read())
    greeting = b''
    while b'\r\n' not in greeting:
        try:
            tls.do_handshake()
            greeting += tls.read(4096)
        except ssl.SSLWantReadError:
            pass
        pending = out.read()
        if pending:
            s.sendall(pending)
        if b'\r\n' not in greeting:
            data = s.recv(65536)
            assert data, 'closed during the handshake'
            inc.write(data)
    assert greeting.startswith(b'220 relay.test'), greeting
    opened = session_open_for(proxied, 40000)
    assert (opened['ip'], opened['proxy']) == ('2001:db8::7', '127.0.0.1')
    s.close()


def test_v2_local_and_v1_unknown_keep_the_connection_address(proxied):
    for header in (V2_SIG + b'\x20\x00\x00\x00', b'PROXY UNKNOWN\r\n'):
        s = connect(proxied)
        port = s.getsockname()[1]
        s.sendall(header)
        assert s.recv(4096).startswith(b'220 relay.test')
        opened = session_open_for(proxied, port)
        assert (opened['ip'], opened['proxy']) == ('127.0.0.1', '127.0.0.1')
        s.close()


def test_an_untrusted_source_is_closed_without_a_greeting(proxied):
    s = connect(proxied, source=CLIENT)
    s.sendall(b'PROXY TCP4 192.0.2.7 127.0.0.1 1 2\r\n')
    assert read_all(s) == b''
    refused = proxied.wait_logs('proxy.refuse')
    assert [(o['ip'], o['reason']) for o in refused] == \
        [(CLIENT, 'source not in proxy_trusted')]
    assert proxied.logs('session.open') == []


@pytest.mark.parametrize('header, reason', [
    (b'PROXY TCP4 192.0.2.7 198.51.100.1 54321\r\n',
     'v1: expected 4 fields after the protocol'),
    (b'PROXY TCP4 192.0.2.7 198.51.100.1 99999 587\r\n', 'v1: bad port'),
    (b'EHLO client.test\r\n', 'no PROXY signature'),
    (b'PROXY UNKNOWN ' + b'x' * 100 + b'\r\n', 'v1: no CRLF within 107 octets'),
    (V2_SIG + b'\x21\x12\x00\x0c' + bytes(12), 'v2: datagram transport'),
    (V2_SIG + b'\x21\x11\x00\xff' + bytes(255), 'v2: longer than 232 octets'),
])
def test_a_malformed_header_is_closed_with_proxy_bad(proxied, header, reason):
    s = connect(proxied)
    s.sendall(header)
    assert read_all(s) == b''
    bad = proxied.wait_logs('proxy.bad')
    assert [(o['ip'], o['reason']) for o in bad] == [('127.0.0.1', reason)]
    assert proxied.logs('session.open') == []


def test_a_truncated_header_is_proxy_bad_when_the_client_leaves(proxied):
    s = connect(proxied)
    s.sendall(b'PROXY TCP4 192.0.2.7 ')
    s.shutdown(socket.SHUT_WR)
    assert read_all(s) == b''
    bad = proxied.wait_logs('proxy.bad')
    assert [o['reason'] for o in bad] == ["connection closed before the header's end"]


def test_a_trickling_header_is_cut_at_proxy_timeout(proxied):
    s = connect(proxied, proxied.smtps_port)
    start = time.monotonic()
    s.sendall(b'PROXY TCP4 ')
    s.settimeout(0.2)
    closed = False
    for octet in b'192.0.2.7 198.51.100.1 54321 465' * 3:   # one octet per 0.2 s
        try:
            if s.recv(1) == b'':
                closed = True
                break
        except socket.timeout:
            pass
        except ConnectionResetError:  # closed with our last octet unread: RST, not FIN
            closed = True
            break
        try:
            s.send(bytes([octet]))
        except OSError:
            closed = True
            break
    elapsed = time.monotonic() - start
    assert closed and PROXY_TIMEOUT - 0.1 < elapsed < PROXY_TIMEOUT + 1.5, elapsed
    bad = proxied.wait_logs('proxy.bad')
    assert [o['reason'] for o in bad] == ['header incomplete at proxy_timeout']
