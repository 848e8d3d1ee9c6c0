"""The Redis zone backend (docs/deployment.md, docs/configuration.md `redis` and `zones`):
zones with backend = 'redis' keep their entries in a real redis-server that several
sluice processes share, each hook call yields on the worker's own connection, and when
Redis is down or stuck the zone answers from its local fallback (fail open) or refuses
(fail closed: the deny-list), within redis.timeout, and says so in the log.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_redis.py
"""
import json
import smtplib
import subprocess
import time

import pytest

from conftest import ALICE, SLUICE, upstream_conf, wait_until
from redis_server import RedisServer

LIMIT = 3  # messages per hour for alice, through domains[...].limits
DOMAINS = ("{ ['example.org'] = { check_header_from = false, limits = { "
           "user_messages_per_hour = %d } }, ['example.net'] = { check_header_from = false } }"
           % LIMIT)
REDIS_ZONES = ("zones = { limits = { backend = 'redis' }, blocks = { backend = 'redis' },"
               " denylist = { backend = 'redis' } },")
MSG = b'From: <alice@example.org>\r\nSubject: t\r\n\r\nhello\r\n'


@pytest.fixture
def redis(tmp_path):
    r = RedisServer(tmp_path / 'redis')
    yield r
    r.stop()


def node(make_relay, sink, redis, extra='', redis_extra=''):
    """A relay with two workers (each its own Redis connection) and the zones in redis."""
    return make_relay(upstream_conf(sink.port), domains=DOMAINS, workers=2,
                      extra=REDIS_ZONES + redis.conf(redis_extra) + extra)


def send(relay):
    """One message from alice: the reply code of MAIL FROM (250, or the refusal's)."""
    c = relay.smtps()
    try:
        c.sendmail(ALICE, ['bob@example.net'], MSG)
        return 250
    except smtplib.SMTPSenderRefused as e:
        return e.smtp_code
    finally:
        c.quit()


@pytest.mark.threads  # workers, the control thread and the blocking connection
def test_a_limit_holds_across_nodes(make_relay, sink, redis):
    a = node(make_relay, sink, redis)
    b = node(make_relay, sink, redis)
    codes = [send(r) for r in (a, b, a, b, a)]
    assert codes == [250, 250, 250, 451, 451]
    sink.wait_messages(LIMIT)
    # the counter is one key in Redis, under the prefix and the zone's name, with the
    # window's TTL (2 h for an hourly window), holding the count as a number
    keys = redis.keys('sluice:limits:messages:user:alice@example.org:3600:*')
    assert len(keys) == 1, redis.keys()
    assert redis.cli_raw('GET', keys[0]) == str(LIMIT)
    assert 3600 < int(redis.cli_raw('TTL', keys[0])) <= 7200
    # nothing fell back to a node's own counters
    for r in (a, b):
        assert r.logs('zone.fallback') == []


def test_redis_down_falls_back_to_local_limits(make_relay, sink, redis):
    a = node(make_relay, sink, redis)
    assert send(a) == 250
    redis.stop()
    started = time.monotonic()
    # the node keeps serving: its local counters start from zero, so alice gets the
    # whole limit again on this node (fail open), and no more
    assert [send(a) for _ in range(LIMIT + 1)] == [250] * LIMIT + [451]
    assert time.monotonic() - started < 20
    down = a.wait_logs('redis.down')
    assert down[0]['redis'] == '127.0.0.1:%d' % redis.port
    fb = {line['zone']: line for line in a.wait_logs('zone.fallback', n=2)}
    assert 'local' in fb['limits']['answer'] and 'local' in fb['blocks']['answer']
    # back: the next connect after the back-off works, and the shared count is used again
    redis.start()
    wait_until(lambda: _send_and_check_up(a), 'the node uses Redis again', timeout=20)


def _send_and_check_up(relay):
    send(relay)
    return relay.logs('redis.up') != []


@pytest.mark.threads
def test_a_stuck_redis_costs_a_client_at_most_the_timeout(make_relay, sink, redis):
    a = node(make_relay, sink, redis, redis_extra=', timeout = 0.2')
    assert send(a) == 250
    redis.pause()
    try:
        c = a.smtps()
        t0 = time.monotonic()
        code, _ = c.mail(ALICE)
        waited = time.monotonic() - t0
        c.quit()
        assert code == 250
        assert waited < 2, waited
        fb = a.wait_logs('zone.fallback')
        assert 'redis.timeout' in fb[0]['error']
    finally:
        redis.resume()


