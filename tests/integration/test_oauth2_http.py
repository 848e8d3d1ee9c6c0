"""OAuth2 over HTTP (docs/authentication.md): keys fetched from a jwks_url and RFC 7662
introspection of opaque tokens, against a real HTTPS server written here (http.server +
ssl with the dev certificates, in a thread on 127.0.0.1) standing in for the identity
provider. It serves a JWKS that the tests rotate, and an introspection endpoint that
checks the client's HTTP Basic credentials, counts its calls and can be slowed down or
stopped.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_oauth2_http.py
"""
import base64
import json
import os
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ALICE, SLUICE, upstream_conf, wait_until

import cryptography  # noqa: E402,F401 python3-cryptography: when missing, fail, never skip
from test_oauth2 import (AUDIENCE, INVALID, ISSUER, OK, POLICIES, Key, claims,  # noqa: E402
                         connect, make_token, oauthbearer, send_one, xoauth2)

CLIENT_ID, CLIENT_SECRET = 'relay-client', 's3cret:with/odd chars'
TEMPFAIL = (454, b'4.7.0 Temporary authentication failure, try again later')


class IdP:
    """The identity provider's two endpoints, over TLS with the dev certificate."""

    def __init__(self, certs_dir):
        self.jwks = {'keys': []}
        self.tokens = {}          # opaque token -> claims (active) or None (inactive)
        self.calls = {'jwks': 0, 'introspect': 0}
        self.requests = []        # (path, headers, body) of each introspection
        self.delay = {}           # opaque token -> seconds to sleep before answering
        self.certs_dir = certs_dir
        self.server = None
        self.port = None

    def start(self, port=0):
        idp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def reply(self, code, doc):
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.send_header('Connection', 'close')
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != '/jwks':
                    return self.reply(404, {})
                idp.calls['jwks'] += 1
                self.reply(200, idp.jwks)

            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length'] or 0)).decode()
                idp.requests.append((self.path, dict(self.headers), body))
                form = dict(urllib.parse.parse_qsl(body))
                want = 'Basic ' + base64.b64encode(('%s:%s' % (
                    urllib.parse.quote_plus(CLIENT_ID),
                    urllib.parse.quote_plus(CLIENT_SECRET))).encode()).decode()
                if self.headers.get('Authorization') != want:
                    return self.reply(401, {'error': 'invalid_client'})
                token = form.get('token', '')
                time.sleep(idp.delay.get(token, 0))
                idp.calls['introspect'] += 1
                c = idp.tokens.get(token)
                self.reply(200, dict(c, active=True) if c else {'active': False})

        self.server = ThreadingHTTPServer(('127.0.0.1', port), Handler)
        self.server.daemon_threads = True
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.path.join(self.certs_dir, 'dev-ecdsa.crt'),
                            os.path.join(self.certs_dir, 'dev-ecdsa.key'))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def idp(world):
    i = IdP(os.path.join(world, 'certs'))
    i.start()
    yield i
    i.stop()


def domains_lua(idp, world, cache=300):
    base = 'https://127.0.0.1:%d' % idp.port
    o = ("{ issuer = '%s', audience = { '%s' }, jwks_url = '%s/jwks', jwks_refresh = 3600, "
         "introspection_url = '%s/introspect', client_id = '%s', client_secret = '%s', "
         "introspection_cache = %d, ca_file = '%s', timeout = 3, clients = { 'mail-app' } }"
         % (ISSUER, AUDIENCE, base, base, CLIENT_ID, CLIENT_SECRET, cache,
            os.path.join(world, 'certs', 'dev-ca.crt')))
    return "{ ['example.org'] = { auth = { 'file', 'oauth2' }, oauth2 = %s } }" % o


@pytest.fixture
def make(make_relay, sink, idp, world):
    def factory(cache=300, workers=1):
        return make_relay(upstream_conf(sink.port), policies=POLICIES, workers=workers,
                          domains=domains_lua(idp, world, cache))
    return factory


def auth(relay, token, mech='XOAUTH2', user=ALICE):
    """AUTH with token over implicit TLS: (reply, client). A refusal's RFC 7628 error
    challenge is answered, and the final reply returned."""
    c = connect(relay, 'smtps')
    payload = (xoauth2 if mech == 'XOAUTH2' else oauthbearer)(user, token)
    reply = c.cmd('AUTH %s %s' % (mech, payload))
    if reply.code == 334:
        reply = c.cmd('')
    return reply, c


def opaque():
    return 'opq-' + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip('=')


