"""The Prometheus metrics listener (docs/metrics.md): a real sluice with `metrics` set,
scraped over HTTP and read with a strict parser of the text exposition format 0.0.4
(written here: every sample's family TYPEd before it and its lines together, names and
label syntax per the data model, values that parse as floats, no series twice). Values
move with traffic: one relayed message adds one to messages{result="relayed"}, one failed
AUTH to auth{result="failed"}; a reload moves the generation. Other paths get 404, other
methods 405; a scraper outside `allow` is closed on with a metrics.refuse line. A real
Prometheus (Debian's) scrapes it too, and its query API reads back what sluice did.
With `metrics.tls` the listener speaks HTTPS only: curl, openssl s_client and Prometheus
scrape it with the dev CA; plain HTTP, TLS 1.1, a client without the certificate
`client_ca` asks for are refused and logged (metrics.tls_error); a stalled handshake is
closed at the deadline; a reload reads a renewed certificate (a root-only key) again."""
import json
import os
import pwd
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import (ALICE, SLUICE, b64, free_port, hup, lua_str, renew_certs, stop,
                      upstream_conf, wait_until)
from test_ctl import ctl_relay, status, world  # noqa: F401 (fixtures: ctl_relay, world)

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*'
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r'^(%s)(\{(?:%s=%s(?:,%s=%s)*,?)?\})? (\S+)(?: (-?\d+))?$'
                    % (NAME, LABEL, LABEL_VALUE, LABEL, LABEL_VALUE))
PAIR = re.compile(r'(%s)=(%s)' % (LABEL, LABEL_VALUE))
FLOAT = r'[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf)|NaN'
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')


def parse_exposition(text):
    """{(name, ((label, value), ...)): float}, or an AssertionError naming the line."""
    assert text.endswith('\n'), 'the text must end with a line feed'
    types, helps, series, done = {}, set(), {}, set()
    current = None
    for n, line in enumerate(text[:-1].split('\n'), 1):
        where = 'line %d: %r' % (n, line)
        assert line != '', 'empty line: ' + where
        if line.startswith('#'):
            parts = line.split(' ', 3)
            if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
                name = parts[2]
                assert re.fullmatch(NAME, name), 'bad name: ' + where
                if parts[1] == 'TYPE':
                    assert len(parts) == 4 and parts[3] in TYPES, 'bad TYPE: ' + where
                    assert name not in types, 'second TYPE: ' + where
                    assert name not in done, 'TYPE after its samples: ' + where
                    types[name] = parts[3]
                else:
                    assert name not in helps, 'second HELP: ' + where
                    assert len(parts) == 4 and not re.search(r'\\[^\\n]', parts[3]), \
                        'bad HELP: ' + where
                    helps.add(name)
            continue
        m = SAMPLE.match(line)
        assert m, 'not a sample line: ' + where
        name, labels, value = m.group(1), m.group(2) or '', m.group(3)
        family = name
        if name not in types:
            family = re.sub(r'_(bucket|sum|count)$', '', name)
            assert types.get(family) in ('histogram', 'summary'), 'no TYPE before: ' + where
        if family != current:
            assert family not in done, 'lines of %s not together: %s' % (family, where)
            if current is not None:
                done.add(current)
            current = family
        pairs = tuple(sorted(PAIR.findall(labels)))
        names = [p[0] for p in pairs]
        assert len(set(names)) == len(names), 'label twice: ' + where
        assert not any(x.startswith('__') for x in names), 'reserved label: ' + where
        assert re.fullmatch(FLOAT, value), 'not a float: ' + where
        value = float(value)
        key = (name, pairs)
        assert key not in series, 'series twice: ' + where
        series[key] = value
    for name, kind in types.items():
        assert kind != 'counter' or all(v >= 0 for (n, _), v in series.items() if n == name)
    return series


def test_the_strict_parser_refuses_what_the_format_forbids():
    good = '# HELP a_total x\n# TYPE a_total counter\na_total{k="v\\"w"} 1\n'
    assert parse_exposition(good) == {('a_total', (('k', '"v\\"w"'),)): 1.0}
    for bad in ('a 1\n',                                       # no TYPE
                '# TYPE a gauge\na 1\na 2\n',                  # series twice
                '# TYPE a gauge\na x\n',                       # not a float
                '# TYPE a gauge\na{k=v} 1\n',                  # unquoted label value
                '# TYPE a gauge\na{k="\\x"} 1\n',              # bad escape
                '# TYPE 9a gauge\n9a 1\n',                     # bad name
                '# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{k="1"} 2\n',  # split family
                '# TYPE a gauge\na 1e\n',                      # not a float either
                '# TYPE a gauge\na 1_000\n',                   # Python's, not the format's
                '# TYPE a gauge\na 1'):                        # no final LF
        with pytest.raises(AssertionError):
            parse_exposition(bad)
    assert parse_exposition('# TYPE a gauge\na +Inf\na{b="c"} -1.5e-3\n') == {
        ('a', ()): float('inf'), ('a', (('b', '"c"'),)): -0.0015}


