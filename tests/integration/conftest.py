"""Integration fixtures: a real `sluice sink` upstream and a real `sluice run` daemon on
127.0.0.1 with ephemeral ports, both stopped by PID. Tests talk to them with real
clients (smtplib, swaks, openssl s_client) and assert what the client got, the exact
bytes the sink stored, and the daemon's JSON log lines.

Helpers for the tests: client_bytes() / received_header() split what the sink stored
into our Received: header and the client's message; RawClient speaks SMTP over a plain
or TLS socket and reads whole replies; Relay.smtps() / Relay.submission() give
authenticated-ready smtplib clients; Relay.wait_logs() waits for a log line."""
import base64
import json
import os
import pathlib
import re
import resource
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SLUICE = os.environ.get('SLUICE_BIN', str(ROOT / 'build' / 'sluice'))
PASSWORDS = {'alice@example.org': 'alice-pw', 'bob@example.org': 'bob-pw',
             'carol@example.net': 'carol-pw'}
ALICE = 'alice@example.org'  # the usual client
# The policies every Relay runs unless a test gives its own list, as conf/sluice.lua.
SHIPPED_POLICIES = [str(ROOT / 'policies' / n) for n in
                    ('ratelimit.lua', 'auth.lua', 'sender_domain.lua', 'audit.lua')]
# The header From: check (policies/sender_domain.lua) is on by default and refuses a
# message without a From: of the user's domain; the tests of other areas send bare
# messages ("Subject: x") to test the protocol, so their domains opt out.
# test_header_from.py and test_agreement.py run the check with the default settings.
DOMAINS = ("{ ['example.org'] = { check_header_from = false },"
           " ['example.net'] = { check_header_from = false } }")
# The same domains with every setting at its default, as a site would declare them.
DEFAULT_DOMAINS = "{ ['example.org'] = {}, ['example.net'] = {} }"


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'threads: runs threads of the daemon against each other (reloads, the '
        'control socket, the thread pool, shared zones); `make integration-tsan` runs '
        'these under ThreadSanitizer')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test fails: a missing dependency or the wrong user must be seen, not
    passed over (importorskip, skipif, pytest.skip() included)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, 'wasxfail'):
        report.outcome = 'failed'
        report.longrepr = 'skipped, and a skip is a failure here: %s' % (report.longrepr,)


# What a sanitizer writes on stderr when it finds something (ASan, UBSan, TSan).
SANITIZER_MARKS = ('AddressSanitizer', 'ThreadSanitizer', 'runtime error:')


def sanitizer_report(err):
    """The sanitizer report in a process's stderr text (from its first line), or None."""
    at = [err.find(m) for m in SANITIZER_MARKS if m in err]
    if not at:
        return None
    start = err.rfind('\n', 0, min(at)) + 1
    return err[start:start + 6000]


def assert_no_sanitizer_report(err, who='sluice'):
    report = sanitizer_report(err)
    if report is not None:
        pytest.fail('%s: sanitizer report:\n%s' % (who, report), pytrace=False)


def free_port(host='127.0.0.1'):
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_line(path, pattern, proc, timeout=15):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        if path.exists():
            m = rx.search(path.read_text(errors='replace'))
            if m:
                return m
        if proc.poll() is not None:
            raise RuntimeError('%s exited %s:\n%s' % (proc.args, proc.returncode,
                                                      path.read_text(errors='replace')))
        time.sleep(0.02)
    raise TimeoutError('no %r in %s' % (pattern, path))


