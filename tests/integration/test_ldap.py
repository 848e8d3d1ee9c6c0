"""LDAP authentication (docs/authentication.md "LDAP") against a real slapd on loopback:
LDAPS and StartTLS with the dev CA, two domains of users, bind-DN templates and
service-account search + bind, both listeners of sluice; the failure replies (535 for a
wrong password, an unknown user, a user of the other domain; 454 for a directory that is
down, hung or whose certificate does not verify); reconnecting; and the proof that a hung
directory never blocks the worker: another session on the same worker (workers = 1) gets
its replies at once while an LDAP check waits.

slapd is Debian's (`make deps` installs slapd and ldap-utils); each test starts its own
on ephemeral ports in its own directory, and stops it by PID.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_ldap.py
"""
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import (PASSWORDS, SHIPPED_POLICIES, Relay, b64, client_bytes, free_port,
                      lua_str, stop, unread_requests, upstream_conf, wait_unread_request)

SLAPD = shutil.which('slapd') or '/usr/sbin/slapd'
SLAPADD = shutil.which('slapadd') or '/usr/sbin/slapadd'
SLAPPASSWD = shutil.which('slappasswd') or '/usr/sbin/slappasswd'
# No skip when slapd is missing: `make test` installs it (Makefile DEB_PACKAGES), and a
# suite that silently skips its directory tests would pass without testing LDAP.

OK = (235, b'2.7.0 Authentication successful')
INVALID = (535, b'5.7.8 Authentication credentials invalid')
TEMPFAIL = (454, b'4.7.0 Temporary authentication failure, try again later')

# The directory: example.org's people and example.net's, each under its own suffix, and
# a service account that may search example.net. Passwords differ from the users files'
# (conftest.PASSWORDS), so a success proves which backend said yes.
LDAP_PASSWORDS = {
    'alice@example.org': 'alice-ldap-pw', 'bob@example.org': 'bob-ldap-pw',
    'carol@example.net': 'carol-ldap-pw', 'dave@example.net': 'dave-ldap-pw',
}
SERVICE_DN = 'cn=sluice,dc=example,dc=net'
SERVICE_PW = 'service-ldap-pw'
SEARCH_FILTER = '(&(objectClass=inetOrgPerson)(mail=%s))'
# policies/ratelimit.lua would block 127.0.0.1 after five failures a minute, which some
# tests here reach on purpose: it is not what this file is about.
POLICIES = [p for p in SHIPPED_POLICIES if not p.endswith('ratelimit.lua')]
NO_CACHE = 'auth_cache_ttl = 0,'  # every AUTH asks the directory (auth_cache.h)

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
TLSCACertificateFile {certs}/dev-ca.crt
TLSCertificateFile {certs}/dev-rsa.crt
TLSCertificateKeyFile {certs}/dev-rsa.key
# passwords are for binding only; entries are for users (the service account), not
# for anonymous searches
access to attrs=userPassword by anonymous auth by * none
access to * by users read by anonymous auth

database mdb
maxsize 16777216
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
directory {dir}/org

