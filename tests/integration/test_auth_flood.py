"""AUTH floods (docs/security.md "AUTH floods" and "Limits"): many AUTHs at once from one
client never become uncounted guessing. Each client's share of the password-check queue is
bounded, so another client still logs in during a flood; the shipped limiter lets no more
than its limit of attempts reach the check however many arrive at once; every AUTH that
does not end in 235 counts towards limits.max_auth_failures; a success that came too late
(the hook had run out of time, the client got 451) is never remembered by the auth cache.

Floods are real TLS connections on loopback (127.0.0.1; the other client is 127.0.0.2),
bounded in count, released together by a barrier."""
import subprocess
import threading
import time
import warnings

import pytest

from conftest import ALICE, PASSWORDS, ROOT, SLUICE, b64, upstream_conf

PW = PASSWORDS[ALICE]
AUTH_ONLY = [str(ROOT / 'policies' / 'auth.lua')]
OK = (235, b'2.7.0 Authentication successful')


@pytest.fixture
def slow_users(tmp_path):
    """alice and bob with argon2id hashes (tens of ms each): a queue forms."""
    d = tmp_path / 'slow-users'
    d.mkdir()
    lines = []
    for user in ('alice', 'bob'):
        h = subprocess.run([SLUICE, 'passwd', '-s', 'argon2id'],
                           input=PASSWORDS[user + '@example.org'] + '\n', text=True,
                           capture_output=True, check=True).stdout.strip()
        lines.append('%s:%s\n' % (user, h))
    (d / 'example.org.txt').write_text(''.join(lines))
    return d


def flood(relay, n, user, password, source='127.0.0.1', sent=None):
    """n TLS sessions from source, each EHLO'd, then all send one AUTH PLAIN at once
    (sent, an Event, is set once every one has been sent). password is one for all, or a
    list of n. The replies, in no order."""
    clients = []
    for _ in range(n):
        c = relay.raw(source=source)
        assert c.cmd(b'EHLO flood.test').code == 250
        clients.append(c)
    barrier = threading.Barrier(n)
    replies = [None] * n
    passwords = password if isinstance(password, list) else [password] * n
    lines = [('AUTH PLAIN ' + b64('\0%s\0%s' % (user, pw)) + '\r\n').encode()
             for pw in passwords]
    count = [0]
    lock = threading.Lock()

    def one(i):
        barrier.wait(timeout=10)
        clients[i].send(lines[i])
        with lock:
            count[0] += 1
            if count[0] == n and sent is not None:
                sent.set()
        replies[i] = clients[i].reply()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for c in clients:
        c.close()
    return replies


def test_parallel_wrong_passwords_reach_the_check_no_more_than_the_limit(make_relay, sink):
    r = make_relay(upstream_conf(sink.port))  # the shipped policies: 5 failures a minute
    replies = flood(r, 30, 'alice@example.org', 'wrong-password')
    codes = sorted(x.code for x in replies)
    assert codes.count(535) <= 5, codes
    assert codes.count(535) + codes.count(454) == 30, codes
    assert len(r.wait_logs('auth.fail', 30)) == 30
    # the address is blocked now, for the right password too and at connect
    c = r.raw()
    assert c.greeting.code == 421


def test_a_client_flooding_auth_leaves_another_client_free(make_relay, sink, certs,
                                                           slow_users):
    r = make_relay(upstream_conf(sink.port), users=slow_users, policies=AUTH_ONLY, workers=1,
                   limits='max_auth_jobs_per_client = 2,')
    result = {}

    def legit():  # runs while the flood is set up and sent
        c = r.raw(source='127.0.0.2')
        c.cmd(b'EHLO legit.test')
        result['reply'] = c.cmd('AUTH PLAIN ' + b64('\0bob@example.org\0%s' %
                                                     PASSWORDS['bob@example.org']))
        c.close()

    other = threading.Thread(target=legit)
    other.start()
    # A guessing flood: every password different. Identical ones would share one hash
    # (docs/authentication.md "One check for identical checks") and take one share.
    replies = flood(r, 16, 'alice@example.org', ['wrong-password-%d' % i for i in range(16)])
    other.join(timeout=30)
    codes = [x.code for x in replies]
    assert codes.count(454) >= 1, codes  # over its share: refused before any hash
    assert set(codes) <= {535, 454}, codes
    busy = r.wait_logs('auth.busy')
    assert busy and all('max_auth_jobs_per_client' in b['msg'] for b in busy), busy
    assert result['reply'] == OK


@pytest.mark.parametrize('broken', [
    [b'AUTH PLAIN', b'*'],                       # cancel
    [b'AUTH PLAIN !!!!'],                        # bad base64
    [b'AUTH LOGIN', b'YWxpY2U=\n'],              # a line ending in a bare LF (sent as is)
], ids=['cancel', 'bad-base64', 'bare-lf'])
def test_every_failed_exchange_counts_towards_max_auth_failures(make_relay, sink, broken):
    r = make_relay(upstream_conf(sink.port), policies=AUTH_ONLY,
                   limits='max_auth_failures = 2,')
    c = r.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    for _ in range(2):
        for line in broken[:-1]:
            assert c.cmd(line).code == 334
        if broken[-1].endswith(b'\n'):
            c.send(broken[-1])
            reply = c.reply()
        else:
            reply = c.cmd(broken[-1])
        assert reply.code // 100 in (4, 5), reply
    assert c.reply() == (421, b'4.7.0 Too many authentication failures')
    with pytest.raises(EOFError):
        c.reply()
    assert [f['code'] for f in r.wait_logs('auth.fail', 2)][:2] in ([501, 501], [500, 500])


def test_a_success_after_the_hook_ran_out_of_time_is_not_remembered(make_relay, sink,
                                                                    tmp_path):
    # alice's hash takes about a second (sha512-crypt, 4,000,000 rounds), her hook 0.2 s:
    # the right password gets 451, and the check goes on on the pool. What it finds later
    # must not be put in the auth cache: until the end of the test, every AUTH of hers
    # runs out of time again (before the fix the ones after the first check ended got 235
    # from the cache within milliseconds).
    users = tmp_path / 'slow-alice'
    users.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        import crypt  # deprecated, not gone, in Debian 12's Python 3.11
    h = crypt.crypt(PW, '$6$rounds=4000000$sluicetest$')
    (users / 'example.org.txt').write_text('alice:%s\n' % h)
    r = make_relay(upstream_conf(sink.port), users=users, policies=AUTH_ONLY, workers=1,
                   extra='hook_timeout = 0.2, auth_cache_ttl = 60,')
    replies = []
    deadline = time.monotonic() + 3  # several checks' worth: the first has ended by then
    while time.monotonic() < deadline:
        c = r.raw()
        c.cmd(b'EHLO alice.test')
        replies.append(c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW))))
        c.close()
    assert len(replies) >= 5 and all(x.code == 451 for x in replies), replies
    assert r.logs('auth.cache_hit') == []