def wait_until(predicate, what, timeout=5):
    """Poll predicate() until it is true; fail naming `what` when the time is up. For a
    test that must know something has happened (a request arrived, a line was logged)
    before it goes on: never a sleep of a guessed length."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'waited %ss for: %s' % (timeout, what)
        time.sleep(0.01)


def _tcp_sockets():
    """(local, remote, state, tx_queue, rx_queue) of every TCP socket of this network
    namespace, addresses as (ip text, port), from /proc/net/tcp and tcp6."""
    out = []
    for name, family in (('tcp', socket.AF_INET), ('tcp6', socket.AF_INET6)):
        with open('/proc/net/' + name) as f:
            rows = f.read().splitlines()[1:]
        for row in rows:
            fields = row.split()
            ends = []
            for addr in fields[1:3]:
                hexip, hexport = addr.split(':')
                raw = bytes.fromhex(hexip)
                # the kernel prints each 32-bit word in host (little-endian) order
                raw = b''.join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                ends.append((socket.inet_ntop(family, raw), int(hexport, 16)))
            tx, rx = (int(q, 16) for q in fields[4].split(':'))
            out.append((ends[0], ends[1], int(fields[3], 16), tx, rx))
    return out


def _norm(addr):
    """(ip, port) of a getsockname()/getpeername() result, an IPv4-mapped IPv6 address
    as IPv4."""
    ip = addr[0][len('::ffff:'):] if addr[0].startswith('::ffff:') else addr[0]
    return (ip, addr[1])


def wait_read_by_peer(sock, timeout=5):
    """Wait until the peer of our TCP socket (a daemon on this host) has read every byte
    we sent: nothing unacknowledged on our side, nothing unread on its side."""
    ours, theirs = _norm(sock.getsockname()), _norm(sock.getpeername())

    def read():
        queues = {(_norm(l), _norm(r)): (tx, rx) for l, r, _, tx, rx in _tcp_sockets()}
        mine, peer = queues.get((ours, theirs)), queues.get((theirs, ours))
        return mine is not None and peer is not None and mine[0] == 0 and peer[1] == 0
    wait_until(read, 'the peer of %s:%d to read what was sent' % ours, timeout)


def unread_requests(port):
    """The clients (ip, port) of the open connections to local `port` that hold bytes
    their server has not read."""
    return {_norm(r) for l, r, state, _, rx in _tcp_sockets()
            if l[1] == port and state == 1 and rx > 0}  # 1: TCP_ESTABLISHED


def wait_unread_request(port, before=frozenset(), timeout=5):
    """Wait until a connection to local `port` other than those in `before`
    (unread_requests() earlier) holds bytes its server has not read: a request sent to a
    server that is stopped (SIGSTOP) has arrived."""
    wait_until(lambda: unread_requests(port) - set(before),
               'a request waiting on port %d' % port, timeout)


def stop(proc, sig=signal.SIGTERM, timeout=20):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.fixture(scope='session')
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp('certs')
    subprocess.run(['sh', str(ROOT / 'certs' / 'gen-dev-certs.sh'), str(d)], check=True,
                   capture_output=True)
    return d


@pytest.fixture(scope='session')
def users_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('users')
    by_domain = {}
    for ident, pw in PASSWORDS.items():
        local, domain = ident.split('@')
        h = subprocess.run([SLUICE, 'passwd', '-s', 'sha512'], input=pw + '\n', text=True,
                           capture_output=True, check=True).stdout.strip()
        by_domain.setdefault(domain, []).append('%s:%s\n' % (local, h))
    for domain, lines in by_domain.items():
        (d / (domain + '.txt')).write_text(''.join(lines))
    return d


class Sink:
    def __init__(self, tmp, args=()):
        self.dir = tmp
        self.maildir = tmp / 'maildir'
        self.log = tmp / 'sink.log'
        self.err = tmp / 'sink.err'
        self.transcripts = tmp / 'transcripts'
        self.transcripts.mkdir(exist_ok=True)
        cmd = [SLUICE, 'sink', '--listen', '127.0.0.1:0', '--maildir', str(self.maildir),
               '--log', str(self.log), '--transcript', str(self.transcripts), '--no-fsync']
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(self.err, 'wb'))
        m = wait_for_line(self.err, r'sink listening on 127\.0\.0\.1:(\d+)', self.proc)
        self.port = int(m.group(1))

    def messages(self):
        """Stored messages in the order the sink accepted them (its log says; files not
        logged yet follow by mtime)."""
        new = self.maildir / 'new'
        if not new.exists():
            return []
        files = {p.name: p for p in new.iterdir()}
        ordered = [files.pop(e['file'][len('new/'):]) for e in self.events()
                   if e.get('file', '')[len('new/'):] in files]
        ordered += sorted(files.values(), key=lambda p: p.stat().st_mtime_ns)
        return [p.read_bytes() for p in ordered]

    def events(self, name='sink.message'):
        if not self.log.exists():
            return []
        out = [json.loads(l) for l in self.log.read_text().splitlines() if l.strip()]
        return [e for e in out if e.get('event') == name]

    def wait_messages(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            time.sleep(0.02)
        return self.messages()

    def transcript_in(self):
        """Every byte the sink received, all connections in order (after TLS)."""
        files = sorted(self.transcripts.glob('conn-*.in'),
                       key=lambda p: int(p.name[len('conn-'):-len('.in')]))
        return b''.join(p.read_bytes() for p in files)

    def stop(self):
        return stop(self.proc)


def hup(relay, event='reload.ok'):
    """SIGHUP, then wait (bounded) for the next reload.ok or reload.fail line; the last
    line of `event`, which must be there."""
    done = len(relay.logs('reload.ok')) + len(relay.logs('reload.fail'))
    relay.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(relay.logs('reload.ok')) + len(relay.logs('reload.fail')) > done:
            break
        time.sleep(0.02)
    lines = relay.logs(event)
    assert lines, 'no %s after SIGHUP:\n%s' % (event, relay.err.read_text()[-3000:])
    return lines[-1]


def peer_cert(relay):
    """The DER certificate the relay's implicit-TLS listener serves now."""
    ctx = ssl.create_default_context(cafile=relay.cafile)
    with socket.create_connection((relay.host, relay.smtps_port)) as raw:
        with ctx.wrap_socket(raw, server_hostname='localhost') as s:
            return s.getpeercert(binary_form=True)