def http(port, request, source='127.0.0.1'):
    """Send request bytes, read until the server closes: (status line, headers, body),
    or None when it closed without a byte."""
    with socket.create_connection(('127.0.0.1', port), timeout=10,
                                  source_address=(source, 0)) as s:
        s.sendall(request)
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        return None
    head, _, body = data.partition(b'\r\n\r\n')
    lines = head.decode('ascii').split('\r\n')
    headers = dict(l.split(': ', 1) for l in lines[1:])
    length = int(headers['Content-Length'])
    assert len(body) == length, (len(body), length)
    return lines[0], headers, body.decode('utf-8')


def scrape(port):
    status, headers, body = http(port, b'GET /metrics HTTP/1.1\r\nHost: sluice\r\n\r\n')
    assert status == 'HTTP/1.1 200 OK'
    assert headers['Content-Type'] == 'text/plain; version=0.0.4; charset=utf-8'
    assert headers['Connection'] == 'close'
    return parse_exposition(body)


def value(series, name, **labels):
    return series[(name, tuple(sorted((k, '"%s"' % v) for k, v in labels.items())))]


@pytest.fixture
def metrics_relay(make_relay, sink):
    port = free_port()
    r = make_relay(upstream_conf(sink.port), extra="metrics = { port = %d }," % port)
    r.metrics_port = port
    return r


def test_a_scrape_is_strict_exposition_text_with_every_documented_metric(metrics_relay):
    s = scrape(metrics_relay.metrics_port)
    assert value(s, 'sluice_up') == 1
    assert [k for k in s if k[0] == 'sluice_build_info'][0][1][0][0] == 'version'
    assert value(s, 'sluice_config_generation') == 1
    assert value(s, 'sluice_workers') == 1
    assert value(s, 'sluice_reloads_total', result='ok') == 0
    assert value(s, 'sluice_sessions_open') == 0
    assert value(s, 'sluice_inflight_max_bytes') > 0
    for zone in ('default', 'limits', 'blocks', 'denylist', 'auth_cache', 'jwks'):
        assert value(s, 'sluice_zone_capacity_bytes', zone=zone) > 0
    assert value(s, 'sluice_audit_lines_dropped_total') == 0
    listen = metrics_relay.logs('metrics.listen')
    assert listen and listen[0]['port'] == metrics_relay.metrics_port
    assert listen[0]['address'] == '127.0.0.1'


def test_a_relayed_message_and_a_failed_auth_move_their_counters(metrics_relay, sink):
    port = metrics_relay.metrics_port
    before = scrape(port)
    c = metrics_relay.smtps()
    c.sendmail(ALICE, ['rcpt@example.net'], b'From: alice@example.org\r\n\r\nhi\r\n')
    c.quit()
    assert len(sink.wait_messages(1)) == 1
    wait_until(lambda: value(scrape(port), 'sluice_messages_total', result='relayed') ==
               value(before, 'sluice_messages_total', result='relayed') + 1,
               'messages_total{result="relayed"} + 1')
    c = metrics_relay.raw()
    c.cmd(b'EHLO client.test')
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0wrong-password' % ALICE))[0] == 535
    c.close()
    wait_until(lambda: value(scrape(port), 'sluice_auth_total', mechanism='plain',
                             result='failed') ==
               value(before, 'sluice_auth_total', mechanism='plain', result='failed') + 1,
               'auth_total{mechanism="plain",result="failed"} + 1')
    after = scrape(port)
    assert value(after, 'sluice_auth_total', mechanism='plain', result='ok') == \
        value(before, 'sluice_auth_total', mechanism='plain', result='ok') + 1
    assert value(after, 'sluice_sessions_total') == value(before, 'sluice_sessions_total') + 2
    assert value(after, 'sluice_messages_total', result='failed') == \
        value(before, 'sluice_messages_total', result='failed')


def test_a_reload_moves_the_generation_and_the_ok_counter(metrics_relay):
    hup(metrics_relay)
    s = scrape(metrics_relay.metrics_port)
    assert value(s, 'sluice_config_generation') == 2
    assert value(s, 'sluice_reloads_total', result='ok') == 1
    assert value(s, 'sluice_reloads_total', result='failed') == 0


def test_other_paths_get_404_other_methods_405_and_garbage_400(metrics_relay):
    port = metrics_relay.metrics_port
    assert http(port, b'GET / HTTP/1.1\r\n\r\n')[0] == 'HTTP/1.1 404 Not Found'
    status, headers, _ = http(port, b'PUT /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n')
    assert status == 'HTTP/1.1 405 Method Not Allowed' and headers['Allow'] == 'GET'
    assert http(port, b'HELO relay.test\r\n\r\n')[0] == 'HTTP/1.1 400 Bad Request'
    assert http(port, b'GET /metrics HTTP/1.1\r\nX: ' + b'a' * 9000)[0] == \
        'HTTP/1.1 400 Bad Request'


