"""User enumeration by timing (docs/security.md, "User enumeration by timing"): a wrong
password and an unknown user cost the same work.

 * A directory in search mode (the real slapd of test_ldap.py, its stats log): an
   unknown user costs the directory the same operations as a wrong password, a search
   and a refused bind (of cn=sluice-no-such-user under the base).

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_auth_timing.py
"""
import re
import time

import pytest

from conftest import ROOT, b64, lua_str, upstream_conf
from test_ldap import SERVICE_DN, Slapd

INVALID = (535, b'5.7.8 Authentication credentials invalid')
POLICIES = [str(ROOT / 'policies' / 'auth.lua')]  # no rate limit: it is not what is timed


def timed_auth(c, user, password):
    t0 = time.perf_counter()
    reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (user, password)))
    return time.perf_counter() - t0, reply


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
    for user in ('carol@example.net', 'nobody@example.net'):
        assert timed_auth(c, user, 'guess')[1] == INVALID
    c.close()
    ops = stats_slapd.wait_operations(before + 6)[before:]
    service = ('BIND', SERVICE_DN, 0)
    decoy = ('BIND', 'cn=sluice-no-such-user,ou=people,dc=example,dc=net', 49)
    assert ops == [
        # a wrong password
        service, ('SRCH', '(mail=carol@example.net)', 0),
        ('BIND', 'uid=carol,ou=people,dc=example,dc=net', 49),
        # no such user: the same three operations, the bind refused as well
        service, ('SRCH', '(mail=nobody@example.net)', 0), decoy,
    ], ops
