#!/usr/bin/env python3
"""bench/auth_timing.py: does the time of a refused AUTH tell which users exist?
(docs/security.md "User enumeration by timing"; results in docs/benchmarks.md.)

Real AUTH PLAIN over implicit TLS on 127.0.0.1, one connection per variant, against a
real `sluice run` per variant (each its own build and tree: policies/auth.lua, lua/),
all started at once and measured in interleaved rounds, so that the machine's load hits
every variant and every case alike. Per case: the median, p10 and p90 of the time from
sending AUTH to reading its reply, in ms.

Configurations:
  file  example.org's users file: ann, bea, cid with yescrypt (libxcrypt's default
        cost), old with sha512-crypt; example.net declared, without a users file.
        Cases: a wrong password of a yescrypt user and of the sha512-crypt user, an
        unknown user, an unknown user of example.net, a domain not declared.
        --tries rounds (default 100, at most 1000).
  ldap  (when slapd is installed) example.net in search mode against a local slapd
        over LDAPS (service account, filter on mail; SSHA passwords). Cases: a wrong
        password, an unknown user, a domain not declared. --ldap-tries rounds (default
        1000, at most 5000: a check takes well under a millisecond).

  bench/auth_timing.py                                   # this tree's build/
  bench/auth_timing.py --variant base=/tmp/b/build:/tmp/b --variant new=build --tries 200

--variant LABEL=BUILD[:TREE] (repeatable; TREE defaults to this repository). Bounded:
the rounds above, every socket operation times out after 10 s, each server gets 10 s to
start; only the processes started here are stopped, by PID. Needs the dev certificate
script (certs/gen-dev-certs.sh). Progress on stderr, the tables on stdout.
"""
import argparse
import base64
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SLAPD = shutil.which('slapd') or '/usr/sbin/slapd'
SLAPADD = shutil.which('slapadd') or '/usr/sbin/slapadd'
SLAPPASSWD = shutil.which('slappasswd') or '/usr/sbin/slappasswd'
SERVICE_DN, SERVICE_PW = 'cn=sluice,dc=example,dc=net', 'service-pw'

FILE_CASES = [
    ('wrong password, yescrypt user', 'ann@example.org'),
    ('wrong password, sha512-crypt user', 'old@example.org'),
    ('unknown user', 'zed@example.org'),
    ('unknown user, domain without users file', 'zed@example.net'),
    ('domain not declared', 'ann@nowhere.example'),
]
LDAP_CASES = [
    ('wrong password', 'carol@example.net'),
    ('unknown user', 'zed@example.net'),
    ('domain not declared', 'carol@nowhere.example'),
]


