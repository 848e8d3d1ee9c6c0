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
    (sent, an Event, is set once every one has been sent). The replies, in no order."""
    clients = []
    for _ in range(n):
        c = relay.raw(source=source)
        assert c.cmd(b'EHLO flood.test').code == 250
        clients.append(c)
    barrier = threading.Barrier(n)
    replies = [None] * n
    line = ('AUTH PLAIN ' + b64('\0%s\0%s' % (user, password)) + '\r\n').encode()
    count = [0]
    lock = threading.Lock()

    def one(i):
        barrier.wait(timeout=10)
        clients[i].send(line)
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

    def legit():
        time.sleep(0)  # starts with the flood; the flood thread's barrier releases first
        c = r.raw(source='127.0.0.2')
        c.cmd(b'EHLO legit.test')
        result['reply'] = c.cmd('AUTH PLAIN ' + b64('\0bob@example.org\0%s' %
                                                     PASSWORDS['bob@example.org']))
        c.close()

    other = threading.Thread(target=legit)
    other.start()
    replies = flood(r, 16, 'alice@example.org', 'wrong-password')
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
                                                                    slow_users):
    # 40 checks of bob's queue up ahead of alice's, on one worker's two pool threads: her
    # hook's 0.3 s run out while hers waits. The right password gets 451, and what the
    # pool finds later is not put in the auth cache: her next AUTH is checked again.
    r = make_relay(upstream_conf(sink.port), users=slow_users, policies=AUTH_ONLY, workers=1,
                   extra='hook_timeout = 0.3, auth_cache_ttl = 60,',
                   limits='max_auth_jobs_per_client = 64,')
    result = {}
    sent = threading.Event()

    def alice():
        c = r.raw()
        c.cmd(b'EHLO alice.test')
        sent.wait(timeout=20)  # the flood's AUTHs are on their way: hers queues behind
        result['first'] = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW)))
        c.close()

    t = threading.Thread(target=alice)
    t.start()
    flood(r, 40, 'bob@example.org', 'wrong-password', source='127.0.0.2', sent=sent)
    t.join(timeout=30)
    assert result['first'].code == 451, result
    # Until the pool has drained, her AUTHs may time out too (a loaded machine); none may
    # be answered from the cache before one of them really got 235.
    for _ in range(20):
        c = r.raw()
        c.cmd(b'EHLO alice.test')
        reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW)))
        c.close()
        if reply == OK:
            break
        assert reply.code == 451, reply
    assert reply == OK
    assert r.logs('auth.cache_hit') == []  # the late success was not remembered
    c = r.raw()
    c.cmd(b'EHLO alice.test')
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW))) == OK
    c.close()
    assert len(r.wait_logs('auth.cache_hit')) == 1  # what 235 was sent for is