def test_a_trickling_client_is_closed_at_the_deadline_and_others_are_served(metrics_relay):
    port = metrics_relay.metrics_port
    with socket.create_connection(('127.0.0.1', port), timeout=10) as slow:
        slow.sendall(b'GET /metr')
        t0 = time.monotonic()
        assert slow.recv(100) == b''  # closed, no answer
        assert 1.5 < time.monotonic() - t0 < 5
    assert value(scrape(port), 'sluice_up') == 1
    assert metrics_relay.wait_logs('metrics.timeout')


def test_scrapers_outside_allow_are_closed_unanswered_and_logged_once(make_relay, sink):
    port = free_port()
    r = make_relay(upstream_conf(sink.port),
                   extra="metrics = { port = %d, allow = { '127.0.0.2/32' } }," % port)
    # five strangers in a row: each closed unanswered (http() sees EOF, so each was
    # handled), one metrics.refuse line for all five (a flood does not flood the log)
    for _ in range(5):
        assert http(port, b'', source='127.0.0.1') is None
    assert value(scrape_from(port, '127.0.0.2'), 'sluice_up') == 1
    refused = r.wait_logs('metrics.refuse')
    assert [(x['client'], x['unlogged']) for x in refused] == [('127.0.0.1', 0)]


def scrape_from(port, source):
    status, _, body = http(port, b'GET /metrics HTTP/1.0\r\n\r\n', source=source)
    assert status == 'HTTP/1.1 200 OK'
    return parse_exposition(body)


def test_a_reload_that_moves_the_listener_is_refused(metrics_relay):
    port = metrics_relay.metrics_port
    text = metrics_relay.conf.read_text()
    metrics_relay.conf.write_text(text.replace('port = %d }' % port, 'port = %d }' % free_port()))
    line = hup(metrics_relay, 'reload.fail')
    assert 'metrics changed' in line['msg'], line
    s = scrape(port)
    assert value(s, 'sluice_reloads_total', result='failed') == 1
    assert value(s, 'sluice_config_generation') == 1


def send_one(relay, sink, n=1):
    c = relay.smtps()
    c.sendmail(ALICE, ['rcpt@example.net'], b'From: alice@example.org\r\n\r\nhi\r\n')
    c.quit()
    assert len(sink.wait_messages(n)) == n


def test_the_pool_of_each_upstream_shows_open_idle_and_failed_connections(make_relay, sink):
    """The first server refuses connections: the message goes through the second, the
    first's failed set-up is counted against its host:port, and the second's connection
    stays open and idle in the pool afterwards."""
    port, dead = free_port(), free_port()
    r = make_relay("{ default = { { host = '127.0.0.1', port = %d, tls = 'none' },"
                   " { host = '127.0.0.1', port = %d, tls = 'none' } } }" % (dead, sink.port),
                   extra="metrics = { port = %d }," % port)
    live, down = '127.0.0.1:%d' % sink.port, '127.0.0.1:%d' % dead
    s = scrape(port)
    assert value(s, 'sluice_upstream_connections', upstream=live) == 0
    assert value(s, 'sluice_upstream_connect_failures_total', upstream=down) == 0
    send_one(r, sink)
    wait_until(lambda: value(scrape(port), 'sluice_upstream_idle_connections', upstream=live)
               == 1, 'the connection back in the pool')
    s = scrape(port)
    assert value(s, 'sluice_upstream_connections', upstream=live) == 1
    assert value(s, 'sluice_upstream_connections', upstream=down) == 0
    assert value(s, 'sluice_upstream_connect_failures_total', upstream=down) == 1
    assert value(s, 'sluice_upstream_connect_failures_total', upstream=live) == 0
    assert value(s, 'sluice_upstream_errors_total', upstream=live) == 0
    assert value(s, 'sluice_upstream_waits_total', upstream=live) == 0
    assert not [k for k in s if k[0].startswith('sluice_upstream') and
                dict(k[1]).get('upstream') == '"other"']


def test_ctl_status_shows_the_pool_of_each_upstream(ctl_relay, sink):
    r = ctl_relay()
    live = '127.0.0.1:%d' % sink.port
    assert status(r)['upstreams'] == {live: {'open': 0, 'idle': 0, 'waits': 0,
                                             'wait_timeouts': 0, 'connect_failures': 0,
                                             'errors': 0}}
    send_one(r, sink)
    wait_until(lambda: status(r)['upstreams'][live]['idle'] == 1, 'an idle connection')
    assert status(r)['upstreams'][live]['open'] == 1