def renew_certs(scratch, certs_dir, mode):
    """New dev certificates (certs/gen-dev-certs.sh into scratch) copied over certs_dir's
    under the same names, each with mode, as a renewal would leave them."""
    scratch.mkdir()
    subprocess.run(['sh', str(ROOT / 'certs' / 'gen-dev-certs.sh'), str(scratch)], check=True,
                   capture_output=True)
    for f in os.listdir(scratch):
        shutil.copy(scratch / f, os.path.join(certs_dir, f))
        os.chmod(os.path.join(certs_dir, f), mode)


def lua_str(s):
    return "'" + str(s).replace('\\', '\\\\').replace("'", "\\'") + "'"


def b64(data):
    """base64 text of bytes or str, as AUTH wants it."""
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def received_header(stored):
    """Our Received: header at the top of a stored message: the first header line and
    its continuation lines (those starting with a TAB), CRLFs included."""
    assert stored.startswith(b'Received: from '), stored[:200]
    end = stored.index(b'\r\n') + 2
    while stored[end:end + 1] == b'\t':
        end = stored.index(b'\r\n', end) + 2
    return stored[:end]


def client_bytes(stored):
    """What the client sent (after dot-unstuffing): the stored message minus our header."""
    return stored[len(received_header(stored)):]


class Reply(tuple):
    """(code, text) like smtplib; text joins the lines of a multi-line reply with LF."""
    __slots__ = ()

    def __new__(cls, code, lines):
        return super().__new__(cls, (code, b'\n'.join(lines)))

    @property
    def code(self):
        return self[0]

    @property
    def text(self):
        return self[1]


