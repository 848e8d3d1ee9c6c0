"""XOAUTH2 to upstreams (issue 13, point 3; docs/upstreams.md "OAuth2 (XOAUTH2)").

The parts are real: the suite's authorization server (idp/server.mjs, oidc-provider)
issues opaque access tokens by the client-credentials grant; the upstream is an aiosmtpd
server that offers AUTH XOAUTH2 and checks each bearer by RFC 7662 introspection at that
same IdP, refusing an inactive one the way Gmail does (a 334 JSON challenge, then 535).
sluice fetches the token from the IdP's token endpoint, caches it per worker and
identity, and logs in with it.

The IdP counts the requests its token endpoint had (GET /test/counts), so "one token for
many messages" is counted where it matters, not inferred from sluice's log.
"""
import base64
import json
import os
import pathlib
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from conftest import (ALICE, Relay, assert_no_sanitizer_report, free_port, hup, lua_str,
                      upstream_conf, wait_until)
from test_idp import SECRETS, idp  # noqa: F401 (the module-scoped IdP fixture)

BODY = b'From: alice@example.org\r\nSubject: oauth2 upstream\r\n\r\nbody\r\n'
RELAY_USER = 'relay@example.org'  # the mailbox sluice logs in as upstream
CLIENT = 'mail-app'               # the IdP client whose credentials sluice holds


class XOAuth2Handler:
    """An upstream that takes AUTH XOAUTH2 only, with bearers the IdP says are active."""

    def __init__(self, idp):
        self.idp = idp
        self.lock = threading.Lock()
        self.logins = []    # (user, token, accepted), in order
        self.messages = []  # (login user, mail_from, rcpts, content)

    async def auth_XOAUTH2(self, server, args):
        raw = base64.b64decode(args[1]) if len(args) > 1 else b''
        fields = dict(f.split(b'=', 1) for f in raw.split(b'\x01') if b'=' in f)
        user = fields.get(b'user', b'').decode()
        auth = fields.get(b'auth', b'').decode()
        token = auth[len('Bearer '):] if auth.startswith('Bearer ') else ''
        # the upstream's own check: RFC 7662 introspection as a resource server
        active = bool(token) and self.idp.introspect(token).get('active') is True
        with self.lock:
            self.logins.append((user, token, active))
        if active:
            return AuthResult(success=True, auth_data=user)
        # Gmail: a 334 with a base64 JSON error, the client answers an empty line, 535
        await server.challenge_auth(json.dumps({'status': '401', 'schemes': 'Bearer'}))
        return AuthResult(success=False, handled=False)  # aiosmtpd then sends 535

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((session.auth_data, envelope.mail_from,
                                  list(envelope.rcpt_tos), envelope.content))
        return '250 2.0.0 Ok: queued as OAUTH%d' % len(self.messages)


@pytest.fixture
def upstream(idp):
    handler = XOAuth2Handler(idp)
    port = free_port()
    c = Controller(handler, hostname='127.0.0.1', port=port, auth_required=True,
                   auth_require_tls=False)
    c.start()
    handler.port = port
    yield handler
    c.stop()


def token_requests(idp):
    return idp.counts().get('/token', 0)


def oauth2_auth(idp, secret_file=None, user=RELAY_USER):
    secret = ('client_secret_file = %s' % lua_str(str(secret_file)) if secret_file
              else 'client_secret = %s' % lua_str(SECRETS[CLIENT]))
    return ("{ user = %s, mechanism = 'xoauth2', oauth2 = { token_url = %s, "
            "client_id = %s, %s, scope = 'smtp.send' } }"
            % (lua_str(user), lua_str(idp.issuer + '/token'), lua_str(CLIENT), secret))


def domains(auth):
    return ("{ ['example.org'] = { check_header_from = false, upstream_auth = %s },"
            " ['example.net'] = { check_header_from = false } }" % auth)