database mdb
maxsize 16777216
suffix "dc=example,dc=net"
rootdn "cn=admin,dc=example,dc=net"
directory {dir}/net
"""


def ssha(password):
    return subprocess.run([SLAPPASSWD, '-h', '{SSHA}', '-s', password], check=True,
                          capture_output=True, text=True).stdout.strip()


def ldif(dc):
    """The entries under dc=example,dc=<dc>."""
    out = ['dn: dc=example,dc=%s\nobjectClass: dcObject\nobjectClass: organization\n'
           'dc: example\no: example.%s\n' % (dc, dc),
           'dn: ou=people,dc=example,dc=%s\nobjectClass: organizationalUnit\nou: people\n' % dc]
    for ident, pw in LDAP_PASSWORDS.items():
        local, domain = ident.split('@')
        if domain == 'example.' + dc:
            out.append('dn: uid=%s,ou=people,dc=example,dc=%s\nobjectClass: inetOrgPerson\n'
                       'uid: %s\ncn: %s\nsn: %s\nmail: %s\nuserPassword: %s\n'
                       % (local, dc, local, local, local, ident, ssha(pw)))
    if dc == 'net':
        out.append('dn: %s\nobjectClass: person\nobjectClass: simpleSecurityObject\n'
                   'cn: sluice\nsn: sluice\nuserPassword: %s\n' % (SERVICE_DN, ssha(SERVICE_PW)))
    return '\n'.join(out)


class Slapd:
    """slapd on 127.0.0.1: ldap:// (StartTLS) on `port`, ldaps:// on `tls_port` (and on
    127.0.0.2, which its certificate does not name), in `dir`; start(), stop() (TERM, by
    PID), pause() / resume() (STOP / CONT). DEBUG is slapd's -d level: what it writes to
    slapd.err. A subclass may change CONF (its slapd.conf, formatted with dir and certs)
    and ldif(dc) (the entries under dc=example,dc=<dc>)."""

    DEBUG = '0'
    CONF = SLAPD_CONF

    def ldif(self, dc):
        return ldif(dc)

    def __init__(self, tmp, certs):
        self.dir = tmp
        self.port, self.tls_port = free_port(), free_port()
        self.conf = tmp / 'slapd.conf'
        self.conf.write_text(self.CONF.format(dir=tmp, certs=certs))
        for dc in ('org', 'net'):
            (tmp / dc).mkdir()
        for dc in ('org', 'net'):
            (tmp / (dc + '.ldif')).write_text(self.ldif(dc))
            subprocess.run([SLAPADD, '-f', str(self.conf), '-b', 'dc=example,dc=' + dc,
                            '-l', str(tmp / (dc + '.ldif'))], check=True, capture_output=True)
        self.proc = None
        self.start()

    @property
    def ldap_uri(self):
        return 'ldap://127.0.0.1:%d' % self.port

    @property
    def ldaps_uri(self):
        return 'ldaps://127.0.0.1:%d' % self.tls_port

    @property
    def other_name_uri(self):
        """LDAPS on an address the certificate does not name."""
        return 'ldaps://127.0.0.2:%d' % self.tls_port

    def start(self):
        self.proc = subprocess.Popen(
            [SLAPD, '-f', str(self.conf), '-h', '%s/ %s/ %s/' % (
                self.ldap_uri, self.ldaps_uri, self.other_name_uri), '-d', self.DEBUG],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / 'slapd.err', 'ab'))
        deadline = time.monotonic() + 10
        for port in (self.port, self.tls_port):
            while True:
                try:
                    with socket.create_connection(('127.0.0.1', port), timeout=1):
                        break
                except OSError:
                    assert self.proc.poll() is None, (self.dir / 'slapd.err').read_text()
                    assert time.monotonic() < deadline, 'slapd did not listen on %d' % port
                    time.sleep(0.02)

    def stop(self):
        if self.proc is not None:
            self.resume()
            stop(self.proc)
            self.proc = None

    def pause(self):
        """SIGSTOP, and wait until every thread has stopped: the signal is delivered
        asynchronously, and a thread still running could answer one more request."""
        self.proc.send_signal(signal.SIGSTOP)
        tasks = pathlib.Path('/proc/%d/task' % self.proc.pid)
        deadline = time.monotonic() + 5
        while any(t.joinpath('stat').read_text().rsplit(')', 1)[1].split()[0] != 'T'
                  for t in tasks.iterdir()):
            assert time.monotonic() < deadline, 'slapd did not stop'
            time.sleep(0.005)

    def resume(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def slapd(tmp_path, certs):
    d = tmp_path / 'slapd'
    d.mkdir()
    s = Slapd(d, certs)
    yield s
    s.stop()


# A timeout well above what a check takes (milliseconds), so that a busy test machine does
# not turn a success into a 454; the hung-directory test sets its own.
TIMEOUT = 4


def org_bind(uri, certs, timeout=TIMEOUT):
    """example.org: bind mode, the users' DN from a template."""
    return ("{ uris = { %s }, ca_file = %s, timeout = %s,\n"
            "      bind_dn = 'uid=%%u,ou=people,dc=example,dc=org' }"
            % (lua_str(uri), lua_str(certs / 'dev-ca.crt'), timeout))


def net_search(uri, certs, secret_file):
    """example.net: search mode, a service account finds the user by mail."""
    return ("{ uris = { %s }, ca_file = %s, timeout = %s,\n"
            "      base_dn = 'ou=people,dc=example,dc=net', bind_dn = %s,\n"
            "      bind_password_file = %s, filter = %s }"
            % (lua_str(uri), lua_str(certs / 'dev-ca.crt'), TIMEOUT, lua_str(SERVICE_DN),
               lua_str(secret_file), lua_str(SEARCH_FILTER)))