class RawClient:
    """SMTP over a bare socket (optionally implicit TLS): send exactly the bytes a test
    wants, read whole replies. Every read is bounded by the socket timeout."""

    def __init__(self, host, port, context=None, timeout=10, greeting=True, source=None):
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        if context is not None:
            self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self.buf = b''
        self.greeting = self.reply() if greeting else None

    def send(self, data):
        self.sock.sendall(data)

    def _line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('connection closed; unread %r' % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def reply(self):
        lines = []
        while True:
            line = self._line()
            assert re.match(rb'\d{3}([ -]|$)', line), line
            lines.append(line[4:])
            if line[3:4] != b'-':
                return Reply(int(line[:3]), lines)

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def cmd(self, line):
        self.send(line + b'\r\n' if isinstance(line, bytes) else (line + '\r\n').encode())
        return self.reply()

    def starttls(self, context):
        reply = self.cmd(b'STARTTLS')
        assert reply == (220, b'2.0.0 Ready to start TLS'), reply
        assert self.buf == b''
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        return reply

    def at_eof(self):
        """True if the peer closed with nothing left unread."""
        if self.buf:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return True
        self.buf += data
        return data == b''

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()



class Relay:
    """A running `sluice run` with a generated configuration: an implicit-TLS listener
    (smtps_port) and a STARTTLS one (submission_port) on `address`, offering the `sasl`
    mechanisms (default: all). `limits`, `timeouts` and `extra` are Lua text for those
    tables and the top level; `min_version` goes into `tls`; `nofile` caps the daemon's
    descriptors (RLIMIT_NOFILE). `policies` (paths; default the shipped ones) and
    `domains` (Lua text) feed the policy engine; the audit log is `audit_log`."""

    def __init__(self, tmp, certs, users_dir, upstreams, extra='', workers=1,
                 limits='', timeouts='', listeners=None, address='127.0.0.1',
                 min_version=None, nofile=None, sasl=None, policies=None,
                 domains=DOMAINS):
        self.dir = tmp
        self.audit_log = tmp / 'audit.log'
        if policies is None:
            policies = SHIPPED_POLICIES
        self.host = address
        self.smtps_port = free_port(address)
        self.submission_port = free_port(address)
        self.conf = tmp / 'sluice.lua'
        self.err = tmp / 'sluice.err'
        if listeners is None:
            mechs = '' if sasl is None else ', sasl = { %s }' % ', '.join(map(lua_str, sasl))
            listeners = (
                "{ name = 'smtps', address = %s, port = %d, tls = 'implicit'%s },\n"
                "    { name = 'submission', address = %s, port = %d, tls = 'starttls'%s },"
                % (lua_str(address), self.smtps_port, mechs, lua_str(address),
                   self.submission_port, mechs))
        tls_extra = 'min_version = %s,' % lua_str(min_version) if min_version else ''
        self.conf.write_text("""return {
  hostname = 'relay.test',
  workers = %d,
  users_dir = %s,
  log_level = 'debug',
  listeners = {
    %s
  },
  tls = { certificates = {
    { cert = %s, key = %s },
    { cert = %s, key = %s },
  }, %s },
  upstreams = %s,
  limits = { %s },
  timeouts = { %s },
  policies = { %s },
  audit_log = %s,
  domains = %s,
  %s
}
""" % (workers, lua_str(users_dir), listeners,
       lua_str(certs / 'dev-ecdsa.crt'), lua_str(certs / 'dev-ecdsa.key'),
       lua_str(certs / 'dev-rsa.crt'), lua_str(certs / 'dev-rsa.key'), tls_extra,
       upstreams, limits, timeouts, ', '.join(map(lua_str, policies)),
       lua_str(self.audit_log), domains, extra))
        limit = None if nofile is None else (
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
        self.proc = subprocess.Popen([SLUICE, 'run', '-c', str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.err, 'wb'),
                                     preexec_fn=limit)
        wait_for_line(self.err, r'"event":"daemon.ready"', self.proc)
        self.cafile = str(certs / 'dev-ca.crt')

    def logs(self, event=None):
        out = []
        for line in self.err.read_text(errors='replace').splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if event is None or obj.get('event') == event:
                out.append(obj)
        return out

    def wait_logs(self, event, n=1, timeout=5):
        """The log lines for event once there are at least n (a line may follow the reply
        the client already has by a moment), or all there are when the time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.logs(event)
            if len(found) >= n:
                return found
            time.sleep(0.02)
        return self.logs(event)

    def audit(self, event_type=None, n=1, timeout=5):
        """The audit log's records (of event_type) once there are at least n, or all there
        are when the time is up: the writer thread writes a moment after the hook ran."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.audit_log.read_text() if self.audit_log.exists() else ''
            found = [json.loads(l) for l in text.splitlines() if l.strip()]
            found = [r for r in found if event_type in (None, r['event_type'])]
            if len(found) >= n or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def tls_context(self):
        ctx = ssl.create_default_context(cafile=self.cafile)
        return ctx

    def smtps(self, login=ALICE, timeout=10):
        """smtplib over implicit TLS, EHLO done, logged in as `login` unless None."""
        c = smtplib.SMTP_SSL(self.host, self.smtps_port, local_hostname='client.test',
                             context=self.tls_context(), timeout=timeout)
        c.ehlo()
        if login is not None:
            c.login(login, PASSWORDS[login])
        return c

    def submission(self, login=ALICE, timeout=10):
        """smtplib on the STARTTLS listener, TLS up and EHLO done, logged in unless None."""
        c = smtplib.SMTP(self.host, self.submission_port, local_hostname='client.test',
                         timeout=timeout)
        c.ehlo()
        c.starttls(context=self.tls_context())
        c.ehlo()
        if login is not None:
            c.login(login, PASSWORDS[login])
        return c

    def raw(self, tls=True, timeout=10, greeting=True, source=None):
        """RawClient: implicit TLS (tls=True) or cleartext on the STARTTLS listener, from
        the loopback address `source` if given (127.0.0.2: another client)."""
        if tls:
            return RawClient(self.host, self.smtps_port, self.tls_context(), timeout,
                             greeting, source)
        return RawClient(self.host, self.submission_port, None, timeout, greeting, source)

    def raw_authed(self, user=ALICE):
        """RawClient over implicit TLS after EHLO and AUTH PLAIN."""
        c = self.raw()
        c.cmd(b'EHLO client.test')
        reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (user, PASSWORDS[user])))
        assert reply == (235, b'2.7.0 Authentication successful'), reply
        return c

    def stop(self, sig=signal.SIGTERM):
        return stop(self.proc, sig)


