"""The auth cache expiring (docs/authentication.md "The auth cache", "One check for
identical checks"): clients of one user that miss together share one password hash (single
flight) instead of computing one each, every one of them still gets its own 235; one whose
hook runs out of budget while it waits breaks nobody else's wait, and when all have left,
the next check starts afresh.

The hash is made slow (sha512-crypt, 3,000,000 rounds: about 0.9 s) so that the
checks overlap for certain; each step waits for the log line of the one before it
(auth.verify: a hash starts; auth.verify_shared: a check joined the one in progress)."""
import time
import warnings

import pytest

from conftest import ALICE, PASSWORDS, ROOT, b64, upstream_conf

PW = PASSWORDS[ALICE]
AUTH_ONLY = [str(ROOT / 'policies' / 'auth.lua')]
OK = (235, b'2.7.0 Authentication successful')
AUTH_LINE = ('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW)) + '\r\n').encode()


@pytest.fixture
def slow_alice(tmp_path):
    users = tmp_path / 'slow-alice'
    users.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        import crypt  # deprecated, not gone, in Debian 12's Python 3.11
    h = crypt.crypt(PW, '$6$rounds=3000000$sluicetest$')
    (users / 'example.org.txt').write_text('alice:%s\n' % h)
    return users


def ehlo_clients(relay, n):
    clients = []
    for _ in range(n):
        c = relay.raw()
        assert c.cmd(b'EHLO client.test').code == 250
        clients.append(c)
    return clients


def wait_count(relay, event, n):
    found = relay.wait_logs(event, n, timeout=10)
    assert len(found) >= n, (event, found)
    return found


def test_clients_missing_an_expired_entry_together_share_one_hash(make_relay, sink,
                                                                   slow_alice):
    r = make_relay(upstream_conf(sink.port), users=slow_alice, policies=AUTH_ONLY, workers=1,
                   extra='auth_cache_ttl = 1, hook_timeout = 20,')  # a loaded machine
    first = r.raw()
    first.cmd(b'EHLO client.test')
    assert first.cmd(AUTH_LINE.rstrip(b'\r\n')) == OK  # computed, then remembered for 1 s
    remembered = time.monotonic()
    first.close()
    assert len(wait_count(r, 'auth.verify', 1)) == 1
    clients = ehlo_clients(r, 6)
    # the entry expires 1 s after 235: the passing of that time is what is tested
    time.sleep(max(0.0, remembered + 1.2 - time.monotonic()))
    clients[0].send(AUTH_LINE)  # misses: the hash starts
    wait_count(r, 'auth.verify', 2)
    for c in clients[1:]:
        c.send(AUTH_LINE)  # miss too, while it runs: they join it
    shared = wait_count(r, 'auth.verify_shared', 5)
    assert [s['waiters'] for s in shared] == [2, 3, 4, 5, 6]
    assert [c.reply() for c in clients] == [OK] * 6
    verifies = r.logs('auth.verify')
    assert len(verifies) == 2, verifies  # one before the expiry, one after: not seven
    assert all(v['backend'] == 'file' and v['user'] == ALICE for v in verifies)
    assert r.logs('auth.cache_hit') == []  # the six did miss
    assert len(r.wait_logs('auth.ok', 7)) == 7
    for c in clients:
        c.close()


def test_a_client_whose_hook_runs_out_while_it_waits_does_not_break_the_others(
        make_relay, sink, slow_alice, tmp_path):
    # The starter's on_auth sleeps first (late.lua: a budget is per policy call), so its
    # budget ends 0.3 s into the hash it started: it gets 451 and leaves the flight; the
    # two that joined get 235 (their 6 s are ample for the rest of the hash).
    late = tmp_path / 'late.lua'
    late.write_text("local sluice = require('sluice')\n"
                    "return { on_auth = function(session, auth)\n"
                    "  if session.helo == 'late.test' then sluice.sleep(5.7) end\n"
                    "  if sluice.passwd.verify(auth.user, auth.password) then\n"
                    "    return sluice.accept()\n"
                    "  end\n"
                    "  return sluice.reject(535, '5.7.8', 'no')\n"
                    "end }\n")
    r = make_relay(upstream_conf(sink.port), users=slow_alice, workers=1,
                   policies=[str(late)], extra='hook_timeout = 6,')
    starter = r.raw()
    assert starter.cmd(b'EHLO late.test').code == 250
    stayers = ehlo_clients(r, 2)
    starter.send(AUTH_LINE)
    wait_count(r, 'auth.verify', 1)
    for c in stayers:
        c.send(AUTH_LINE)
    wait_count(r, 'auth.verify_shared', 2)
    assert starter.reply().code == 451  # its own budget, while the hash runs on
    errors = wait_count(r, 'policy.error', 1)
    assert 'hook_timeout' in errors[0]['error'], errors
    assert [c.reply() for c in stayers] == [OK] * 2
    # The result reached the ones left and was remembered at their 235: the next one hits.
    later = r.raw()
    later.cmd(b'EHLO client.test')
    assert later.cmd(AUTH_LINE.rstrip(b'\r\n')) == OK
    for c in [starter, later] + stayers:
        c.close()
    assert len(r.wait_logs('auth.cache_hit', 1)) == 1
    assert len(r.logs('auth.verify')) == 1
    assert len(r.wait_logs('auth.ok', 3)) == 3


def test_once_every_waiter_has_left_the_next_check_hashes_afresh(make_relay, sink,
                                                                  slow_alice):
    # Every hook's budget (0.5 s) ends before the hash (about 0.9 s): both leave, and the
    # flight with them; a check after that starts a hash of its own, joins nothing.
    r = make_relay(upstream_conf(sink.port), users=slow_alice, policies=AUTH_ONLY, workers=1,
                   extra='hook_timeout = 0.5,')
    a, b, c = ehlo_clients(r, 3)
    a.send(AUTH_LINE)
    wait_count(r, 'auth.verify', 1)
    b.send(AUTH_LINE)
    wait_count(r, 'auth.verify_shared', 1)
    assert [a.reply().code, b.reply().code] == [451, 451]
    c.send(AUTH_LINE)
    assert c.reply().code == 451
    for x in (a, b, c):
        x.close()
    assert len(r.logs('auth.verify')) == 2
    assert len(r.logs('auth.verify_shared')) == 1
    assert r.logs('auth.ok') == []