def test_the_keys_a_policy_writes_are_shared(make_relay, sink, redis, tmp_path):
    pol = tmp_path / 'shared.lua'
    pol.write_text("""
local sluice = require('sluice')
local z = sluice.zone('limits')
return { on_mail_from = function(session, tx, sender)
  local n = z:incr('visits', 1, 60)
  local ok = z:set('note', 'from ' .. session.user, 60)
  local v = z:get('note')
  local left = z:ttl('note')
  local added, why = z:add('note', 'again')
  local cur, prev = z:incr_peek('visits', 0, 0, 'nothing')
  sluice.log('info', 'test.zone', { n = n, ok = ok, v = v, left = left > 0 and left <= 60,
    added = added or why, cur = cur, prev = prev, str = z:incr('note', 1) == nil })
end }
""")
    a = make_relay(upstream_conf(sink.port), domains=DOMAINS,
                   policies=[str(pol)] + _shipped(),
                   extra=REDIS_ZONES + redis.conf())
    assert send(a) == 250
    line = a.wait_logs('test.zone')[0]
    assert line['n'] == 1 and line['ok'] is True and line['v'] == 'from ' + ALICE
    assert line['left'] is True and line['added'] == 'exists'
    assert line['cur'] == 1 and line['prev'] == 0 and line['str'] is True
    # a string as sluice stores it ('=' and the value with its Lua type tag)
    assert redis.cli_raw('GET', 'sluice:limits:note') == '=sfrom ' + ALICE


def _shipped():
    from conftest import SHIPPED_POLICIES
    return SHIPPED_POLICIES


@pytest.mark.parametrize('extra, error', [
    ("zones = { limits = { backend = 'redis' } },",
     "'redis' needs the redis table"),
    ("zones = { auth_cache = { backend = 'redis' } }, redis = { address = '127.0.0.1' },",
     'the auth cache is per process'),
    ("zones = { limits = { fail = 'closed' } },",
     "only a zone with backend = 'redis' can fail"),
    ("redis = { address = 'redis.example' },", 'expected an IPv4 or IPv6 address'),
    ("redis = { address = '127.0.0.1', socket = '/run/redis.sock' },",
     'not both'),
    ("redis = { address = '127.0.0.1', timeout = 10 },", 'at most 5 seconds'),
])
def test_configuration_errors(tmp_path, extra, error):
    conf = tmp_path / 'c.lua'
    conf.write_text("return { listeners = { { name = 'l', address = '127.0.0.1', port = 2525,"
                    " tls = 'none' } }, upstreams = { default = { { host = '127.0.0.1', "
                    "port = 25 } } }, insecure = true, policies = {}, %s }" % extra)
    r = subprocess.run([SLUICE, 'check', '-c', str(conf)], capture_output=True, text=True)
    assert r.returncode != 0
    assert error in r.stderr, r.stderr


# ---- the deny-list and blocks, from `sluice ctl` on any node --------------------------------

from test_zones import POLICIES as OAUTH_POLICIES, dev_key, domains_lua, jti_of, token_auth, token_for  # noqa: E402,F401
from bearer import INVALID, OK  # noqa: E402


def ctl(relay, *args):
    return subprocess.run([SLUICE, 'ctl', '-s', str(relay.sock)] + list(args),
                          capture_output=True, text=True, timeout=20)


def oauth_node(make_relay, sink, redis, dev_key, tmp_path, extra=''):
    sock = tmp_path / ('sluice-%d.ctl' % time.monotonic_ns())
    r = make_relay(upstream_conf(sink.port), policies=OAUTH_POLICIES,
                   domains=domains_lua(dev_key / 'dev-token.jwks'),
                   extra="control_socket = '%s',\n  %s%s%s" % (sock, REDIS_ZONES,
                                                               redis.conf(), extra))
    r.sock = sock
    return r


@pytest.mark.threads
def test_a_deny_on_one_node_holds_on_the_others(make_relay, sink, redis, dev_key, tmp_path):
    a, b, c = (oauth_node(make_relay, sink, redis, dev_key, tmp_path) for _ in range(3))
    token = token_for(a, dev_key)
    assert [token_auth(r, token) for r in (a, b, c)] == [OK] * 3
    p = ctl(a, 'token', 'deny', 'jti', jti_of(token))
    assert p.returncode == 0, p.stderr
    # the control socket wrote it to Redis before answering: enforced at once everywhere
    assert [token_auth(r, token) for r in (b, c, a)] == [INVALID] * 3
    assert len(redis.keys('sluice:denylist:oauth2:deny:jti:*')) == 1
    p = ctl(c, 'token', 'allow', 'jti', jti_of(token))
    assert p.returncode == 0, p.stderr
    assert [token_auth(r, token) for r in (a, b)] == [OK] * 2