def send(relay, n=1):
    """n messages on one client connection; the replies to DATA."""
    client = relay.smtps(ALICE)
    out = []
    try:
        for _ in range(n):
            assert client.mail(ALICE)[0] == 250
            assert client.rcpt('x@example.com')[0] == 250
            code, text = client.data(BODY)
            out.append((code, text.decode()))
    finally:
        client.quit()
    return out


def no_secrets(relay, *tokens):
    text = relay.err.read_text(errors='replace')
    for s in (SECRETS[CLIENT],) + tokens:
        assert s not in text, 'a secret or token in the log'


@pytest.fixture
def oauth_relay(make_relay, upstream, idp):
    idp.ttl(600)
    return make_relay(upstream_conf(upstream.port), domains=domains(oauth2_auth(idp)),
                      extra='insecure = true,')


def test_a_message_goes_upstream_with_a_token_from_the_token_endpoint(oauth_relay, upstream,
                                                                       idp):
    (code, text), = send(oauth_relay)
    assert code == 250 and text.endswith(' upstream OAUTH1'), text
    assert len(upstream.messages) == 1
    login, mail_from, rcpts, content = upstream.messages[0]
    assert (login, mail_from, rcpts) == (RELAY_USER, ALICE, ['x@example.com'])
    assert content.endswith(BODY)
    (user, token, active), = upstream.logins
    assert user == RELAY_USER and active
    got = oauth_relay.wait_logs('upstream.token')[0]
    assert got['client_id'] == CLIENT and got['expires_in'] == 600, got
    no_secrets(oauth_relay, token)


def test_many_messages_cost_one_token_request(make_relay, upstream, idp):
    idp.ttl(600)
    before = token_requests(idp)
    # pool of one connection per key, reused; a second client opens a second connection
    relay = make_relay(upstream_conf(upstream.port), domains=domains(oauth2_auth(idp)),
                       extra='insecure = true,')
    assert [c for c, _ in send(relay, 3)] == [250] * 3
    assert [c for c, _ in send(relay, 2)] == [250] * 2
    assert len(upstream.messages) == 5
    assert token_requests(idp) - before == 1
    assert len(relay.logs('upstream.token')) == 1
    tokens = {t for _, t, _ in upstream.logins}
    assert len(tokens) == 1, 'every connection logged in with the one cached token'
    no_secrets(relay, *tokens)


def test_a_new_token_is_fetched_when_the_old_one_nears_expiry(make_relay, upstream, idp):
    idp.ttl(2)  # refresh from 1.6 s, not used past 1.8 s
    try:
        before = token_requests(idp)
        relay = make_relay(upstream_conf(upstream.port), domains=domains(oauth2_auth(idp)),
                           extra="insecure = true, pool = { max_reuse = 1 },")
        assert send(relay)[0][0] == 250
        first = upstream.logins[-1][1]
        # wait for the token to age (no fixed sleep: until sluice would no longer use it)
        wait_until(lambda: idp.introspect(first).get('active') is not True,
                   'the first token to expire at the IdP', timeout=10)
        assert send(relay)[0][0] == 250
        second = upstream.logins[-1][1]
        assert second != first and upstream.logins[-1][2]
        assert token_requests(idp) - before == 2
        assert len(relay.logs('upstream.token')) == 2
        no_secrets(relay, first, second)
    finally:
        idp.ttl(600)


def test_a_revoked_token_is_dropped_and_fetched_again_once(make_relay, upstream, idp):
    idp.ttl(600)
    relay = make_relay(upstream_conf(upstream.port), domains=domains(oauth2_auth(idp)),
                       extra="insecure = true, pool = { max_reuse = 1 },")
    assert send(relay)[0][0] == 250
    first = upstream.logins[-1][1]
    idp.revoke(first, client=CLIENT)
    before = token_requests(idp)
    # the next connection offers the cached, now revoked token: 535, one new token, 250
    assert send(relay)[0][0] == 250
    assert token_requests(idp) - before == 1
    assert [(t == first, ok) for _, t, ok in upstream.logins[-2:]] == [(True, False),
                                                                       (False, True)]
    errors = [e for e in relay.logs('upstream.error') if e.get('stage') == 'auth']
    assert len(errors) == 1 and errors[0]['code'] == 535, errors
    no_secrets(relay, first, upstream.logins[-1][1])