def test_keys_come_from_the_jwks_url_once_and_a_rotated_key_works_without_restart(
        make, idp, sink):
    k1, k2 = Key('ES256', 'rot-1'), Key('EdDSA', 'rot-2')
    idp.jwks = {'keys': [k1.jwk]}
    relay = make()
    assert idp.calls['jwks'] == 0  # fetched on first use, not at start
    reply, c = auth(relay, make_token(k1, claims()))
    assert reply == OK
    assert send_one(c).code == 250
    c.close()
    reply, c = auth(relay, make_token(k1, claims()), mech='OAUTHBEARER')
    assert reply == OK
    c.close()
    assert idp.calls['jwks'] == 1
    idp.jwks = {'keys': [k1.jwk, k2.jwk]}  # the IdP rotates
    reply, c = auth(relay, make_token(k2, claims()))
    assert reply == OK
    c.close()
    assert idp.calls['jwks'] == 2
    assert [e['keys'] for e in relay.wait_logs('oauth2.jwks_fetched', 2)] == [1, 2]


def test_unknown_kids_refetch_the_key_set_at_most_once_a_minute(make, idp):
    k1 = Key('ES256', 'known')
    idp.jwks = {'keys': [k1.jwk]}
    relay = make()
    assert auth(relay, make_token(k1, claims()))[0] == OK
    for i in range(4):
        stranger = Key('EdDSA', 'bogus-%d' % i)
        assert auth(relay, make_token(stranger, claims()))[0] == INVALID
    assert idp.calls['jwks'] == 2
    reasons = [e['reason'] for e in relay.audit('token_validation', 5)[1:]]
    assert reasons == ['unknown_key'] * 4


def test_a_fetched_key_set_with_members_a_length_off_keeps_only_its_good_keys(make, idp):
    """An IdP's JWKS is the other party's bytes: keys whose members are one or two octets
    longer or shorter than their buffers, or carry a NUL, are skipped (before the fix a
    44-character x overran a stack buffer: the ASan daemon died on the fetch), and a
    token naming one of them is refused as unknown_key, not verified by a truncated key."""
    from bearer import b64url
    good, ed, ec, rs = (Key('EdDSA', 'good'), Key('EdDSA', 'ed'), Key('ES256', 'ec'),
                        Key('RS256', 'rs'))

    def bad(key, kid, **members):
        return dict(key.jwk, kid=kid, **members)
    idp.jwks = {'keys': [
        bad(ed, 'x44', x=ed.jwk['x'] + 'A'),
        bad(ed, 'x42', x=ed.jwk['x'][:42]),
        bad(ed, 'nul', x=ed.jwk['x'] + '\0'),
        bad(ec, 'y33', y=ec.jwk['y'] + 'A'),
        bad(ec, 'x34', x=b64url(b'\x01' * 34)),
        bad(rs, 'n1026', n=b64url(b'\x80' * 1026)),
        bad(rs, 'e18', e=b64url(b'\x01' + b'\x00' * 16 + b'\x01')),
        good.jwk,
    ]}
    relay = make()
    reply, c = auth(relay, make_token(good, claims()))
    assert reply == OK
    c.close()
    [fetched] = relay.wait_logs('oauth2.jwks_fetched')
    assert fetched['keys'] == 1
    for kid, key in (('nul', ed), ('x44', ed), ('y33', ec), ('e18', rs)):
        reply, c = auth(relay, make_token(key, claims(), kid=kid))
        assert reply == INVALID, kid
        c.close()
    reasons = [e['reason'] for e in relay.audit('token_validation', 5)[1:]]
    assert reasons == ['unknown_key'] * 4
    reply, c = auth(relay, make_token(good, claims()))
    assert reply == OK  # still up, same keys
    c.close()


def test_opaque_tokens_are_introspected_with_client_authentication_and_cached(make, idp):
    token = opaque()
    idp.tokens[token] = claims()
    relay = make()
    reply, c = auth(relay, token)
    assert reply == OK
    assert send_one(c).code == 250
    c.close()
    [(path, headers, body)] = idp.requests
    assert path == '/introspect'
    assert urllib.parse.parse_qs(body) == {'token': [token], 'token_type_hint': ['access_token']}
    assert headers['Content-Type'] == 'application/x-www-form-urlencoded'
    for _ in range(3):
        assert auth(relay, token, mech='OAUTHBEARER')[0] == OK
    assert idp.calls['introspect'] == 1  # the cache answered
    assert token not in relay.err.read_text()
    assert token not in relay.audit_log.read_text()