def test_auth_is_counted_by_mechanism_and_result(metrics_relay):
    """smtplib logs in with PLAIN, a LOGIN with a wrong password is refused: each is
    counted under its own mechanism and result; every mechanism has both series from the
    start."""
    port = metrics_relay.metrics_port
    s = scrape(port)
    assert {(dict(k[1])['mechanism'], dict(k[1])['result']) for k in s
            if k[0] == 'sluice_auth_total'} == {
        (m, r) for m in ('"plain"', '"login"', '"xoauth2"', '"oauthbearer"')
        for r in ('"ok"', '"failed"')}
    assert sum(v for k, v in s.items() if k[0] == 'sluice_auth_total') == 0
    metrics_relay.smtps().quit()
    with metrics_relay.raw() as c:
        c.cmd(b'EHLO client.test')
        assert c.cmd(b'AUTH LOGIN').code == 334
        assert c.cmd(b64(ALICE)).code == 334
        assert c.cmd(b64('wrong-password')).code == 535
    wait_until(lambda: value(scrape(port), 'sluice_auth_total', mechanism='login',
                             result='failed') == 1, 'a failed LOGIN')
    s = scrape(port)
    assert value(s, 'sluice_auth_total', mechanism='plain', result='ok') == 1
    assert sum(v for k, v in s.items() if k[0] == 'sluice_auth_total') == 2


ACCEPT_ANY = """\
local sluice = require('sluice')
return { on_auth = function(session, auth) return sluice.accept() end }
"""


def test_messages_count_by_declared_domain_and_other_across_reloads(make_relay, make_sink,
                                                                    tmp_path):
    """A declared domain's messages are counted under its name, relayed or refused by the
    upstream; an undeclared domain's under "other". A reload that drops a domain keeps
    its series as they were (its sessions count under "other" from then on), and one
    that declares it again counts on from there: every series only ever goes up."""
    sink = make_sink('--reject-rcpt', 'refuse')
    policy = tmp_path / 'accept_any.lua'
    policy.write_text(ACCEPT_ANY)
    port = free_port()
    declared = "{ ['example.org'] = {}, ['example.net'] = {} }"
    r = make_relay(upstream_conf(sink.port), policies=[str(policy)], domains=declared,
                   extra="metrics = { port = %d }," % port)

    def send(user, rcpt='rcpt@example.net'):
        c = r.smtps(login=None)
        c.login(user, 'any')
        try:
            c.sendmail(user, [rcpt], b'Subject: x\r\n\r\nhi\r\n')
        except smtplib.SMTPDataError as e:  # the upstream's refusal, after the message
            assert rcpt.startswith('refuse') and e.smtp_code == 550, e
        c.quit()

    def domains():
        return {(dict(k[1])['domain'].strip('"'), dict(k[1])['result'].strip('"')): v
                for k, v in scrape(port).items() if k[0] == 'sluice_domain_messages_total'}

    assert domains() == {(d, res): 0 for d in ('other', 'example.org', 'example.net')
                         for res in ('relayed', 'failed')}
    send('alice@example.org')
    send('alice@example.org', 'refuse@example.net')
    send('dave@undeclared.test')
    wait_until(lambda: domains()[('other', 'relayed')] == 1, 'a message under other')
    assert domains() == {('other', 'relayed'): 1, ('other', 'failed'): 0,
                         ('example.org', 'relayed'): 1, ('example.org', 'failed'): 1,
                         ('example.net', 'relayed'): 0, ('example.net', 'failed'): 0}

    r.conf.write_text(r.conf.read_text().replace(
        declared, "{ ['example.net'] = {}, ['example.com'] = {} }"))
    hup(r)
    send('alice@example.org')
    wait_until(lambda: domains()[('other', 'relayed')] == 2, 'example.org now under other')
    after = domains()
    assert after[('example.org', 'relayed')] == 1 and after[('example.org', 'failed')] == 1
    assert after[('example.com', 'relayed')] == 0

    r.conf.write_text(r.conf.read_text().replace(
        "{ ['example.net'] = {}, ['example.com'] = {} }", declared))
    hup(r)
    send('alice@example.org')
    wait_until(lambda: domains()[('example.org', 'relayed')] == 2, 'example.org counts on')
    assert domains()[('other', 'relayed')] == 2
    assert len(sink.wait_messages(4)) == 4