def upstream_conf(port, tls='none', extra=''):
    return "{ default = { { host = '127.0.0.1', port = %d, tls = '%s'%s } } }" % (
        port, tls, extra)


@pytest.fixture
def sink(tmp_path):
    s = Sink(_mk(tmp_path / 'sink'))
    yield s
    s.stop()
    assert_no_sanitizer_report(s.err.read_text(errors='replace'), 'sluice sink')


def _mk(p):
    p.mkdir(parents=True, exist_ok=True)
    return p


@pytest.fixture
def make_sink(tmp_path):
    made = []

    def factory(*args, name='sinkx'):
        s = Sink(_mk(tmp_path / ('%s%d' % (name, len(made)))), args)
        made.append(s)
        return s
    yield factory
    for s in made:
        s.stop()


@pytest.fixture
def make_relay(tmp_path, certs, users_dir):
    made = []

    def factory(upstreams, users=None, **kw):
        r = Relay(_mk(tmp_path / ('relay%d' % len(made))), certs, users or users_dir,
                  upstreams, **kw)
        made.append(r)
        return r
    yield factory
    for r in made:
        rc = r.stop()
        err = r.err.read_text(errors='replace')
        assert_no_sanitizer_report(err)
        assert rc == 0, 'sluice run exited %s on TERM:\n%s' % (rc, err[-3000:])


@pytest.fixture
def world(certs, users_dir):
    """A directory the daemon can read after dropping privileges, with copies of the
    certificates and users."""
    d = tempfile.mkdtemp(prefix='sluice-reload-')
    os.chmod(d, 0o755)
    for sub, src in (('certs', certs), ('users', users_dir)):
        shutil.copytree(src, os.path.join(d, sub))
        os.chmod(os.path.join(d, sub), 0o755)
        for f in os.listdir(os.path.join(d, sub)):
            os.chmod(os.path.join(d, sub, f), 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def readable(world):
    """A world-readable directory in world for a relay's own files (the daemon rereads them
    as the service user)."""
    d = pathlib.Path(world) / 'relay'
    d.mkdir()
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def relay(make_relay, sink):
    return make_relay(upstream_conf(sink.port))
