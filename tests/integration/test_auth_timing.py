"""User enumeration by timing (docs/security.md, "User enumeration by timing"): a wrong
password, an unknown user and a domain that is not declared get the same 535 after the
same work, and only the auth.fail log line tells them apart.

 * Users files: a domain of yescrypt users (~15 ms a check) with one sha512-crypt user
   (~1.5 ms). Real AUTH PLAIN over implicit TLS, the cases interleaved, 30 tries each:
   every case's median AUTH latency is within a factor of 1.5 of every other's. Before
   sluice hashed once per cost class, the odd user answered ten times faster than an
   unknown one, and an undeclared domain at once, without a hash: a factor of 10-50.
   A median of 30 interleaved tries moves by a few per cent when the machine is busy;
   1.5 leaves room for that and is far from what the old code gave.
 * A directory in search mode (the real slapd of test_ldap.py, its stats log): an
   unknown user costs the directory the same operations as a wrong password, a search
   and a refused bind (of cn=sluice-no-such-user under the base); a domain that is not
   declared costs the stand-in domain's directory an unknown user's bind.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_auth_timing.py
"""
import re
import statistics
import subprocess
import time

import pytest

from conftest import (ROOT, SLUICE, Relay, b64, lua_str, upstream_conf)
from test_ldap import SERVICE_DN, Slapd

INVALID = (535, b'5.7.8 Authentication credentials invalid')
POLICIES = [str(ROOT / 'policies' / 'auth.lua')]  # no rate limit: it is not what is timed
TRIES = 30
TOLERANCE = 1.5
LIMITS = 'max_auth_failures = 1000, max_errors = 1000, max_commands = 100000'


def hashed(password, scheme):
    return subprocess.run([SLUICE, 'passwd', '-s', scheme], input=password + '\n',
                          text=True, capture_output=True, check=True).stdout.strip()


@pytest.fixture
def mixed_relay(tmp_path, certs, sink):
    """example.org: ann, bea, cid with yescrypt, old with sha512-crypt; example.net is
    declared and empty."""
    users = tmp_path / 'users'
    users.mkdir()
    lines = ['%s:%s\n' % (u, hashed(u + '-pw', 'yescrypt')) for u in ('ann', 'bea', 'cid')]
    lines.append('old:%s\n' % hashed('old-pw', 'sha512'))
    (users / 'example.org.txt').write_text(''.join(lines))
    (tmp_path / 'relay').mkdir()
    r = Relay(tmp_path / 'relay', certs, users, upstream_conf(sink.port), policies=POLICIES,
              limits=LIMITS, extra='auth_cache_ttl = 0,')
    yield r
    assert r.stop() == 0


def timed_auth(c, user, password):
    t0 = time.perf_counter()
    reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (user, password)))
    return time.perf_counter() - t0, reply


def medians(relay, cases, tries=TRIES):
    """{case: median seconds} over tries interleaved rounds of every case, on one
    connection; every reply must be the 535."""
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    seconds = {case: [] for case in cases}
    timed_auth(c, 'ann@example.org', 'warm-up')  # the first check loads the Lua state
    for i in range(tries):
        for case in cases[i % len(cases):] + cases[:i % len(cases)]:
            t, reply = timed_auth(c, *case)
            assert reply == INVALID, (case, reply)
            seconds[case].append(t)
    c.close()
    return {case: statistics.median(s) for case, s in seconds.items()}


def test_wrong_password_unknown_user_and_undeclared_domain_take_the_same_time(mixed_relay):
    cases = [('old@example.org', 'guess'),       # a user with the odd, cheap scheme
             ('ann@example.org', 'guess'),       # a user with the usual scheme
             ('zed@example.org', 'guess'),       # no such user
             ('ann@nowhere.test', 'guess'),      # no such domain
             ('zed@example.net', 'guess'),       # declared, without a users file
             ('ann', 'guess')]                   # no domain at all
    med = medians(mixed_relay, cases)
    shown = ', '.join('%s %.1f ms' % (u, m * 1e3) for (u, _), m in med.items())
    assert max(med.values()) < TOLERANCE * min(med.values()), shown
    assert min(med.values()) > 0.005, shown  # each case paid for hashes: no quick answer


