"""Per-domain upstream routing in one place (docs/upstreams.md "Per-domain routing"):
domains['d'].upstream names the set a domain's mail goes to, domains['d'].upstream_auth
the credentials it logs in with there, and a SIGHUP reload changes both.

Real clients (smtplib over TLS) talk to a real `sluice run`, which relays to real
`sluice sink`s (one per set; one that knows several users for the credentials). Each test
checks what the client got, what each sink stored and under which login (sink.message
auth), and the relay's relay.done / upstream.* lines.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_routing.py
"""
import os
import pathlib
import subprocess

from conftest import (ALICE, SLUICE, Relay, assert_no_sanitizer_report, client_bytes, hup,
                      lua_str, wait_until)

BODY = b'From: x@example.org\r\nSubject: routing\r\n\r\nbody\r\n'
CAROL = 'carol@example.net'


def send_one(relay, sender=ALICE):
    client = relay.smtps(sender)
    try:
        assert client.mail(sender)[0] == 250
        assert client.rcpt('x@example.com')[0] == 250
        code, text = client.data(BODY)
        return code, text.decode()
    finally:
        client.quit()


def server(port, tls='none', **kw):
    fields = ["host = '127.0.0.1'", 'port = %d' % port, "tls = '%s'" % tls]
    for key, value in kw.items():
        if isinstance(value, dict):
            value = '{ %s }' % ', '.join('%s = %s' % (k, lua_str(v)) for k, v in value.items())
        else:
            value = lua_str(value)
        fields.append('%s = %s' % (key, value))
    return '{ ' + ', '.join(fields) + ' }'


def sets(**named):
    return '{ ' + ', '.join('%s = { %s }' % (name, ', '.join(servers))
                            for name, servers in named.items()) + ' }'


def domains(org='', net=''):
    """example.org and example.net (the test users' domains) with extra settings."""
    return ("{ ['example.org'] = { check_header_from = false, %s },"
            " ['example.net'] = { check_header_from = false, %s } }" % (org, net))


def tls_sink(make_sink, certs, *args):
    return make_sink('--tls-cert', str(certs / 'dev-ecdsa.crt'),
                     '--tls-key', str(certs / 'dev-ecdsa.key'), *args)


def wait_events(sink, n):
    wait_until(lambda: len(sink.events('sink.message')) >= n, '%d messages at the sink' % n)
    return sink.events('sink.message')


def test_a_domain_names_its_upstream_set(make_relay, make_sink):
    default, partner = make_sink(), make_sink()
    relay = make_relay(sets(default=[server(default.port)], partner=[server(partner.port)]),
                       domains=domains(net="upstream = 'partner'"))
    assert send_one(relay, CAROL)[0] == 250
    assert send_one(relay, ALICE)[0] == 250

    [carol] = wait_events(partner, 1)
    [alice] = wait_events(default, 1)
    assert (carol['mail_from'], alice['mail_from']) == (CAROL, ALICE)
    assert [client_bytes(m) for m in partner.messages() + default.messages()] == [BODY, BODY]
    assert [(d['from'], d['upstream']) for d in relay.wait_logs('relay.done', 2)] == [
        (CAROL, '127.0.0.1:%d' % partner.port), (ALICE, '127.0.0.1:%d' % default.port)]


def test_each_domain_logs_in_with_its_own_credentials_on_its_own_connections(
        make_relay, make_sink, certs):
    # One upstream that knows both users; both domains use the default set. Interleaved
    # messages on one worker: each goes on a pooled connection logged in as its domain,
    # never on the other's, and each domain's connection is reused for its next message.
    sink = tls_sink(make_sink, certs, '--auth', 'org-relay:org-pw', '--auth', 'net-relay:net-pw')
    ca = str(certs / 'dev-ca.crt')
    relay = make_relay(
        sets(default=[server(sink.port, 'starttls', ca_file=ca, tls_name='localhost')]),
        domains=domains(org="upstream_auth = { user = 'org-relay', password = 'org-pw' }",
                        net="upstream_auth = { user = 'net-relay', password = 'net-pw' }"))
    senders = [ALICE, CAROL, ALICE, CAROL, ALICE]
    for sender in senders:
        code, text = send_one(relay, sender)
        assert code == 250, text

    got = [(e['mail_from'], e['auth']) for e in wait_events(sink, len(senders))]
    want = {ALICE: 'org-relay', CAROL: 'net-relay'}
    assert got == [(s, want[s]) for s in senders]
    assert len(relay.logs('upstream.connect')) == 2  # one per identity, each reused
    assert [d['reused'] for d in relay.wait_logs('relay.done', 5)] == [
        False, False, True, True, True]
    text = relay.err.read_text()
    assert 'org-pw' not in text and 'net-pw' not in text


