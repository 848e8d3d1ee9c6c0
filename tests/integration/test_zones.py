"""Shared state zones (docs/security.md "Shared state zones", docs/configuration.md
`zones`): security state (the token deny-list, active blocks) lives in zones that are
never evicted, so no amount of client-driven churn in the counters can push it out.

The attack of issue 9: an operator denies a token with `sluice ctl token deny`; a client
then fails AUTH hundreds of times with long random user names from many addresses (each
one stays under the per-address block), filling the rate-limit counters; the denied
token must still be refused. Then what a full non-evicting zone does: it refuses new
entries, says so in the log and in `sluice ctl status`, and the callers fail closed.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_zones.py
"""
import base64
import json
import os
import pathlib
import random
import shutil
import socket
import string
import subprocess
import tempfile
import time

import pytest

from conftest import ALICE, ROOT, RawClient, SLUICE, b64, upstream_conf
from bearer import INVALID, OK, connect, xoauth2

POLICIES = [str(ROOT / 'policies' / n) for n in
            ('ratelimit.lua', 'auth.lua', 'oauth2.lua', 'sender_domain.lua', 'audit.lua')]
ATTEMPTS = 600          # failed AUTHs of the attack
PER_ADDRESS = 4         # under ratelimit.lua's 5 a minute that would block the address
NAME_LEN = 480          # octets of each random user name (SASL allows up to 512)
DEADLINE = 60           # seconds the whole attack may take, on a slow machine


