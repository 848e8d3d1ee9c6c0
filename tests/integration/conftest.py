"""Integration fixtures: a real `sluice sink` upstream and a real `sluice run` daemon on
127.0.0.1 with ephemeral ports, both stopped by PID. Tests talk to them with real
clients (smtplib, swaks, openssl s_client) and assert what the client got, the exact
bytes the sink stored, and the daemon's JSON log lines."""
import json
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SLUICE = os.environ.get('SLUICE_BIN', str(ROOT / 'build' / 'sluice'))
PASSWORDS = {'alice@example.org': 'alice-pw', 'bob@example.org': 'bob-pw',
             'carol@example.net': 'carol-pw'}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
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
        new = self.maildir / 'new'
        if not new.exists():
            return []
        return [p.read_bytes() for p in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)]

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

    def stop(self):
        return stop(self.proc)


def lua_str(s):
    return "'" + str(s).replace('\\', '\\\\').replace("'", "\\'") + "'"


class Relay:
    """A running `sluice run` with a generated configuration."""

    def __init__(self, tmp, certs, users_dir, upstreams, extra='', workers=1,
                 limits='', timeouts='', listeners=None):
        self.dir = tmp
        self.smtps_port = free_port()
        self.submission_port = free_port()
        self.conf = tmp / 'sluice.lua'
        self.err = tmp / 'sluice.err'
        if listeners is None:
            listeners = (
                "{ name = 'smtps', address = '127.0.0.1', port = %d, tls = 'implicit' },\n"
                "    { name = 'submission', address = '127.0.0.1', port = %d, tls = 'starttls' },"
                % (self.smtps_port, self.submission_port))
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
  } },
  upstreams = %s,
  limits = { %s },
  timeouts = { %s },
  %s
}
""" % (workers, lua_str(users_dir), listeners,
       lua_str(certs / 'dev-ecdsa.crt'), lua_str(certs / 'dev-ecdsa.key'),
       lua_str(certs / 'dev-rsa.crt'), lua_str(certs / 'dev-rsa.key'),
       upstreams, limits, timeouts, extra))
        self.proc = subprocess.Popen([SLUICE, 'run', '-c', str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.err, 'wb'))
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

    def tls_context(self):
        ctx = ssl.create_default_context(cafile=self.cafile)
        return ctx

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

    def factory(upstreams, **kw):
        r = Relay(_mk(tmp_path / ('relay%d' % len(made))), certs, users_dir, upstreams, **kw)
        made.append(r)
        return r
    yield factory
    for r in made:
        r.stop()
        assert 'AddressSanitizer' not in r.err.read_text(errors='replace'), r.err.read_text()
        assert 'runtime error' not in r.err.read_text(errors='replace'), r.err.read_text()


@pytest.fixture
def relay(make_relay, sink):
    return make_relay(upstream_conf(sink.port))