def test_sessions_are_shown_by_state_and_refused_connections_by_reason(make_relay, sink):
    port = free_port()
    r = make_relay(upstream_conf(sink.port), limits='max_connections_per_ip = 1',
                   extra="metrics = { port = %d }," % port)

    def states():
        return {dict(k[1])['state'].strip('"'): v for k, v in scrape(port).items()
                if k[0] == 'sluice_sessions'}

    assert set(states()) == {'NEW', 'PROXY', 'TLS_ACCEPT', 'CMD', 'AUTH', 'AUTH_ERROR',
                             'DATA', 'BDAT', 'STARTTLS', 'POLICY', 'RELAY', 'CLOSING',
                             'DISCONNECTED'}
    assert sum(states().values()) == 0
    c = r.raw()
    wait_until(lambda: states()['CMD'] == 1, 'a session in CMD')
    c.cmd(b'EHLO client.test')
    assert c.cmd(b'AUTH LOGIN').code == 334
    s = states()
    assert (s['AUTH'], s['CMD'], sum(s.values())) == (1, 0, 1)
    with r.raw(tls=False) as second:  # the same client address: over the limit
        assert second.greeting.code == 421
    assert value(scrape(port), 'sluice_connections_refused_total',
                 reason='max_connections_per_ip') == 1
    assert value(scrape(port), 'sluice_connections_refused_total',
                 reason='max_connections') == 0
    c.close()
    wait_until(lambda: sum(states().values()) == 0, 'no session left in any state')


SLOW_AUTH = """\
local sluice = require('sluice')
return { on_auth = function(session, auth)
  sluice.sleep(0.3)
  return sluice.accept()
end }
"""