def log(msg):
    print('[%6.1fs] %s' % (time.monotonic() - START, msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_port(port, proc, errfile, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('not listening on %d:\n%s' % (
                    port, pathlib.Path(errfile).read_text(errors='replace')[-2000:]))
            time.sleep(0.02)


class Procs:
    """Every process started here, stopped by PID (TERM, then KILL after 5 s)."""

    def __init__(self):
        self.procs = []

    def start(self, args, errfile):
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(errfile, 'wb'))
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def lua_str(s):
    return "'%s'" % str(s).replace('\\', '\\\\').replace("'", "\\'")


def hashed(sluice, password, scheme):
    return subprocess.run([sluice, 'passwd', '-s', scheme], input=password + '\n', text=True,
                          capture_output=True, check=True, timeout=30).stdout.strip()


def ssha(password):
    return subprocess.run([SLAPPASSWD, '-h', '{SSHA}', '-s', password], check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()


def start_slapd(procs, out, certs):
    """A slapd with dc=example,dc=net (carol, dave, the service account) on LDAPS."""
    d = out / 'slapd'
    (d / 'net').mkdir(parents=True)
    conf = d / 'slapd.conf'
    conf.write_text(
        'include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n'
        'include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\n'
        'moduleload back_mdb\npidfile %s/slapd.pid\n'
        'TLSCACertificateFile %s/dev-ca.crt\nTLSCertificateFile %s/dev-rsa.crt\n'
        'TLSCertificateKeyFile %s/dev-rsa.key\n'
        'access to attrs=userPassword by anonymous auth by * none\n'
        'access to * by users read by anonymous auth\n'
        'database mdb\nmaxsize 16777216\nsuffix "dc=example,dc=net"\n'
        'rootdn "cn=admin,dc=example,dc=net"\ndirectory %s/net\n'
        % (d, certs, certs, certs, d))
    entries = ['dn: dc=example,dc=net\nobjectClass: dcObject\nobjectClass: organization\n'
               'dc: example\no: example.net\n',
               'dn: ou=people,dc=example,dc=net\nobjectClass: organizationalUnit\nou: people\n',
               'dn: %s\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: sluice\n'
               'sn: sluice\nuserPassword: %s\n' % (SERVICE_DN, ssha(SERVICE_PW))]
    for u in ('carol', 'dave'):
        entries.append('dn: uid=%s,ou=people,dc=example,dc=net\nobjectClass: inetOrgPerson\n'
                       'uid: %s\ncn: %s\nsn: %s\nmail: %s@example.net\nuserPassword: %s\n'
                       % (u, u, u, u, u, ssha(u + '-pw')))
    (d / 'net.ldif').write_text('\n'.join(entries))
    subprocess.run([SLAPADD, '-f', str(conf), '-b', 'dc=example,dc=net', '-l',
                    str(d / 'net.ldif')], check=True, capture_output=True, timeout=30)
    port = free_port()
    p = procs.start([SLAPD, '-f', str(conf), '-h', 'ldaps://127.0.0.1:%d/' % port, '-d', '0'],
                    d / 'slapd.err')
    wait_port(port, p, d / 'slapd.err')
    return 'ldaps://127.0.0.1:%d' % port


def start_sluice(procs, out, label, build, tree, certs, users, domains):
    port = free_port()
    d = out / label
    d.mkdir(parents=True)
    conf = d / 'sluice.lua'
    conf.write_text("""return {
  hostname = 'bench.sluice.test', workers = 1, users_dir = %s, log_level = 'warning',
  policies = { %s }, lua_dir = %s, auth_cache_ttl = 0,
  domains = %s,
  listeners = { { name = 'smtps', address = '127.0.0.1', port = %d, tls = 'implicit' } },
  tls = { certificates = { { cert = %s, key = %s } } },
  limits = { max_auth_failures = 100000, max_errors = 100000, max_commands = 100000000 },
  upstreams = { default = { { host = '127.0.0.1', port = %d, tls = 'none' } } },
}
""" % (lua_str(users), lua_str(pathlib.Path(tree) / 'policies' / 'auth.lua'),
       lua_str(pathlib.Path(tree) / 'lua'), domains, port,
       lua_str(certs / 'dev-ecdsa.crt'), lua_str(certs / 'dev-ecdsa.key'), free_port()))
    p = procs.start([str(pathlib.Path(build) / 'sluice'), 'run', '-c', str(conf)],
                    d / 'sluice.err')
    wait_port(port, p, d / 'sluice.err')
    return port


class Client:
    def __init__(self, port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port), timeout=10))
        self.buf = b''
        self.reply()
        self.cmd(b'EHLO bench.test')

    def reply(self):
        while True:
            while b'\r\n' not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise EOFError('closed')
                self.buf += chunk
            line, self.buf = self.buf.split(b'\r\n', 1)
            if line[3:4] != b'-':
                return line

    def cmd(self, line):
        self.sock.sendall(line + b'\r\n')
        return self.reply()

    def auth_ms(self, user, password):
        msg = b'AUTH PLAIN ' + base64.b64encode(b'\0%s\0%s' % (user.encode(), password.encode()))
        t0 = time.perf_counter()
        reply = self.cmd(msg)
        t = (time.perf_counter() - t0) * 1e3
        if not reply.startswith(b'535 5.7.8 Authentication credentials invalid'):
            raise RuntimeError('%s: %r' % (user, reply))
        return t


def pct(sorted_v, p):
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_v) - 1, int(-(-p * len(sorted_v) // 100)) - 1))
    return sorted_v[k]


def measure(clients, cases, tries):
    """{(label, case): [ms]}: tries rounds; in each, every variant and every case once,
    the order rotated every round."""
    samples = {(label, name): [] for label in clients for name, _ in cases}
    labels = list(clients)
    for label in labels:  # warm up each: the first AUTH loads the Lua state
        clients[label].auth_ms(cases[0][1], 'warm-up')
    for r in range(tries):
        order = [(label, case) for label in labels for case in cases]
        k = r % len(order)
        for label, (name, user) in order[k:] + order[:k]:
            samples[(label, name)].append(clients[label].auth_ms(user, 'wrong-%d' % r))
    return samples


def table(title, labels, cases, samples):
    print('### %s\n' % title)
    head = '| case |' + ''.join(' %s median | %s p10 / p90 |' % (l, l) for l in labels)
    print(head)
    print('|---|' + '---:|---:|' * len(labels))
    for name, _ in cases:
        row = '| %s |' % name
        for label in labels:
            s = sorted(samples[(label, name)])
            row += ' %.2f | %.2f / %.2f |' % (pct(s, 50), pct(s, 10), pct(s, 90))
        print(row)
    row = '| slowest / fastest median |'
    for label in labels:
        meds = [pct(sorted(samples[(label, n)]), 50) for n, _ in cases]
        row += ' %.2f | |' % (max(meds) / min(meds))
    print(row + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--variant', action='append', default=[],
                    help='LABEL=BUILD[:TREE] (default: new=build)')
    ap.add_argument('--tries', type=int, default=100)
    ap.add_argument('--ldap-tries', type=int, default=1000,
                    help='rounds of the ldap configuration (its checks take ~0.3 ms)')
    ap.add_argument('--no-ldap', action='store_true')
    ap.add_argument('--out', default=None)
    args = ap.parse_args()
    if not 1 <= args.tries <= 1000 or not 1 <= args.ldap_tries <= 5000:
        ap.error('--tries: 1..1000, --ldap-tries: 1..5000')
    variants = []
    for v in args.variant or ['new=build']:
        label, rest = v.split('=', 1)
        build, _, tree = rest.partition(':')
        build = pathlib.Path(build if os.path.isabs(build) else ROOT / build)
        variants.append((label, build, pathlib.Path(tree) if tree else ROOT))
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix='sluice-auth-timing.'))
    out.mkdir(parents=True, exist_ok=True)
    certs = out / 'certs'
    certs.mkdir()
    subprocess.run(['sh', str(ROOT / 'certs' / 'gen-dev-certs.sh'), str(certs)], check=True,
                   capture_output=True, timeout=60)
    sluice = str(variants[0][1] / 'sluice')
    users = out / 'users'
    users.mkdir()
    (users / 'example.org.txt').write_text(''.join(
        ['%s:%s\n' % (u, hashed(sluice, u + '-pw', 'yescrypt')) for u in ('ann', 'bea', 'cid')]
        + ['old:%s\n' % hashed(sluice, 'old-pw', 'sha512')]))
    configs = [('file', FILE_CASES, "{ ['example.org'] = {}, ['example.net'] = {} }",
                args.tries)]
    procs = Procs()
    try:
        if not args.no_ldap and os.path.exists(SLAPD):
            uri = start_slapd(procs, out, certs)
            secret = out / 'ldap.secret'
            secret.write_text(SERVICE_PW + '\n')
            configs.append(('ldap', LDAP_CASES, (
                "{ ['example.net'] = { auth = { 'ldap' }, ldap = { uris = { %s }, ca_file = %s,"
                " base_dn = 'ou=people,dc=example,dc=net', bind_dn = %s,"
                " bind_password_file = %s, filter = '(mail=%%s)' } } }")
                % (lua_str(uri), lua_str(certs / 'dev-ca.crt'), lua_str(SERVICE_DN),
                   lua_str(secret)), args.ldap_tries))
        with open('/proc/loadavg') as f:
            load0 = f.read().split()[0]
        print('## User enumeration by timing: %s\n' % time.strftime('%Y-%m-%d %H:%M UTC',
                                                                     time.gmtime()))
        print('AUTH PLAIN over implicit TLS, one connection per variant, interleaved rounds; '
              'ms from AUTH to its 535. Variants: %s. Output: %s\n'
              % (', '.join('%s = %s' % (l, b) for l, b, _ in variants), out))
        for name, cases, domains, tries in configs:
            clients = {}
            for label, build, tree in variants:
                port = start_sluice(procs, out / name, label, build, tree, certs, users,
                                    domains)
                clients[label] = Client(port)
            log('%s: %d rounds of %d cases x %d variants' % (name, tries, len(cases),
                                                            len(variants)))
            samples = measure(clients, cases, tries)
            table('%s backend, %d rounds' % (name, tries), [v[0] for v in variants], cases,
                  samples)
        with open('/proc/loadavg') as f:
            print('Load average (1 min) at the start %s, at the end %s; %d CPUs.'
                  % (load0, f.read().split()[0], os.cpu_count()))
    finally:
        procs.stop_all()


START = time.monotonic()
if __name__ == '__main__':
    main()