@pytest.fixture(scope='module')
def dev_key():
    d = pathlib.Path(tempfile.mkdtemp(prefix='sluice-zones-'))
    os.chmod(d, 0o755)
    subprocess.run([SLUICE, 'token', '--init', '--dir', str(d)], capture_output=True,
                   check=True)
    for f in d.iterdir():
        if f.suffix != '.key':
            os.chmod(f, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def domains_lua(jwks):
    return ("{ ['example.org'] = { auth = { 'file', 'oauth2' }, oauth2 = { issuer = "
            "'https://idp.test', audience = 'smtp://relay.test', jwks_file = '%s' } },\n"
            "    ['example.net'] = {} }" % jwks)


def make(make_relay, sink, dev_key, tmp_path, extra=''):
    sock = tmp_path / ('sluice-%d.ctl' % time.monotonic_ns())
    r = make_relay(upstream_conf(sink.port), policies=POLICIES,
                   domains=domains_lua(dev_key / 'dev-token.jwks'),
                   limits='max_auth_failures = 10',
                   extra="control_socket = '%s',\n  %s" % (sock, extra))
    r.sock = sock
    return r


def token_for(relay, dev_key, user=ALICE):
    return subprocess.run([SLUICE, 'token', '-c', str(relay.conf), '--key',
                           str(dev_key / 'dev-token.key'), user],
                          capture_output=True, text=True, check=True).stdout.strip()


def jti_of(token):
    body = token.split('.')[1]
    return json.loads(base64.urlsafe_b64decode(body + '=' * (-len(body) % 4)))['jti']


def ctl(relay, *args):
    return subprocess.run([SLUICE, 'ctl', '-s', str(relay.sock)] + list(args),
                          capture_output=True, text=True, timeout=20)


def status(relay):
    r = ctl(relay, '--json', 'status')
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def token_auth(relay, token):
    c = connect(relay, 'smtps')
    code, text = c.cmd('AUTH XOAUTH2 ' + xoauth2(ALICE, token))
    if code == 334:  # the RFC 7628 error challenge: answer it to get the final reply
        code, text = c.cmd('')
    c.close()
    return code, text


class Sourced(RawClient):
    """RawClient over implicit TLS from a chosen loopback address."""

    def __init__(self, relay, source):
        self.host = relay.host
        sock = socket.create_connection((relay.host, relay.smtps_port), timeout=10,
                                        source_address=(source, 0))
        self.sock = relay.tls_context().wrap_socket(sock, server_hostname=relay.host)
        self.buf = b''
        self.greeting = self.reply()


def attack(relay, attempts=ATTEMPTS, seed=9):
    """Failed AUTHs with long random user names, PER_ADDRESS from each of many loopback
    addresses. Returns the replies' codes."""
    rnd = random.Random(seed)
    codes = []
    deadline = time.monotonic() + DEADLINE
    for n in range(0, attempts, PER_ADDRESS):
        source = '127.77.%d.%d' % (n // PER_ADDRESS // 250, n // PER_ADDRESS % 250 + 1)
        c = Sourced(relay, source)
        assert c.greeting.code == 220, c.greeting
        assert c.cmd(b'EHLO attacker.test').code == 250
        for _ in range(min(PER_ADDRESS, attempts - n)):
            user = ''.join(rnd.choice(string.ascii_lowercase) for _ in range(NAME_LEN))
            codes.append(c.cmd(b'AUTH PLAIN ' + b64('\0%s@junk.test\0x' % user).encode()).code)
        c.close()
        assert time.monotonic() < deadline, 'the attack took too long: %d attempts' % n
    return codes


def test_a_denied_token_stays_denied_after_hundreds_of_failed_auths(make_relay, sink,
                                                                    dev_key, tmp_path):
    """Issue 9: with everything in one small evicting dictionary, about 380 failed AUTHs
    evicted the deny entry and the revoked token got 235. The deny-list is its own
    zone now, which is never evicted, however small the default dictionary is."""
    relay = make(make_relay, sink, dev_key, tmp_path, extra='shdict_size = 262144,')
    token = token_for(relay, dev_key)
    assert token_auth(relay, token) == OK
    r = ctl(relay, 'token', 'deny', 'jti', jti_of(token))
    assert r.returncode == 0, r.stderr
    assert token_auth(relay, token) == INVALID

    codes = attack(relay)
    assert codes == [535] * ATTEMPTS  # all counted as failures, none blocked

    assert token_auth(relay, token) == INVALID
    events = [e for e in relay.audit('token_validation', n=3) if e['jti'] == jti_of(token)]
    assert [e['reason'] for e in events if not e['success']] == ['revoked', 'revoked']


def ctl_line(relay, line):
    """One request on the control socket, without starting a `sluice ctl` process."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(relay.sock))
        s.sendall(line.encode() + b'\n')
        return json.loads(s.makefile().readline())


def test_counters_are_evicted_in_their_own_zone_and_status_shows_every_zone(
        make_relay, sink, dev_key, tmp_path):
    relay = make(make_relay, sink, dev_key, tmp_path,
                 extra="zones = { limits = { size = '64k' } },")
    token = token_for(relay, dev_key)
    assert ctl(relay, 'token', 'deny', 'jti', jti_of(token)).returncode == 0
    codes = attack(relay, attempts=400, seed=10)
    assert codes == [535] * 400
    assert token_auth(relay, token) == INVALID

    zones = status(relay)['zones']
    assert list(zones) == ['default', 'limits', 'blocks', 'denylist', 'auth_cache', 'jwks']
    for z in zones.values():
        assert set(z) == {'evict', 'capacity', 'bytes', 'entries', 'evictions', 'refusals',
                          'expired', 'backend', 'fallbacks'}
        assert (z['backend'], z['fallbacks']) == ('local', 0)
        assert z['bytes'] <= z['capacity']
    limits, deny = zones['limits'], zones['denylist']
    assert (limits['evict'], limits['capacity']) == (True, 64 * 1024)
    assert limits['evictions'] > 0 and limits['refusals'] == 0
    # each counter's key holds its user name bounded (sluice.key_part): ~200 octets an
    # entry, where the 480-octet names themselves would take ~600
    assert limits['bytes'] / limits['entries'] < 300, limits
    assert (deny['evict'], deny['entries'], deny['evictions'], deny['refusals']) == (
        False, 1, 0, 0)
    text = ctl(relay, 'status').stdout.splitlines()
    assert 'zones.denylist.entries: 1' in text and 'zones.limits.evict: true' in text, text


def test_a_full_denylist_refuses_the_deny_and_every_token_gets_454(make_relay, sink,
                                                                   dev_key, tmp_path):
    relay = make(make_relay, sink, dev_key, tmp_path,
                 extra="zones = { denylist = { size = '32k' } },")
    denied, good = token_for(relay, dev_key), token_for(relay, dev_key)
    assert ctl_line(relay, 'token deny jti ' + jti_of(denied))['ok'] is True
    for n in range(5000):
        reply = ctl_line(relay, 'token deny jti filler-%d' % n)
        if not reply['ok']:
            break
    assert 100 < n < 5000
    assert reply['error'].startswith('the zone denylist is full: nothing was denied'), reply
    [full] = relay.wait_logs('zone.full')
    assert (full['level'], full['zone'], full['refusals']) == ('warning', 'denylist', 1)

    # the denied token is still found; any other cannot be cleared: 454, not 235
    assert token_auth(relay, denied) == INVALID
    assert token_auth(relay, good) == (454, b'4.7.0 Temporary authentication failure, '
                                            b'try again later')
    [log] = relay.wait_logs('oauth2.denylist_unavailable')
    assert log['error'] == 'full'
    zone = status(relay)['zones']['denylist']
    assert zone['refusals'] == 1 and zone['evictions'] == 0 and zone['entries'] == n + 1

    # room again, and a deny that succeeds: tokens are decided again
    assert ctl_line(relay, 'token allow jti filler-0')['removed'] is True
    assert ctl_line(relay, 'token deny jti filler-new')['ok'] is True
    assert token_auth(relay, good) == OK
    assert token_auth(relay, denied) == INVALID


def test_a_long_token_id_is_denied_under_its_bounded_key(make_relay, sink, dev_key,
                                                         tmp_path):
    """A jti of any length can be denied: the control socket and policies/oauth2.lua both
    bound it to '~' and its SHA-256 (sluice.key_part)."""
    relay = make(make_relay, sink, dev_key, tmp_path)
    token = token_for(relay, dev_key, ALICE)
    sub = 'x' * 300 + '@example.org'  # sluice token makes sub the user: a long one
    r = ctl_line(relay, 'token deny sub ' + sub)
    assert r['ok'] is True and r['key'] == 'oauth2:deny:sub:~' + __import__(
        'hashlib').sha256(sub.encode()).hexdigest()
    assert token_auth(relay, token) == OK  # another subject
    assert ctl_line(relay, 'token deny sub ' + ALICE)['key'] == 'oauth2:deny:sub:' + ALICE
    assert token_auth(relay, token) == INVALID


def test_a_block_that_does_not_fit_is_still_enforced_and_none_is_evicted(make_relay, sink,
                                                                          dev_key, tmp_path):
    """The zone blocks is never evicted: blocks from many addresses fill it, the first is
    still in force, and a new one that does not fit (kept in limits instead, and logged)
    still refuses its address."""
    relay = make(make_relay, sink, dev_key, tmp_path,
                 extra="zones = { blocks = { size = '32k' } },")

    def fail_from(source, n=5):
        c = Sourced(relay, source)
        assert c.cmd(b'EHLO attacker.test').code == 250
        codes = [c.cmd(b'AUTH PLAIN ' + b64('\0u@junk.test\0x').encode()).code
                 for _ in range(n)]
        c.close()
        return codes

    deadline = time.monotonic() + DEADLINE
    for i in range(1, 1000):
        source = '127.78.%d.%d' % (i // 250, i % 250 + 1)
        assert fail_from(source) == [535] * 5
        if relay.logs('zone.full'):
            break
        assert time.monotonic() < deadline
    assert 50 < i < 1000
    [full] = relay.wait_logs('zone.full')
    assert full['zone'] == 'blocks'
    # the address whose block did not fit is refused all the same
    c = Sourced(relay, source)
    assert c.greeting.code == 421, c.greeting
    c.close()
    # and the first one is still blocked: nothing was pushed out
    c = Sourced(relay, '127.78.0.2')
    assert c.greeting == (421, b'4.7.0 Too many failed logins from your address, try later')
    c.close()
    blocks = status(relay)['zones']['blocks']
    assert blocks['refusals'] >= 1 and blocks['evictions'] == 0
    listed = ctl_line(relay, 'ratelimit list auth_fail:ip:')['blocked']
    assert {'auth_fail:ip:127.78.0.2', 'auth_fail:ip:' + source} <= {b['name'] for b in listed}


def test_a_reload_that_resizes_a_zone_is_refused(make_relay, sink, dev_key, tmp_path):
    relay = make(make_relay, sink, dev_key, tmp_path,
                 extra="zones = { blocks = { size = '64k' } },")
    relay.conf.write_text(relay.conf.read_text().replace("'64k'", "'128k'"))
    r = ctl_line(relay, 'reload')
    assert r['ok'] is False
    assert 'zones changed' in r['error'] and 'restart' in r['error'], r
    assert status(relay)['zones']['blocks']['capacity'] == 64 * 1024