def test_a_domain_without_upstream_auth_uses_the_sets_credentials(make_relay, make_sink, certs):
    sink = tls_sink(make_sink, certs, '--auth', 'set-relay:set-pw', '--auth', 'net-relay:net-pw')
    ca = str(certs / 'dev-ca.crt')
    relay = make_relay(
        sets(default=[server(sink.port, 'starttls', ca_file=ca, tls_name='localhost',
                             auth={'user': 'set-relay', 'password': 'set-pw'})]),
        domains=domains(net="upstream_auth = { user = 'net-relay', password = 'net-pw' }"))
    assert send_one(relay, ALICE)[0] == 250
    assert send_one(relay, CAROL)[0] == 250
    got = [(e['mail_from'], e['auth']) for e in wait_events(sink, 2)]
    assert got == [(ALICE, 'set-relay'), (CAROL, 'net-relay')]


def test_wrong_domain_credentials_fail_that_domain_only(make_relay, make_sink, certs):
    sink = tls_sink(make_sink, certs, '--auth', 'org-relay:org-pw')
    ca = str(certs / 'dev-ca.crt')
    relay = make_relay(
        sets(default=[server(sink.port, 'starttls', ca_file=ca, tls_name='localhost')]),
        domains=domains(org="upstream_auth = { user = 'org-relay', password = 'org-pw' }",
                        net="upstream_auth = { user = 'net-relay', password = 'not-the-pw-7f3a' }"))
    code, text = send_one(relay, CAROL)
    assert code == 451 and text.startswith('4.4.'), (code, text)
    assert send_one(relay, ALICE)[0] == 250
    assert [(e['mail_from'], e['auth']) for e in wait_events(sink, 1)] == [
        (ALICE, 'org-relay')]
    errors = [e for e in relay.logs('upstream.error') if e.get('stage') == 'auth']
    assert errors and all(e['code'] == 535 for e in errors), relay.logs('upstream.error')
    assert 'not-the-pw-7f3a' not in relay.err.read_text()


def test_hup_moves_a_domain_to_another_set_and_other_credentials(
        make_sink, certs, world, readable):
    old, new = make_sink(), tls_sink(make_sink, certs, '--auth', 'net-relay:file-pw')
    secret = readable / 'net.secret'
    secret.write_text('file-pw\n')
    os.chmod(secret, 0o600)  # root's alone: read through the privileged reader
    upstreams = sets(default=[server(old.port)],
                     partner=[server(new.port, 'starttls', ca_file=str(certs / 'dev-ca.crt'),
                                     tls_name='localhost')])
    relay = Relay(readable, pathlib.Path(world) / 'certs', pathlib.Path(world) / 'users',
                  upstreams, domains=domains())
    os.chmod(relay.conf, 0o644)
    try:
        assert send_one(relay, CAROL)[0] == 250
        assert [e['mail_from'] for e in wait_events(old, 1)] == [CAROL]

        relay.conf.write_text(relay.conf.read_text().replace(
            domains(), domains(net="upstream = 'partner', upstream_auth = { "
                                   "user = 'net-relay', password_file = %s }"
                                   % lua_str(secret))))
        hup(relay)
        assert send_one(relay, CAROL)[0] == 250
        assert [(e['mail_from'], e['auth']) for e in wait_events(new, 1)] == [
            (CAROL, 'net-relay')]
        assert len(old.events('sink.message')) == 1
        assert 'file-pw' not in relay.err.read_text()

        # a broken edit (routes and upstream for one domain) keeps the last good one
        relay.conf.write_text(relay.conf.read_text().replace(
            'domains = {', "routes = { ['example.net'] = 'default' },\n  domains = {", 1))
        line = hup(relay, 'reload.fail')
        assert "routes names this domain too" in line['msg'], line
        assert send_one(relay, CAROL)[0] == 250
        assert len(wait_events(new, 2)) == 2
    finally:
        rc = relay.stop()
        assert_no_sanitizer_report(relay.err.read_text(errors='replace'))
        assert rc == 0


def test_check_names_the_conflict_and_the_missing_set(tmp_path, certs):
    conf = tmp_path / 'sluice.lua'
    base = ("return {\n  listeners = { { name = 'smtps', address = '127.0.0.1', port = 8465, "
            "tls = 'implicit' } },\n  tls = { certificates = { { cert = %s, key = %s } } },\n"
            "  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } } },\n"
            % (lua_str(certs / 'dev-ecdsa.crt'), lua_str(certs / 'dev-ecdsa.key')))
    conf.write_text(base + "  domains = { ['a.example'] = { upstream = 'nope' } },\n}\n")
    out = subprocess.run([SLUICE, 'check', '-c', str(conf)], capture_output=True, text=True)
    assert out.returncode != 0
    assert "domains['a.example'].upstream: no upstream set named 'nope'" in out.stderr