@pytest.fixture
def ldap_relay(make_relay, sink, slapd, certs, tmp_path):
    """A relay (workers = 1 unless given) whose example.org binds by template over LDAPS
    and whose example.net searches with the service account over StartTLS, then tries
    its users file. transport='starttls' swaps them: org over StartTLS, net over LDAPS.
    org / net replace a domain's ldap table (net=False: none), net_auth its auth list."""
    secret = tmp_path / 'ldap.secret'
    secret.write_text(SERVICE_PW + '\n')

    def factory(transport='ldaps', org=None, net=None, net_auth="{ 'ldap', 'file' }", **kw):
        org_uri, net_uri = slapd.ldaps_uri, slapd.ldap_uri
        if transport == 'starttls':
            org_uri, net_uri = net_uri, org_uri
        net_ldap = '' if net is False else ', ldap = %s' % (
            net or net_search(net_uri, certs, secret))
        domains = ("{\n  ['example.org'] = { auth = { 'ldap' }, ldap = %s },\n"
                   "  ['example.net'] = { auth = %s%s },\n}"
                   % (org or org_bind(org_uri, certs), net_auth, net_ldap))
        kw.setdefault('policies', POLICIES)
        return make_relay(upstream_conf(sink.port), domains=domains, **kw)
    return factory


def auth_plain(c, user, password):
    return c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (user, password)))


def ehlo_auth(relay, user, password):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    return c, auth_plain(c, user, password)


def send(s, sender, subject):
    return s.sendmail(sender, ['rcpt@example.com'],
                      b'From: <%s>\r\nSubject: %s\r\n\r\nbody\r\n'
                      % (sender.encode(), subject.encode()))


ALICE = ('alice@example.org', LDAP_PASSWORDS['alice@example.org'])


@pytest.mark.parametrize('transport', ['ldaps', 'starttls'])
@pytest.mark.parametrize('listener', ['smtps', 'submission'])
def test_directory_users_of_both_modes_send_on_both_listeners(ldap_relay, sink, transport,
                                                              listener):
    relay = ldap_relay(transport)
    for user, subject in [('alice@example.org', 'bind'), ('carol@example.net', 'search')]:
        with getattr(relay, listener)(login=None) as s:
            assert s.login(user, LDAP_PASSWORDS[user]) == OK
            assert send(s, user, subject) == {}
    first, second = sink.wait_messages(2)
    assert client_bytes(first) == b'From: <alice@example.org>\r\nSubject: bind\r\n\r\nbody\r\n'
    assert client_bytes(second) == (b'From: <carol@example.net>\r\nSubject: search\r\n\r\n'
                                    b'body\r\n')
    assert [e['mail_from'] for e in sink.events()] == ['alice@example.org', 'carol@example.net']
    assert [(o['user'], o['domain']) for o in relay.logs('auth.ok')] == [
        ('alice@example.org', 'example.org'), ('carol@example.net', 'example.net')]
    connects = {c['domain']: c['uri'] for c in relay.logs('ldap.connect')}
    want = {'ldaps': ('ldaps://', 'ldap://'), 'starttls': ('ldap://', 'ldaps://')}[transport]
    assert connects['example.org'].startswith(want[0])
    assert connects['example.net'].startswith(want[1])
    log = relay.err.read_text()
    assert LDAP_PASSWORDS['alice@example.org'] not in log and SERVICE_PW not in log


@pytest.mark.threads  # LDAP dials in the thread pool
def test_connections_are_reused_across_sessions(ldap_relay, sink):
    relay = ldap_relay(extra=NO_CACHE)
    for _ in range(4):
        c, reply = ehlo_auth(relay, *ALICE)
        assert reply == OK
        c.close()
    assert len(relay.logs('auth.ok')) == 4
    assert [r['result'] for r in relay.logs('ldap.result')] == ['ok'] * 4
    [connect] = relay.logs('ldap.connect')  # one worker, one check at a time: one connection
    assert connect['domain'] == 'example.org' and connect['connections'] == 1