def test_a_hook_that_waits_is_timed_from_its_start_to_its_verdict(make_relay, sink, tmp_path):
    """on_auth sleeps 0.3 s: its run lands in the 0.5 s bucket, not the 0.25 s one, and
    its sum is at least the sleep; a hook no policy has is never counted."""
    policy = tmp_path / 'slow_auth.lua'
    policy.write_text(SLOW_AUTH)
    port = free_port()
    r = make_relay(upstream_conf(sink.port), policies=[str(policy)],
                   extra="metrics = { port = %d }," % port)
    name = 'sluice_hook_duration_seconds'
    s = scrape(port)
    assert value(s, name + '_count', hook='on_auth') == 0
    assert value(s, name + '_bucket', hook='on_auth', le='+Inf') == 0
    r.smtps().quit()
    wait_until(lambda: value(scrape(port), name + '_count', hook='on_auth') == 1,
               'one on_auth run counted')
    s = scrape(port)
    assert value(s, name + '_bucket', hook='on_auth', le='0.25') == 0
    assert value(s, name + '_bucket', hook='on_auth', le='0.5') == 1
    assert value(s, name + '_bucket', hook='on_auth', le='+Inf') == 1
    assert 0.3 <= value(s, name + '_sum', hook='on_auth') < 0.5
    assert value(s, name + '_count', hook='on_connect') == 0  # no policy has it
    les = [dict(k[1])['le'] for k in s if k[0] == name + '_bucket' and
           dict(k[1])['hook'] == '"on_auth"']
    assert les == ['"%s"' % x for x in ('0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025',
                                         '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '+Inf')]


PROMETHEUS = '/usr/bin/prometheus'  # Debian's package (Makefile DEB_PACKAGES)


def prometheus_api(port, path):
    """GET the Prometheus HTTP API: its "data", or None while it does not answer yet."""
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d/api/v1/%s' % (port, path),
                                    timeout=5) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    assert body['status'] == 'success', body
    return body['data']


@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus on loopback with its own storage, scraping the targets given to
    start() every second (over HTTPS, trusting ca_file, when given); stopped by PID."""
    started = []

    def start(*targets, ca_file=None):
        d = tmp_path / 'prometheus'
        d.mkdir()
        tls = '' if ca_file is None else (
            '    scheme: https\n    tls_config:\n      ca_file: %s\n' % ca_file)
        (d / 'prometheus.yml').write_text(
            'global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n'
            'scrape_configs:\n  - job_name: sluice\n%s    static_configs:\n'
            '      - targets: [%s]\n' % (tls, ', '.join("'127.0.0.1:%d'" % t for t in targets)))
        port = free_port()
        proc = subprocess.Popen(
            [PROMETHEUS, '--config.file=%s' % (d / 'prometheus.yml'),
             '--storage.tsdb.path=%s' % (d / 'data'),
             '--web.listen-address=127.0.0.1:%d' % port],
            stdout=subprocess.DEVNULL, stderr=open(d / 'prometheus.err', 'wb'))
        started.append(proc)
        return port, d / 'prometheus.err'
    yield start
    for proc in started:
        stop(proc)


def prometheus_value(port, query):
    """The value of an instant query's one sample, or None when it has none (yet)."""
    data = prometheus_api(port, 'query?' + urllib.parse.urlencode({'query': query}))
    if not data or not data['result']:
        return None
    assert len(data['result']) == 1, data
    return float(data['result'][0]['value'][1])


def prometheus_target(port, url):
    """The Prometheus target scraping url, or None (not yet, or Prometheus not up)."""
    data = prometheus_api(port, 'targets')
    if data is None:
        return None
    targets = [t for t in data['activeTargets'] if t['scrapeUrl'] == url]
    return targets[0] if targets else None


def test_a_real_prometheus_scrapes_sluice_and_sees_what_it_did(metrics_relay, sink,
                                                               prometheus):
    port, err = prometheus(metrics_relay.metrics_port)

    def sluice_target():
        return prometheus_target(port,
                                 'http://127.0.0.1:%d/metrics' % metrics_relay.metrics_port)

    # the first scrape comes within a scrape interval of the start; a refused or
    # unparsable exposition would say "down" with the parser's complaint in lastError
    wait_until(lambda: (sluice_target() or {}).get('health') == 'up', 'Prometheus: target up',
               timeout=30)
    target = sluice_target()
    assert target['lastError'] == '', target
    assert prometheus_value(port, 'sluice_up') == 1
    send_one(metrics_relay, sink)
    wait_until(lambda: prometheus_value(
        port, 'sluice_messages_total{result="relayed"}') == 1,
        'Prometheus: one relayed message', timeout=15)
    assert prometheus_value(port, 'sum(sluice_domain_messages_total{result="relayed"})') == 1
    assert prometheus_value(
        port, 'sluice_hook_duration_seconds_count{hook="on_auth"}') >= 1
    assert sluice_target()['lastError'] == ''
    assert 'level=error' not in err.read_text()


# ---- HTTPS (metrics.tls) -------------------------------------------------------------------

def metrics_tls(cert_dir, client_ca=None):
    ca = '' if client_ca is None else ', client_ca = %s' % lua_str(client_ca)
    return 'tls = { cert = %s, key = %s%s }' % (
        lua_str(cert_dir / 'dev-ecdsa.crt'), lua_str(cert_dir / 'dev-ecdsa.key'), ca)


@pytest.fixture
def https_relay(make_relay, sink, certs):
    """start(cert_dir=certs, client_ca=None, allow=None): a relay whose metrics listener
    serves cert_dir's dev-ecdsa pair over HTTPS to allow (Lua text; default loopback);
    .metrics_port, .ca (the CA that signed it)."""
    def start(cert_dir=certs, client_ca=None, allow=None):
        port = free_port()
        allow = '' if allow is None else 'allow = %s, ' % allow
        r = make_relay(upstream_conf(sink.port), extra='metrics = { port = %d, %s%s },' % (
            port, allow, metrics_tls(cert_dir, client_ca)))
        r.metrics_port = port
        r.ca = cert_dir / 'dev-ca.crt' if (cert_dir / 'dev-ca.crt').exists() else \
            certs / 'dev-ca.crt'
        return r
    return start


def curl(relay, *args, path='/metrics'):
    """curl over HTTPS trusting relay.ca (the certificate names IP 127.0.0.1); stdout and
    stderr as text, CRLFs kept."""
    out = subprocess.run(
        ['curl', '-sS', '--max-time', '10', '--cacert', str(relay.ca)] + list(args) +
        ['https://127.0.0.1:%d%s' % (relay.metrics_port, path)],
        capture_output=True, timeout=30)
    out.stdout, out.stderr = out.stdout.decode(), out.stderr.decode(errors='replace')
    return out


def served_cert(port):
    """The DER certificate the listener on port serves, not verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(('127.0.0.1', port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True)


def uid_of(pid):
    for line in open('/proc/%d/status' % pid).read().splitlines():
        if line.startswith('Uid:'):
            return int(line.split()[1])
    raise AssertionError('no Uid line for %d' % pid)


def test_curl_scrapes_the_https_listener_and_the_strict_parser_accepts_it(https_relay):
    r = https_relay()
    out = curl(r, '--fail', '-D', '-')
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition('\r\n\r\n')
    assert head.startswith('HTTP/1.1 200 OK\r\n'), head
    assert 'Content-Type: text/plain; version=0.0.4; charset=utf-8' in head
    assert value(parse_exposition(body), 'sluice_up') == 1
    listen = r.logs('metrics.listen')
    assert (listen[0]['port'], listen[0]['tls']) == (r.metrics_port, 'on')
    # TLS 1.2 with the listeners' ECDHE ciphers, and the other answers over TLS as well
    out = curl(r, '-v', '--tls-max', '1.2', '-o', '/dev/null', '-w', '%{http_code}')
    assert out.stdout == '200' and 'TLSv1.2 / ECDHE-ECDSA-' in out.stderr, out.stderr
    assert curl(r, '-o', '/dev/null', '-w', '%{http_code}', path='/').stdout == '404'
    assert r.logs('metrics.tls_error') == []


def test_plain_http_to_the_https_listener_gets_no_answer_and_one_log_line(https_relay):
    r = https_relay()
    for _ in range(3):  # each closed without a byte (http() saw EOF: handled)
        assert http(r.metrics_port, b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n') is None
    assert curl(r, '--fail', '-o', '/dev/null').returncode == 0  # the listener serves on
    lines = r.wait_logs('metrics.tls_error')
    assert [(x['client'], x['level'], x['unlogged']) for x in lines] == \
        [('127.0.0.1', 'info', 0)], lines
    assert lines[0]['reason'] == 'http request', lines


def test_a_stranger_gets_no_handshake_on_the_https_listener(https_relay):
    """The allow-list comes first: a client outside it is closed on before the server
    sends a byte of TLS (no ServerHello, no certificate), and only metrics.refuse says so."""
    r = https_relay(allow="{ '127.0.0.2' }")
    ctx = ssl.create_default_context(cafile=str(r.ca))
    with socket.create_connection(('127.0.0.1', r.metrics_port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(raw, server_hostname='127.0.0.1')
    assert curl(r, '--fail', '-o', '/dev/null', '--interface', '127.0.0.2').returncode == 0
    assert [x['client'] for x in r.wait_logs('metrics.refuse')] == ['127.0.0.1']
    assert r.logs('metrics.tls_error') == []


def client_hello():
    """The first flight of a TLS client, as bytes."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    obj = ctx.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_a_stalled_handshake_is_closed_at_the_deadline_and_the_next_scrape_served(https_relay):
    r = https_relay()
    with socket.create_connection(('127.0.0.1', r.metrics_port), timeout=10) as silent:
        t0 = time.monotonic()
        assert silent.recv(100) == b''  # no ClientHello: closed at the deadline
        assert 1.5 < time.monotonic() - t0 < 5
    assert curl(r, '--fail', '-o', '/dev/null').returncode == 0
    hello = client_hello()
    with socket.create_connection(('127.0.0.1', r.metrics_port), timeout=10) as stalled:
        stalled.sendall(hello[:len(hello) // 2])
        t0 = time.monotonic()
        assert stalled.recv(100) == b''  # half a ClientHello: the same deadline
        assert 1.5 < time.monotonic() - t0 < 5
    assert curl(r, '--fail', '-o', '/dev/null').returncode == 0
    timeouts = r.wait_logs('metrics.timeout')
    assert [x['msg'] for x in timeouts] == \
        ['127.0.0.1: no TLS handshake within 2 seconds'], timeouts  # the silent one: none
    assert r.logs('metrics.tls_error') == []


def test_tls_1_1_is_refused_and_tls_1_2_answered_by_openssl_s_client(https_relay):
    r = https_relay()
    old = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % r.metrics_port,
                          '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'],
                         input=b'', capture_output=True, timeout=30)
    said = (old.stdout + old.stderr).decode(errors='replace')
    if 'no protocols available' in said:
        pytest.skip('this openssl cannot offer TLS 1.1 even at SECLEVEL=0: ' + said[-300:])
    assert old.returncode != 0, said
    # refused in the handshake: the server's protocol_version alert (70), no certificate
    assert 'alert protocol version' in said and 'alert number 70' in said, said
    assert 'no peer certificate available' in said, said
    lines = r.wait_logs('metrics.tls_error')
    assert lines and lines[0]['reason'] == 'unsupported protocol', lines
    new = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % r.metrics_port,
                          '-tls1_2', '-CAfile', str(r.ca), '-verify_return_error', '-quiet'],
                         input=b'GET /metrics HTTP/1.0\r\n\r\n', capture_output=True,
                         timeout=30)
    assert new.stdout.startswith(b'HTTP/1.1 200 OK\r\n'), new
    assert value(parse_exposition(new.stdout.partition(b'\r\n\r\n')[2].decode()),
                 'sluice_up') == 1