def test_an_inactive_token_gets_the_challenge_then_535(make, idp):
    relay = make()
    token = opaque()
    c = connect(relay, 'smtps')
    code, text = c.cmd('AUTH XOAUTH2 %s' % xoauth2(ALICE, token))
    assert code == 334
    assert json.loads(base64.b64decode(text))['status'] == '400'
    assert c.cmd('') == INVALID
    [event] = relay.audit('token_validation')
    assert (event['success'], event['reason']) == (False, 'inactive')


def test_a_revoked_token_is_refused_once_the_cache_ttl_has_passed(make, idp):
    token = opaque()
    idp.tokens[token] = claims()
    relay = make(cache=2)
    assert auth(relay, token)[0] == OK
    idp.tokens[token] = None  # revoked at the IdP
    assert auth(relay, token)[0] == OK  # still cached
    time.sleep(2.2)
    assert auth(relay, token)[0] == INVALID
    assert idp.calls['introspect'] == 2


def test_a_token_whose_claims_fail_the_checks_is_refused(make, idp):
    relay = make()
    cases = {'audience': claims(aud='other'), 'expired': claims(exp=int(time.time()) - 300),
             'user_mismatch': claims(email='bob@example.org', sub='bob@example.org'),
             'client': claims(azp='other-app')}
    for reason, c in cases.items():
        token = opaque()
        idp.tokens[token] = c
        assert auth(relay, token)[0] == INVALID, reason
    got = [e['reason'] for e in relay.audit('token_validation', len(cases))]
    assert got == list(cases)


def test_an_idp_that_is_down_gives_454(make, idp):
    k1 = Key('ES256', 'never-fetched')
    idp.jwks = {'keys': [k1.jwk]}
    relay = make()
    idp.stop()
    reply, c = auth(relay, opaque())
    assert reply == TEMPFAIL
    c.close()
    reply, c = auth(relay, make_token(k1, claims()))
    assert reply == TEMPFAIL
    c.close()
    assert relay.wait_logs('oauth2.introspection_unavailable')
    assert relay.wait_logs('oauth2.keys_unavailable')
    assert relay.audit('token_validation', timeout=0.5) == []


def test_a_slow_introspection_does_not_delay_another_session_on_the_worker(make, idp):
    slow = opaque()
    idp.tokens[slow] = claims()
    idp.delay[slow] = 2.0
    relay = make(workers=1)
    a = connect(relay, 'smtps')
    t0 = time.monotonic()
    a.send(('AUTH XOAUTH2 %s\r\n' % xoauth2(ALICE, slow)).encode())
    wait_until(lambda: any(slow in body for _, _, body in list(idp.requests)),
               'the introspection request at the IdP')  # the hook is waiting on it now
    b = relay.raw_authed()
    assert b.cmd(b'NOOP').code == 250
    assert time.monotonic() - t0 < 1.5
    b.close()
    assert a.reply() == OK
    assert time.monotonic() - t0 >= 2.0
    a.close()


@pytest.mark.parametrize('oauth2, error', [
    ("jwks_file = '%(ca)s', jwks_url = 'https://idp.test/jwks'", 'not both'),
    ("jwks_url = 'http://idp.test/jwks'", 'must be https://'),
    ("jwks_url = 'https://user@idp.test/jwks'", 'user information'),
    ("introspection_url = 'https://idp.test/i'", 'client_id'),
    ("introspection_url = 'https://idp.test/i', client_id = 'c'", 'client_secret'),
])
def test_bad_oauth2_url_settings_fail_check_naming_the_key(tmp_path, certs, oauth2, error):
    conf = tmp_path / 'bad.lua'
    conf.write_text("""return {
  listeners = { { name = 'smtps', address = '127.0.0.1', port = 1, tls = 'implicit' } },
  tls = { certificates = { { cert = '%s', key = '%s' } } },
  upstreams = { default = { { host = '127.0.0.1', port = 2 } } },
  domains = { ['example.org'] = { auth = { 'oauth2' }, oauth2 = { issuer = 'i',
    audience = 'a', %s } } },
}
""" % (certs / 'dev-ecdsa.crt', certs / 'dev-ecdsa.key', oauth2 % {'ca': certs / 'dev-ca.crt'}))
    out = subprocess.run([SLUICE, 'check', '-c', str(conf)], capture_output=True, text=True)
    assert out.returncode != 0
    assert error in out.stderr and 'oauth2' in out.stderr, out.stderr