@pytest.mark.parametrize('user, password', [
    ('alice@example.org', 'Wr0ng-passw0rd'),                     # wrong password (bind)
    ('alice@example.org', PASSWORDS['alice@example.org']),       # the users file's: not asked
    ('nobody@example.org', 'Wr0ng-passw0rd'),                    # no such DN
    ('carol@example.org', LDAP_PASSWORDS['carol@example.net']),  # example.net's user
    ('carol@example.net', 'Wr0ng-passw0rd'),                     # wrong password (search)
    ('nobody@example.net', 'Wr0ng-passw0rd'),                    # the search finds nobody
    ('alice@example.net', LDAP_PASSWORDS['alice@example.org']),  # example.org's user
    ('*@example.net', 'Wr0ng-passw0rd'),                         # no wildcard search
    ('alice,ou=people@example.org', LDAP_PASSWORDS['alice@example.org']),  # no DN injection
], ids=['wrong-password', 'file-password', 'unknown-user', 'other-domain-user',
        'search-wrong-password', 'search-unknown-user', 'search-other-domain-user',
        'search-wildcard', 'dn-injection'])
def test_wrong_password_unknown_user_and_other_domain_get_535(ldap_relay, sink, user,
                                                              password):
    relay = ldap_relay()
    c, reply = ehlo_auth(relay, user, password)
    assert reply == INVALID
    assert c.cmd(b'NOOP') == (250, b'2.0.0 Ok')
    c.close()
    [fail] = relay.wait_logs('auth.fail')
    assert (fail['user'], fail['code']) == (user, 535)
    assert relay.logs('auth.backend_error') == [] and relay.logs('ldap.unavailable') == []
    assert list(sink.transcripts.iterdir()) == []


EMPTY_PASSWORD_POLICY = """\
local sluice = require('sluice')
return { on_auth = function(session, auth)
  local ok, err = sluice.ldap.verify(auth.user, '')
  sluice.log('info', 'test.empty_password', { result = tostring(ok), err = tostring(err) })
end }
"""


def test_an_empty_password_is_refused_without_asking_the_directory(ldap_relay, sink,
                                                                   tmp_path):
    # an empty simple bind is an "unauthenticated bind" that servers answer with success
    # (RFC 4513 5.1.2); the core never passes one on, but a site policy might ask
    policy = tmp_path / 'empty_password.lua'
    policy.write_text(EMPTY_PASSWORD_POLICY)
    relay = ldap_relay(policies=[str(policy)] + POLICIES)
    c, reply = ehlo_auth(relay, *ALICE)
    assert reply == OK
    c.close()
    [line] = relay.logs('test.empty_password')
    assert (line['result'], line['err']) == ('false', 'empty password')
    assert len(relay.logs('ldap.result')) == 1  # auth.lua's check only


def test_a_domain_tries_its_users_file_after_the_directory(ldap_relay, sink):
    relay = ldap_relay()
    c, reply = ehlo_auth(relay, 'carol@example.net', PASSWORDS['carol@example.net'])
    assert reply == OK
    c.close()
    [result] = relay.logs('ldap.result')
    assert (result['domain'], result['result']) == ('example.net', 'invalid')


def test_stopped_directory_gives_454_then_reconnects_when_it_is_back(ldap_relay, sink, slapd):
    relay = ldap_relay(extra=NO_CACHE)
    c, reply = ehlo_auth(relay, *ALICE)
    assert reply == OK
    c.close()
    slapd.stop()
    for user, password in [ALICE, ('alice@example.org', 'Wr0ng-passw0rd')]:
        c, reply = ehlo_auth(relay, user, password)
        assert reply == TEMPFAIL  # never 535: the directory could not say
        assert c.cmd(b'MAIL FROM:<alice@example.org>') == (530, b'5.7.0 Authentication required')
        c.close()
    errors = relay.wait_logs('auth.backend_error', 2)
    assert len(errors) == 2 and 'Connection refused' in errors[-1]['error']
    assert [f['code'] for f in relay.logs('auth.fail')] == [454, 454]
    slapd.start()
    c, reply = ehlo_auth(relay, *ALICE)
    assert reply == OK
    assert send_raw(c) == 250
    c.close()
    assert len(relay.logs('ldap.connect')) == 2


def test_a_recent_success_is_remembered_while_the_directory_is_away(ldap_relay, sink,
                                                                    slapd):
    relay = ldap_relay()  # auth_cache_ttl: its default, 60 s
    c, reply = ehlo_auth(relay, *ALICE)
    assert reply == OK
    c.close()
    slapd.stop()
    c, reply = ehlo_auth(relay, *ALICE)
    assert reply == OK  # remembered: the directory is not asked
    assert auth_plain(c, 'alice@example.org', 'Wr0ng-passw0rd') == (
        503, b'5.5.1 Already authenticated')
    c.close()
    c, reply = ehlo_auth(relay, 'alice@example.org', 'Wr0ng-passw0rd')
    assert reply == TEMPFAIL  # only successes are remembered
    c.close()
    assert [h['msg'] for h in relay.logs('auth.cache_hit')] == ['alice@example.org']
    assert len(relay.logs('ldap.result')) == 1