def test_a_root_only_key_works_after_the_drop_and_reloads_read_it_again(https_relay, certs,
                                                                       tmp_path):
    """The key is root's, 0600, in a 0700 directory; the daemon runs as `sluice` and reads
    it through its privileged reader at start and on reload. A renewed certificate is
    served after a reload; a key that does not fit fails the reload and the old pair
    serves on; another path is a change of the listener, refused."""
    assert os.geteuid() == 0, 'this test needs root: it tests what sluice does as root'
    mine = tmp_path / 'metrics-certs'
    mine.mkdir(mode=0o700)
    for f in ('dev-ecdsa.crt', 'dev-ecdsa.key'):
        shutil.copy(certs / f, mine / f)
    os.chmod(mine / 'dev-ecdsa.key', 0o600)
    r = https_relay(cert_dir=mine)
    assert uid_of(r.proc.pid) == pwd.getpwnam('sluice').pw_uid
    assert curl(r, '--fail', '-o', '/dev/null').returncode == 0
    before = served_cert(r.metrics_port)

    renew_certs(tmp_path / 'renewed', mine, 0o600)  # a new CA and pair, root-only
    r.ca = mine / 'dev-ca.crt'
    hup(r, 'reload.ok')
    after = served_cert(r.metrics_port)
    assert after != before
    assert after == ssl.PEM_cert_to_DER_cert((mine / 'dev-ecdsa.crt').read_text())
    assert curl(r, '--fail', '-o', '/dev/null').returncode == 0

    shutil.copy(mine / 'dev-rsa.key', mine / 'dev-ecdsa.key')  # not the certificate's key
    line = hup(r, 'reload.fail')
    assert 'metrics.tls' in line['msg'] and 'dev-ecdsa.key' in line['msg'], line
    assert served_cert(r.metrics_port) == after

    r.conf.write_text(r.conf.read_text().replace(
        lua_str(mine / 'dev-ecdsa.key'), lua_str(certs / 'dev-ecdsa.key')).replace(
        lua_str(mine / 'dev-ecdsa.crt'), lua_str(certs / 'dev-ecdsa.crt')))
    line = hup(r, 'reload.fail')
    assert 'metrics changed (address, port, allow or tls)' in line['msg'], line
    assert served_cert(r.metrics_port) == after