def test_an_upstream_that_refuses_every_token_gets_one_refetch_then_451_470(
        make_relay, upstream, idp):
    idp.ttl(600)
    # an upstream whose check refuses every bearer (a mailbox the grant does not cover)
    upstream.idp = type('Refuses', (), {'introspect': staticmethod(lambda t: {'active': False})})
    try:
        before = token_requests(idp)
        relay = make_relay(upstream_conf(upstream.port), domains=domains(oauth2_auth(idp)),
                           extra='insecure = true,')
        (code, text), = send(relay)
        assert code == 451 and text.startswith('4.7.0 '), (code, text)
        assert token_requests(idp) - before == 2  # the first token and one new one
        assert [ok for _, _, ok in upstream.logins] == [False, False]
        assert upstream.messages == []
        done = relay.wait_logs('upstream.relay')[0]
        assert done['enhanced'] == '4.7.0' and done['code'] == 451, done
        no_secrets(relay, *[t for _, t, _ in upstream.logins])
    finally:
        upstream.idp = idp


def test_no_token_from_the_endpoint_gives_451_470_and_backs_off(make_relay, upstream, idp):
    bad = "{ user = %s, mechanism = 'xoauth2', oauth2 = { token_url = %s, client_id = %s, " \
          "client_secret = 'wrong-secret-5d1e' } }" % (
              lua_str(RELAY_USER), lua_str(idp.issuer + '/token'), lua_str(CLIENT))
    before = token_requests(idp)
    relay = make_relay(upstream_conf(upstream.port), domains=domains(bad),
                       extra='insecure = true,')
    replies = send(relay, 2)
    for code, text in replies:
        assert code == 451 and text.startswith('4.7.0 '), replies
        assert 'OAuth2 token' in text and 'invalid_client' in text, text
    # the second message came within the back-off: no second request to the endpoint
    assert token_requests(idp) - before == 1
    fail = relay.wait_logs('upstream.token_fail')[0]
    assert fail['status'] == 401 and 'invalid_client' in fail['error'], fail
    assert upstream.logins == [] and upstream.messages == []
    text = relay.err.read_text()
    assert 'wrong-secret-5d1e' not in text


def test_a_servers_own_auth_takes_xoauth2_too(make_relay, upstream, idp):
    idp.ttl(600)
    conf = upstream_conf(upstream.port, extra=', auth = %s' % oauth2_auth(idp))
    relay = make_relay(conf, extra='insecure = true,')
    assert send(relay)[0][0] == 250
    assert upstream.messages[0][0] == RELAY_USER
    no_secrets(relay, upstream.logins[0][1])


def test_hup_rereads_a_root_only_client_secret_file(upstream, idp, world, readable):
    idp.ttl(600)
    secret = readable / 'client.secret'
    secret.write_text(SECRETS[CLIENT] + '\n')
    os.chmod(secret, 0o600)  # root's alone: the daemon reads it through the privileged reader
    relay = Relay(readable, pathlib.Path(world) / 'certs', pathlib.Path(world) / 'users',
                  upstream_conf(upstream.port), domains=domains(oauth2_auth(idp, secret)),
                  extra='insecure = true,')
    os.chmod(relay.conf, 0o644)
    try:
        assert send(relay)[0][0] == 250
        before = token_requests(idp)
        hup(relay)
        # a new generation, a new cache: the secret was read again, as the service user
        assert send(relay)[0][0] == 250
        assert token_requests(idp) - before == 1
        assert len(upstream.messages) == 2
        no_secrets(relay, *[t for _, t, _ in upstream.logins])
    finally:
        rc = relay.stop()
        assert_no_sanitizer_report(relay.err.read_text(errors='replace'))
        assert rc == 0