def hup(relay):
    """SIGHUP; the reload.ok or reload.fail line that follows."""
    done = len(relay.logs('reload.ok')) + len(relay.logs('reload.fail'))
    relay.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = relay.logs('reload.ok') + relay.logs('reload.fail')
        if len(lines) > done:
            return sorted(lines, key=lambda l: l['ts'])[-1]
        time.sleep(0.02)
    raise AssertionError('no reload line:\n' + relay.err.read_text()[-2000:])


@pytest.fixture
def world(certs, users_dir):
    """A directory the daemon can still read after dropping privileges (a reload reads
    the configuration, the certificates and the CA file again), with copies of the
    certificates and users (as in test_reload.py)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix='sluice-ldap-'))
    d.chmod(0o755)
    for sub, src in (('certs', certs), ('users', users_dir)):
        shutil.copytree(src, d / sub)
        (d / sub).chmod(0o755)
        for f in (d / sub).iterdir():
            f.chmod(0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.threads  # a reload
def test_a_reload_takes_new_directory_settings_and_a_broken_one_changes_nothing(
        world, sink, slapd):
    certs = world / 'certs'
    (world / 'relay').mkdir(mode=0o755)
    domains = "{ ['example.org'] = { auth = { 'ldap' }, ldap = %s } }" % org_bind(
        slapd.ldaps_uri, certs)
    relay = Relay(world / 'relay', certs, world / 'users', upstream_conf(sink.port),
                  policies=POLICIES, domains=domains, extra=NO_CACHE)
    try:
        relay.conf.chmod(0o644)
        c, reply = ehlo_auth(relay, *ALICE)
        assert reply == OK
        c.close()
        text = relay.conf.read_text()
        relay.conf.write_text(text.replace(lua_str(slapd.ldaps_uri), "'ldap://'"))
        line = hup(relay)
        assert line['event'] == 'reload.fail', line
        assert "ldap.uris[1]: expected a host name or address" in line['msg'], line
        c, reply = ehlo_auth(relay, *ALICE)  # the running generation, its connection
        assert reply == OK
        c.close()
        relay.conf.write_text(text.replace(lua_str(slapd.ldaps_uri), lua_str(slapd.ldap_uri)))
        assert hup(relay)['event'] == 'reload.ok'
        c, reply = ehlo_auth(relay, *ALICE)  # the new generation: StartTLS
        assert reply == OK
        c.close()
        connects = [(l['domain'], l['uri']) for l in relay.logs('ldap.connect')]
        assert connects == [('example.org', slapd.ldaps_uri), ('example.org', slapd.ldap_uri)]
    finally:
        rc = relay.stop()
        err = relay.err.read_text(errors='replace')
        assert 'AddressSanitizer' not in err and 'runtime error' not in err, err
        assert rc == 0, err[-3000:]


def send_raw(c):
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n')
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    return c.cmd(b'From: <alice@example.org>\r\nSubject: x\r\n\r\nbody\r\n.').code


def timed(c, line):
    started = time.monotonic()
    reply = c.cmd(line)
    return reply, time.monotonic() - started


@pytest.mark.threads  # the thread pool
def test_hung_directory_gives_454_after_the_timeout_and_never_blocks_the_worker(
        ldap_relay, sink, slapd, certs):
    timeout = 3.0  # generous: this machine may be shared, and stall a second now and then
    relay = ldap_relay(org=org_bind(slapd.ldaps_uri, certs, timeout), net=False,
                       net_auth="{ 'file' }", extra=NO_CACHE)  # example.net: users file
    c, reply = ehlo_auth(relay, *ALICE)  # a pooled connection from here on
    assert reply == OK
    c.close()
    carol = ('carol@example.net', PASSWORDS['carol@example.net'])
    slapd.pause()
    try:
        # twice: first the bind on the pooled connection hangs (on the loop, watched by
        # an ev_io); then, that connection dropped, a new connection's TLS handshake
        # hangs (on the offload pool)
        for _ in range(2):
            waiting = relay.raw()
            assert waiting.cmd(b'EHLO client.test').code == 250
            before = unread_requests(slapd.tls_port)
            started = time.monotonic()
            waiting.send(('AUTH PLAIN %s\r\n' % b64('\0%s\0%s' % ALICE)).encode())
            # the check is under way: its request waits, unread, at the stopped slapd
            wait_unread_request(slapd.tls_port, before)
            other = relay.raw()  # the same worker: workers = 1
            spent = []
            for line in [b'EHLO other.test', b'NOOP',
                         'AUTH PLAIN ' + b64('\0%s\0%s' % carol),
                         b'MAIL FROM:<carol@example.net>', b'RCPT TO:<rcpt@example.com>',
                         b'RSET']:
                reply, secs = timed(other, line)
                assert reply.code in (250, 235), (line, reply)
                spent.append(secs)
            other.close()
            # all that while the check waited, and each reply at once
            assert time.monotonic() - started < timeout - 0.5, spent
            assert max(spent) < 1.0 and sorted(spent)[len(spent) // 2] < 0.1, spent
            assert waiting.reply() == TEMPFAIL
            assert timeout - 0.1 < time.monotonic() - started < timeout + 5
            waiting.close()
        # the first: no answer to a bind
        assert relay.wait_logs('ldap.timeout')[0]['step'] == 'user bind'
        # the second: the new connection's handshake gave up, or the check's deadline came
        # first (they are the same length)
        second = relay.wait_logs('auth.backend_error', 2)[1]['error']
        assert 'TLS: Timed out' in second or 'no answer within 3 s' in second, second
    finally:
        slapd.resume()
    relay.wait_logs('ldap.unreachable')  # the hung connect gives up by itself
    c, reply = ehlo_auth(relay, *ALICE)
    assert reply == OK
    c.close()
    assert [o['user'] for o in relay.logs('auth.ok')] == [
        'alice@example.org', 'carol@example.net', 'carol@example.net', 'alice@example.org']


def test_a_certificate_that_does_not_verify_gives_454(ldap_relay, sink, tmp_path, slapd):
    other_ca = tmp_path / 'other-ca.crt'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout',
                    str(tmp_path / 'other-ca.key'), '-out', str(other_ca), '-subj',
                    '/CN=not the dev CA'], check=True, capture_output=True)
    relay = ldap_relay(org="{ uris = { %s, %s }, ca_file = %s,\n"
                           "      bind_dn = 'uid=%%u,ou=people,dc=example,dc=org' }"
                           % (lua_str(slapd.ldaps_uri), lua_str(slapd.ldap_uri),
                              lua_str(other_ca)))
    c, reply = ehlo_auth(relay, *ALICE)
    assert reply == TEMPFAIL
    c.close()
    [unreachable] = relay.wait_logs('ldap.unreachable')
    error = unreachable['error']
    assert error.startswith(slapd.ldaps_uri + ': TLS: Connect error'), error
    assert '; %s: StartTLS: Connect error' % slapd.ldap_uri in error
    assert error.count('the certificate did not verify') == 2
    assert relay.logs('auth.ok') == []


def test_a_certificate_for_another_name_gives_454(ldap_relay, sink, slapd, certs):
    relay = ldap_relay(org=org_bind(slapd.other_name_uri, certs))  # the cert: 127.0.0.1
    c, reply = ehlo_auth(relay, *ALICE)
    assert reply == TEMPFAIL
    c.close()
    [unreachable] = relay.wait_logs('ldap.unreachable')
    assert 'TLS: Connect error' in unreachable['error']
    assert relay.logs('auth.ok') == []


def test_an_unreachable_first_uri_fails_over_to_the_next(ldap_relay, sink, slapd, certs):
    dead = 'ldaps://127.0.0.1:%d' % free_port()
    relay = ldap_relay(org="{ uris = { %s, %s }, ca_file = %s,\n"
                           "      bind_dn = 'uid=%%u,ou=people,dc=example,dc=org' }"
                           % (lua_str(dead), lua_str(slapd.ldaps_uri),
                              lua_str(certs / 'dev-ca.crt')))
    for _ in range(2):
        c, reply = ehlo_auth(relay, *ALICE)
        assert reply == OK
        c.close()
    [connect] = relay.logs('ldap.connect')
    assert connect['uri'] == slapd.ldaps_uri