def test_sluice_check_finds_a_metrics_key_that_does_not_fit(https_relay, certs, tmp_path):
    r = https_relay()
    conf = tmp_path / 'check.lua'
    mine = metrics_tls(certs)
    assert r.conf.read_text().count(mine) == 1
    conf.write_text(r.conf.read_text().replace(mine, mine.replace(
        lua_str(certs / 'dev-ecdsa.key'), lua_str(certs / 'dev-rsa.key'))))
    got = subprocess.run([SLUICE, 'check', '-c', str(conf)], capture_output=True, timeout=30)
    assert got.returncode != 0
    assert 'metrics.tls: %s' % (certs / 'dev-rsa.key') in got.stderr.decode(), got.stderr
    ok = subprocess.run([SLUICE, 'check', '-c', str(r.conf)], capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr


def client_cert(d, name, ca_dir=None):
    """A client certificate (clientAuth) for CN=name signed by ca_dir's dev CA, or
    self-signed without ca_dir: (cert path, key path)."""
    key, crt, ext = d / (name + '.key'), d / (name + '.crt'), d / (name + '.ext')
    ext.write_text('extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n')
    if ca_dir is None:
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', str(key),
                        '-out', str(crt), '-subj', '/CN=' + name,
                        '-addext', 'extendedKeyUsage=clientAuth'],
                       check=True, capture_output=True)
        return crt, key
    csr = d / (name + '.csr')
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-keyout', str(key), '-out', str(csr),
                    '-subj', '/CN=' + name], check=True, capture_output=True)
    subprocess.run(['openssl', 'x509', '-req', '-in', str(csr), '-CA', str(ca_dir / 'dev-ca.crt'),
                    '-CAkey', str(ca_dir / 'dev-ca.key'), '-set_serial', '4242', '-days', '2',
                    '-extfile', str(ext), '-out', str(crt)], check=True, capture_output=True)
    return crt, key


def test_with_client_ca_only_a_client_certificate_from_it_is_answered(https_relay, certs,
                                                                      tmp_path):
    good = client_cert(tmp_path, 'prometheus', certs)
    stranger = client_cert(tmp_path, 'stranger')
    r = https_relay(client_ca=certs / 'dev-ca.crt')
    assert r.logs('metrics.listen')[0]['tls'] == 'client certificate'
    out = curl(r, '--fail', '--cert', str(good[0]), '--key', str(good[1]))
    assert out.returncode == 0, out.stderr
    assert value(parse_exposition(out.stdout), 'sluice_up') == 1
    out = curl(r, '-o', '/dev/null', '-w', '%{http_code}')
    assert out.returncode != 0 and out.stdout == '000', out  # no certificate: no answer
    lines = r.wait_logs('metrics.tls_error')
    assert lines and lines[0]['reason'] == 'peer did not return a certificate', lines
    out = curl(r, '-o', '/dev/null', '-w', '%{http_code}', '--cert', str(stranger[0]),
               '--key', str(stranger[1]))
    assert out.returncode != 0 and out.stdout == '000', out
    assert curl(r, '--fail', '-o', '/dev/null', '--cert', str(good[0]),
                '--key', str(good[1])).returncode == 0


def test_a_real_prometheus_scrapes_over_https_with_the_dev_ca(https_relay, prometheus):
    r = https_relay()
    port, err = prometheus(r.metrics_port, ca_file=r.ca)
    url = 'https://127.0.0.1:%d/metrics' % r.metrics_port
    wait_until(lambda: (prometheus_target(port, url) or {}).get('health') == 'up',
               'Prometheus: the https target up', timeout=30)
    assert prometheus_target(port, url)['lastError'] == ''
    wait_until(lambda: prometheus_value(port, 'sluice_up') == 1, 'Prometheus: sluice_up 1',
               timeout=15)
    assert prometheus_target(port, url)['lastError'] == ''
    assert r.logs('metrics.tls_error') == []
    assert 'level=error' not in err.read_text()