def test_the_refusals_differ_only_in_the_log_reason(mixed_relay):
    c = mixed_relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    users = ['old@example.org', 'zed@example.org', 'ann@nowhere.test', 'zed@example.net',
             'ann']
    for user in users:
        assert timed_auth(c, user, 'guess')[1] == INVALID
    c.close()
    fails = mixed_relay.wait_logs('auth.fail', len(users))
    assert [(f['user'], f['code'], f['reason']) for f in fails] == [
        ('old@example.org', 535, 'file: wrong password'),
        ('zed@example.org', 535, 'file: unknown user'),
        ('ann@nowhere.test', 535, 'domain not declared'),
        ('zed@example.net', 535, 'file: unknown domain'),
        ('ann', 535, 'no domain in the user name'),
    ]


# ---- the directory ------------------------------------------------------------------

class StatsSlapd(Slapd):
    """test_ldap.Slapd writing every operation and its result (-d stats) to slapd.err."""

    DEBUG = 'stats'

    def operations(self):
        """[(op, dn-or-filter, err)] in the order slapd answered them: BIND and SRCH."""
        text = (self.dir / 'slapd.err').read_text(errors='replace')
        asked, out = {}, []
        for m in re.finditer(r'(conn=\d+ op=\d+) (BIND dn="([^"]*)"|SRCH base="[^"]*" '
                             r'scope=\d+ deref=\d+ filter="([^"]*)"|RESULT tag=97 err=(\d+)|'
                             r'SEARCH RESULT tag=101 err=(\d+))', text):
            key = m.group(1)
            if m.group(3) is not None:
                asked[key] = ('BIND', m.group(3))
            elif m.group(4) is not None:
                asked[key] = ('SRCH', m.group(4))
            elif key in asked:
                op, what = asked.pop(key)
                err = m.group(5) if m.group(5) is not None else m.group(6)
                out.append((op, what, int(err)))
        return out

    def wait_operations(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.operations()) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.operations()


@pytest.fixture
def stats_slapd(tmp_path, certs):
    d = tmp_path / 'slapd'
    d.mkdir()
    s = StatsSlapd(d, certs)
    yield s
    s.stop()


def test_an_unknown_user_costs_the_directory_a_refused_bind_too(stats_slapd, make_relay,
                                                               sink, certs, tmp_path):
    secret = tmp_path / 'ldap.secret'
    secret.write_text('service-ldap-pw\n')
    net = ("{ uris = { %s }, ca_file = %s, timeout = 4, base_dn = 'ou=people,dc=example,dc=net',"
           " bind_dn = %s, bind_password_file = %s, filter = '(mail=%%s)' }"
           % (lua_str(stats_slapd.ldaps_uri), lua_str(certs / 'dev-ca.crt'),
              lua_str(SERVICE_DN), lua_str(secret)))
    relay = make_relay(upstream_conf(sink.port), policies=POLICIES, extra='auth_cache_ttl = 0,',
                       domains="{ ['example.net'] = { auth = { 'ldap' }, ldap = %s } }" % net)
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    before = len(stats_slapd.operations())
    for user in ('carol@example.net', 'nobody@example.net', 'carol@nowhere.test'):
        assert timed_auth(c, user, 'guess')[1] == INVALID
    c.close()
    ops = stats_slapd.wait_operations(before + 9)[before:]
    service = ('BIND', SERVICE_DN, 0)
    decoy = ('BIND', 'cn=sluice-no-such-user,ou=people,dc=example,dc=net', 49)
    assert ops == [
        # a wrong password
        service, ('SRCH', '(mail=carol@example.net)', 0),
        ('BIND', 'uid=carol,ou=people,dc=example,dc=net', 49),
        # no such user: the same three operations, the bind refused as well
        service, ('SRCH', '(mail=nobody@example.net)', 0), decoy,
        # a domain not declared: an unknown user of the one declared domain
        service, ('SRCH', '(mail=sluice-no-such-user@example.net)', 0), decoy,
    ], ops
    fails = relay.wait_logs('auth.fail', 3)
    assert [f['reason'] for f in fails] == [
        "ldap: bind as 'uid=carol,ou=people,dc=example,dc=net': Invalid credentials",
        "ldap: no such user under 'ou=people,dc=example,dc=net'",
        'domain not declared',
    ]