def test_the_deny_list_fails_closed_without_redis(make_relay, sink, redis, dev_key, tmp_path):
    a = oauth_node(make_relay, sink, redis, dev_key, tmp_path)
    token = token_for(a, dev_key)
    assert token_auth(a, token) == OK
    redis.stop()
    code, text = token_auth(a, token)
    assert (code, text[:5]) == (454, b'4.7.0'), (code, text)
    fb = [l for l in a.wait_logs('zone.fallback') if l['zone'] == 'denylist']
    assert fb and fb[0]['answer'] == 'refused (fail closed)'
    # and a deny cannot be made either: the operator is told, nothing is half-done
    p = ctl(a, 'token', 'deny', 'jti', jti_of(token))
    assert p.returncode != 0 and 'unavailable' in (p.stdout + p.stderr)
    p = ctl(a, 'token', 'allow', 'jti', jti_of(token))
    assert p.returncode != 0 and 'nothing was allowed' in p.stderr, p
    # passwords still work: only token AUTH needs the deny-list
    c = a.smtps()
    c.quit()
    st = json.loads(ctl(a, '--json', 'status').stdout)
    assert st['zones']['denylist']['backend'] == 'redis'
    assert st['zones']['denylist']['fallbacks'] >= 1
    assert st['zones']['default']['backend'] == 'local'
    assert st['redis']['links_up'] == 0 and st['redis']['failures'] >= 1
    assert st['redis']['connects'] >= 1


def test_the_deny_list_can_fail_open(make_relay, sink, redis, dev_key, tmp_path):
    a = oauth_node(make_relay, sink, redis, dev_key, tmp_path,
                   extra="\n  zones = { denylist = { backend = 'redis', fail = 'open' },"
                         " limits = { backend = 'redis' } },")
    token = token_for(a, dev_key)
    redis.stop()
    assert token_auth(a, token) == OK


def test_ctl_ratelimit_sees_and_resets_what_every_node_counted(make_relay, sink, redis,
                                                                dev_key, tmp_path):
    a, b = (oauth_node(make_relay, sink, redis, dev_key, tmp_path) for _ in range(2))
    for r in (a, b):
        assert send(r) == 250
    show = json.loads(ctl(b, '--json', 'ratelimit', 'show',
                          'messages:user:' + ALICE).stdout)
    counters = [k for k in show['keys'] if k['key'].startswith('messages:user:' + ALICE)]
    assert [k['value'] for k in counters] == [2] and counters[0]['zone'] == 'limits'
    assert 3600 < counters[0]['ttl'] <= 7200
    reset = json.loads(ctl(a, '--json', 'ratelimit', 'reset', 'messages:user:' + ALICE).stdout)
    assert reset['removed'] == 1
    assert redis.keys('sluice:limits:messages:user:*') == []


@pytest.mark.threads  # the metrics thread reads what the workers count
def test_metrics_show_the_redis_links_and_each_zones_fallbacks(make_relay, sink, redis):
    from conftest import free_port
    from test_metrics import scrape, value
    port = free_port()
    a = node(make_relay, sink, redis, extra="metrics = { port = %d }," % port)
    assert send(a) == 250
    s = scrape(port)
    assert value(s, 'sluice_redis_links_up') == 1
    assert value(s, 'sluice_redis_connects_total') == 1
    assert value(s, 'sluice_redis_failures_total') == 0
    assert value(s, 'sluice_zone_redis', zone='limits') == 1
    assert value(s, 'sluice_zone_redis', zone='default') == 0
    assert value(s, 'sluice_zone_fallbacks_total', zone='limits') == 0
    redis.stop()
    assert send(a) == 250
    s = scrape(port)
    assert value(s, 'sluice_redis_links_up') == 0
    assert value(s, 'sluice_redis_failures_total') >= 1
    assert value(s, 'sluice_zone_fallbacks_total', zone='limits') >= 1


def test_a_hook_waiting_on_redis_never_blocks_its_worker(make_relay, sink, redis, tmp_path):
    """One worker; Redis stuck; a client's MAIL FROM waits on it (up to redis.timeout = 2 s)
    while a second client on the same worker, whose hooks need no Redis (only MAIL FROM
    counts here), is greeted, authenticated and answered at once."""
    from conftest import ROOT
    pol = tmp_path / 'count.lua'
    pol.write_text("local z = require('sluice').zone('limits')\n"
                   "return { on_mail_from = function() z:incr('mails', 1, 60) end }\n")
    a = make_relay(upstream_conf(sink.port), domains=DOMAINS, workers=1,
                   policies=[str(ROOT / 'policies' / 'auth.lua'), str(pol)],
                   extra=REDIS_ZONES + redis.conf(', timeout = 2'))
    assert send(a) == 250  # the worker's connection is up
    first = a.smtps()
    redis.pause()
    try:
        first.putcmd('MAIL', 'FROM:<%s>' % ALICE)  # its hook now waits on Redis
        wait_until(lambda: a.logs('session.state') and any(
            o.get('to') == 'POLICY' for o in a.logs('session.state')[-3:]),
            'the MAIL FROM hook is waiting')
        t0 = time.monotonic()
        second = a.smtps()  # TLS handshake, EHLO and AUTH on the same worker
        assert second.noop()[0] == 250
        served = time.monotonic() - t0
        second.close()
        code, _ = first.getreply()
        waited = time.monotonic() - t0
    finally:
        redis.resume()
    first.close()
    assert code == 250  # the fallback answered (fail open)
    assert served < 1.0, served
    assert waited > served
