"""OAuth2 bearer tokens (docs/authentication.md) against the real daemon: tokens minted by
`sluice token` from a per-test dev key, and tokens built here with the `cryptography`
module (RS256, ES256, EdDSA, and every way a token can be wrong), over both listeners with
XOAUTH2 and OAUTHBEARER, sent by a raw client, by smtplib and by curl --oauth2-bearer.

Each refusal is asserted whole: the RFC 7628 error challenge (334 and base64 JSON), the
client's answer, 535 5.7.8, and the token_validation audit event with its reason; the
token itself never reaches the log.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_oauth2.py
"""
import base64
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import ALICE, PASSWORDS, ROOT, Relay, SLUICE, b64, client_bytes, upstream_conf
from bearer import CHALLENGE, INVALID, OK, PAYLOAD, b64url, connect, oauthbearer, xoauth2  # noqa: F401

# python3-cryptography (make deps): when it is missing these tests fail, never skip.
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

ISSUER = 'https://idp.test/realms/mail'
AUDIENCE = 'smtp://relay.test'
BOB = 'bob@example.org'
POLICIES = [str(ROOT / 'policies' / n) for n in
            ('auth.lua', 'oauth2.lua', 'sender_domain.lua', 'audit.lua')]




def int_b64url(n, length=None):
    return b64url(n.to_bytes(length or (n.bit_length() + 7) // 8, 'big'))


class Key:
    """A signing key made here, with its public JWK."""

    def __init__(self, kind, kid):
        self.kind, self.kid = kind, kid
        if kind == 'EdDSA':
            self.priv = ed25519.Ed25519PrivateKey.generate()
            raw = self.priv.public_key().public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw)
            self.jwk = {'kty': 'OKP', 'crv': 'Ed25519', 'x': b64url(raw)}
        elif kind == 'ES256':
            self.priv = ec.generate_private_key(ec.SECP256R1())
            nums = self.priv.public_key().public_numbers()
            self.jwk = {'kty': 'EC', 'crv': 'P-256', 'x': int_b64url(nums.x, 32),
                        'y': int_b64url(nums.y, 32)}
        else:
            self.priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            nums = self.priv.public_key().public_numbers()
            self.jwk = {'kty': 'RSA', 'n': int_b64url(nums.n), 'e': int_b64url(nums.e)}
        self.jwk.update(kid=kid, use='sig', alg=kind)

    def sign(self, data):
        if self.kind == 'EdDSA':
            return self.priv.sign(data)
        if self.kind == 'ES256':
            r, s = decode_dss_signature(self.priv.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, 'big') + s.to_bytes(32, 'big')
        return self.priv.sign(data, padding.PKCS1v15(), hashes.SHA256())


def claims(**over):
    now = int(time.time())
    c = {'iss': ISSUER, 'aud': AUDIENCE, 'sub': ALICE, 'email': ALICE,
         'domain': 'example.org', 'azp': 'mail-app', 'scope': 'openid smtp.send',
         'iat': now, 'exp': now + 600, 'jti': 'jti-%d' % time.monotonic_ns()}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def make_token(key, body, alg=None, kid=None, header=None):
    h = {'alg': alg or key.kind, 'typ': 'JWT', 'kid': kid or key.kid}
    h.update(header or {})
    signing_input = (b64url(json.dumps(h).encode()) + '.' +
                     b64url(json.dumps(body).encode()))
    return signing_input + '.' + b64url(key.sign(signing_input.encode()))








@pytest.fixture(scope='module')
def keys():
    """A world-readable directory (the daemon reads it after dropping to nobody) with the
    dev key of `sluice token --init`, three keys made here, and trusted.jwks holding the
    public halves of all but `stranger`."""
    d = pathlib.Path(tempfile.mkdtemp(prefix='sluice-oauth2-'))
    os.chmod(d, 0o755)
    out = subprocess.run([SLUICE, 'token', '--init', '--dir', str(d)], capture_output=True,
                         text=True, check=True).stdout
    assert 'kid sluice-dev-' in out
    dev = json.loads((d / 'dev-token.jwks').read_text())['keys'][0]
    made = {k: Key(k, 'idp-%s' % k.lower()) for k in ('RS256', 'ES256', 'EdDSA')}
    made['stranger'] = Key('EdDSA', 'idp-stranger')
    (d / 'trusted.jwks').write_text(json.dumps(
        {'keys': [dev] + [made[k].jwk for k in ('RS256', 'ES256', 'EdDSA')]}))
    for f in d.iterdir():
        if f.suffix != '.key':
            os.chmod(f, 0o644)
    made['dir'] = d
    made['dev_kid'] = dev['kid']
    yield made
    shutil.rmtree(d, ignore_errors=True)


def domains_lua(jwks):
    o = ("{ issuer = '%s', audience = { '%s', 'other-aud' }, jwks_file = '%s', "
         "clients = { 'mail-app', 'sluice-token' }, max_token_lifetime = 3600 }"
         % (ISSUER, AUDIENCE, jwks))
    return ("{ ['example.org'] = { auth = { 'file', 'oauth2' }, oauth2 = %s },\n"
            "    ['example.net'] = {},\n"
            "    ['disabled.test'] = { enabled = false, auth = { 'oauth2' }, oauth2 = %s } }"
            % (o, o))


@pytest.fixture
def relay(make_relay, sink, keys, tmp_path):
    sock = tmp_path / 'sluice.ctl'
    r = make_relay(upstream_conf(sink.port), policies=POLICIES,
                   domains=domains_lua(keys['dir'] / 'trusted.jwks'),
                   extra="control_socket = '%s'," % sock)
    r.sock = sock
    return r


def dev_token(relay, keys, user=ALICE, *args):
    """A token from `sluice token`, configured by the relay's own configuration."""
    return subprocess.run([SLUICE, 'token', '-c', str(relay.conf), '--key',
                           str(keys['dir'] / 'dev-token.key')] + list(args) + [user],
                          capture_output=True, text=True, check=True).stdout.strip()




def send_one(c, sender=ALICE):
    c.send(('MAIL FROM:<%s>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n' % sender).encode())
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    return c.cmd(b'From: <%s>\r\nSubject: token\r\n\r\nsent with a token\r\n.'
                 % sender.encode())


def refused(relay, token, mech='XOAUTH2', user=ALICE):
    """AUTH with token: the error challenge, an empty answer, 535. Returns the audit
    event of the attempt."""
    c = connect(relay, 'smtps')
    code, text = c.cmd('AUTH %s %s' % (mech, PAYLOAD[mech](user, token)))
    assert code == 334, (code, text)
    assert json.loads(base64.b64decode(text, validate=True)) == CHALLENGE[mech]
    assert c.cmd('') == INVALID
    assert c.cmd('MAIL FROM:<%s>' % ALICE) == (530, b'5.7.0 Authentication required')
    c.close()
    [event] = relay.audit('token_validation')
    assert event['success'] is False
    assert token not in relay.err.read_text()
    assert token.split('.')[-1] not in relay.audit_log.read_text()
    return event


@pytest.mark.parametrize('listener', ['smtps', 'submission'])
@pytest.mark.parametrize('mech', ['XOAUTH2', 'OAUTHBEARER'])
def test_a_sluice_token_authenticates_and_the_message_is_relayed(relay, sink, keys,
                                                                 listener, mech):
    token = dev_token(relay, keys)
    c = connect(relay, listener)
    assert c.cmd('AUTH %s %s' % (mech, PAYLOAD[mech](ALICE, token))) == OK
    reply = send_one(c)
    assert reply.code == 250, reply
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == (b'From: <alice@example.org>\r\nSubject: token\r\n\r\n'
                                    b'sent with a token\r\n')
    [ok] = relay.wait_logs('auth.ok')
    assert (ok['mech'], ok['user'], ok['domain']) == (mech, ALICE, 'example.org')
    [event] = relay.audit('token_validation')
    assert (event['success'], event['email'], event['domain'], event['client_id'],
            event['method']) == (True, ALICE, 'example.org', 'sluice-token', mech)
    assert token not in relay.err.read_text()


def test_sluice_token_carries_the_claims_of_the_mock_provider(relay, keys):
    token = dev_token(relay, keys, ALICE, '--client', 'mail-app', '--ttl', '120',
                      '--scope', 'smtp.send')
    header, body = (json.loads(base64.urlsafe_b64decode(p + '=' * (-len(p) % 4)))
                    for p in token.split('.')[:2])
    assert header == {'alg': 'EdDSA', 'typ': 'JWT', 'kid': keys['dev_kid']}
    assert {k: body[k] for k in ('iss', 'aud', 'sub', 'email', 'domain', 'azp', 'client_id',
                                 'scope')} == {
        'iss': ISSUER, 'aud': AUDIENCE, 'sub': ALICE, 'email': ALICE, 'domain': 'example.org',
        'azp': 'mail-app', 'client_id': 'mail-app', 'scope': 'smtp.send'}
    assert body['exp'] - body['iat'] == 120 and abs(body['iat'] - time.time()) < 5
    assert len(body['jti']) >= 16


def test_a_configuration_trusting_the_dev_key_says_so_at_start(relay, keys):
    warnings = relay.wait_logs('oauth2.dev_key')
    assert warnings and all(w['level'] == 'warning' for w in warnings)
    assert {(w['domain'], w['kid']) for w in warnings} == {
        ('example.org', keys['dev_kid']), ('disabled.test', keys['dev_kid'])}


@pytest.mark.parametrize('kind', ['RS256', 'ES256', 'EdDSA'])
def test_tokens_of_each_signature_algorithm_are_accepted(relay, keys, kind):
    c = connect(relay, 'smtps')
    token = make_token(keys[kind], claims())
    assert c.cmd('AUTH XOAUTH2 ' + xoauth2(ALICE, token)) == OK
    c.close()


@pytest.mark.parametrize('kind', ['RS256', 'ES256', 'EdDSA'])
def test_a_bad_signature_of_each_algorithm_is_refused_and_the_session_goes_on(relay, keys,
                                                                            kind):
    """A failed signature check must leave nothing behind: OpenSSL's error queue is per
    thread, and a stale error once made the session's next TLS read fail."""
    good = make_token(keys[kind], claims())
    head, body, sig = good.split('.')
    bad = '.'.join((head, body, sig[:-6] + ('AAAAAA' if sig[-6:] != 'AAAAAA' else 'BBBBBB')))
    c = connect(relay, 'smtps')
    assert c.cmd('AUTH XOAUTH2 ' + xoauth2(ALICE, bad)).code == 334
    assert c.cmd('') == INVALID
    assert c.cmd(b'NOOP') == (250, b'2.0.0 Ok')
    assert c.cmd('AUTH XOAUTH2 ' + xoauth2(ALICE, good)) == OK
    c.close()


def test_oauthbearer_without_authzid_takes_the_identity_from_the_token(relay, sink, keys):
    c = connect(relay, 'smtps')
    token = make_token(keys['ES256'], claims(email='Alice@Example.ORG'))
    assert c.cmd('AUTH OAUTHBEARER ' + oauthbearer('', token)) == OK
    assert send_one(c).code == 250  # sender_domain.lua sees alice's domain
    c.close()
    [ok] = relay.wait_logs('auth.ok')
    assert (ok['user'], ok['domain']) == (ALICE, 'example.org')


def test_smtplib_authenticates_with_a_custom_authobject(relay, sink, keys):
    token = dev_token(relay, keys)
    for client in (relay.smtps(login=None), relay.submission(login=None)):
        client.user = ALICE
        code, _ = client.auth('XOAUTH2', lambda challenge=None: 'user=%s\x01auth=Bearer %s\x01\x01'
                              % (ALICE, token), initial_response_ok=True)
        assert code == 235
        client.sendmail(ALICE, ['x@example.com'],
                        b'From: <alice@example.org>\r\nSubject: smtplib\r\n\r\nhi\r\n')
        client.quit()
    assert len(sink.wait_messages(2)) == 2


# No skip without curl: make test installs it (Makefile DEB_PACKAGES).
@pytest.mark.parametrize('listener', ['smtps', 'submission'])
def test_curl_sends_with_oauth2_bearer(relay, sink, keys, tmp_path, listener):
    token = dev_token(relay, keys)
    mail = tmp_path / 'mail.txt'
    mail.write_bytes(b'From: <alice@example.org>\r\nSubject: curl\r\n\r\nsent by curl\r\n')
    url = ('smtps://127.0.0.1:%d' % relay.smtps_port if listener == 'smtps'
           else 'smtp://127.0.0.1:%d' % relay.submission_port)
    cmd = ['curl', '-sS', '--url', url, '--cacert', relay.cafile, '--user', ALICE,
           '--oauth2-bearer', token, '--mail-from', ALICE, '--mail-rcpt', 'x@example.com',
           '--upload-file', str(mail)]
    if listener == 'submission':
        cmd.insert(2, '--ssl-reqd')
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == mail.read_bytes()
    [ok] = relay.wait_logs('auth.ok')
    assert ok['mech'] in ('OAUTHBEARER', 'XOAUTH2') and ok['user'] == ALICE


def _tampered(keys):
    token = make_token(keys['EdDSA'], claims())
    h, p, s = token.split('.')
    body = json.loads(base64.urlsafe_b64decode(p + '=' * (-len(p) % 4)))
    body['email'] = body['sub'] = BOB
    return '.'.join((h, b64url(json.dumps(body).encode()), s))


# name -> (token maker, SASL user, audit reason)
REFUSALS = {
    'expired': (lambda k: make_token(k['EdDSA'], claims(iat=int(time.time()) - 1000,
                                                        exp=int(time.time()) - 100)),
                ALICE, 'expired'),
    'tampered': (_tampered, BOB, 'signature'),
    'wrong-audience': (lambda k: make_token(k['RS256'], claims(aud='https://api.test')),
                       ALICE, 'audience'),
    'wrong-issuer': (lambda k: make_token(k['ES256'], claims(iss='https://evil.test')),
                     ALICE, 'issuer'),
    'other-key': (lambda k: make_token(k['stranger'], claims()), ALICE, 'unknown_key'),
    'other-key-known-kid': (lambda k: make_token(k['stranger'], claims(), kid='idp-eddsa'),
                            ALICE, 'signature'),
    'alg-none': (lambda k: make_token(k['EdDSA'], claims(), alg='none'), ALICE,
                 'unsupported_alg'),
    'no-scope': (lambda k: make_token(k['EdDSA'], claims(scope='openid')), ALICE, 'scope'),
    'wrong-user': (lambda k: make_token(k['EdDSA'], claims(sub=BOB, email=BOB)), ALICE,
                   'user_mismatch'),
    'client-not-allowed': (lambda k: make_token(k['EdDSA'], claims(azp='rogue-app')), ALICE,
                           'client'),
    'lifetime-too-long': (lambda k: make_token(k['EdDSA'], claims(exp=int(time.time()) + 7200)),
                          ALICE, 'lifetime'),
    'domain-without-oauth2': (lambda k: make_token(k['EdDSA'], claims(
        sub='carol@example.net', email='carol@example.net', domain=None)),
        'carol@example.net', 'not_allowed'),
    'opaque': (lambda k: 'ya29.an-opaque-token', ALICE, 'malformed'),
}


@pytest.mark.parametrize('name', REFUSALS)
@pytest.mark.parametrize('mech', ['XOAUTH2', 'OAUTHBEARER'])
def test_a_bad_token_gets_the_error_challenge_then_535(relay, sink, keys, name, mech):
    maker, user, reason = REFUSALS[name]
    event = refused(relay, maker(keys), mech, user)
    assert event['reason'] == reason
    assert (event['method'], event['ip_address']) == (mech, '127.0.0.1')
    [fail] = relay.wait_logs('auth.fail')
    assert (fail['mech'], fail['code']) == (mech, 535)
    [log] = relay.wait_logs('oauth2.refuse')
    assert log['reason'] == reason
    assert list(sink.transcripts.iterdir()) == []


def test_a_good_token_of_a_disabled_domain_gets_525_without_a_challenge(relay, keys):
    user = 'erin@disabled.test'
    c = connect(relay, 'smtps')
    token = make_token(keys['EdDSA'], claims(sub=user, email=user, domain='disabled.test'))
    assert c.cmd('AUTH XOAUTH2 ' + xoauth2(user, token)) == (
        525, b'5.7.13 Accounts of this domain are disabled, ask your administrator')
    c.close()
    [event] = relay.audit('token_validation')
    assert (event['reason'], event['domain']) == ('disabled', 'disabled.test')


def ctl(relay, *args):
    return subprocess.run([SLUICE, 'ctl', '-s', str(relay.sock)] + list(args),
                          capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize('kind', ['jti', 'sub', 'client'])
def test_a_token_denied_through_sluice_ctl_is_refused_until_allowed_again(relay, keys, kind):
    body = claims()
    token = make_token(keys['EdDSA'], body)
    value = {'jti': body['jti'], 'sub': ALICE, 'client': 'mail-app'}[kind]
    r = ctl(relay, 'token', 'deny', kind, value)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'oauth2:deny:%s:%s: denied for 86400.000 s\n' % (kind, value)
    event = refused(relay, token)
    assert event['reason'] == 'revoked' and event['jti'] == body['jti']
    [log] = relay.wait_logs('control.command')
    assert (log['command'], log['ok']) == ('token deny', True)
    r = ctl(relay, 'token', 'allow', kind, value)
    assert r.returncode == 0 and r.stdout == 'oauth2:deny:%s:%s: removed\n' % (kind, value)
    c = connect(relay, 'smtps')
    assert c.cmd('AUTH XOAUTH2 ' + xoauth2(ALICE, token)) == OK
    c.close()


def test_a_deny_with_seconds_expires_and_its_key_shows_in_ratelimit_show(relay, keys):
    r = ctl(relay, '--json', 'token', 'deny', 'jti', 'j-77', '1.5')
    assert json.loads(r.stdout) == {'ok': True, 'key': 'oauth2:deny:jti:j-77', 'ttl': 1.5}
    shown = json.loads(ctl(relay, '--json', 'ratelimit', 'show', 'oauth2:deny:jti').stdout)
    assert [k['key'] for k in shown['keys']] == ['oauth2:deny:jti:j-77']
    time.sleep(1.6)
    shown = json.loads(ctl(relay, '--json', 'ratelimit', 'show', 'oauth2:deny:jti').stdout)
    assert shown['keys'] == []
    assert ctl(relay, 'token', 'allow', 'jti', 'j-77').stdout.endswith(': was not denied\n')


@pytest.mark.parametrize('args', [
    ['token', 'deny', 'kid', 'x'], ['token', 'deny', 'jti'], ['token', 'allow', 'jti', 'x', '5'],
    ['token', 'deny', 'jti', 'x', 'soon'], ['token', 'revoke', 'jti', 'x'],
])
def test_token_commands_with_bad_arguments_are_usage_errors(relay, args):
    r = ctl(relay, *args)
    assert r.returncode in (1, 64), (r.returncode, r.stderr)
    assert r.stdout == ''


def test_the_daemon_refuses_bad_token_requests_itself(relay):
    """What ctl would not send, the daemon still refuses (docs/ctl.md protocol)."""
    import socket
    for line in (b'token deny jti x -1\n', b'token deny jti x 99999999999\n',
                 b'token deny nothing x\n', b'token allow jti x 5\n'):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(relay.sock))
            s.sendall(line)
            reply = json.loads(s.makefile().readline())
        assert reply['ok'] is False and reply['error'].startswith('usage: token'), reply


def test_a_jwks_file_without_a_usable_key_fails_check_with_its_name(tmp_path, certs,
                                                                  users_dir, keys):
    bad = tmp_path / 'bad.jwks'
    bad.write_text(json.dumps({'keys': [{'kty': 'oct', 'k': 'c2VjcmV0'}]}))
    conf = tmp_path / 'sluice.lua'
    conf.write_text("""return {
  users_dir = '%s',
  listeners = { { name = 'smtps', address = '127.0.0.1', port = 1, tls = 'implicit' } },
  tls = { certificates = { { cert = '%s', key = '%s' } } },
  upstreams = { default = { { host = '127.0.0.1', port = 2, tls = 'none' } } },
  policies = { '%s' },
  domains = %s,
}
""" % (users_dir, certs / 'dev-ecdsa.crt', certs / 'dev-ecdsa.key', POLICIES[1],
       domains_lua(bad)))
    r = subprocess.run([SLUICE, 'check', '-c', str(conf)], capture_output=True, text=True)
    assert r.returncode == 78, r.stderr
    assert "oauth2.jwks_file: %s: no usable signing key" % bad in r.stderr


def test_sluice_token_without_a_key_says_how_to_make_one(relay, tmp_path):
    r = subprocess.run([SLUICE, 'token', '-c', str(relay.conf), '--key',
                        str(tmp_path / 'none.key'), ALICE], capture_output=True, text=True)
    assert r.returncode == 1 and 'sluice token --init' in r.stderr
    r = subprocess.run([SLUICE, 'token', '-c', str(relay.conf), 'carol@example.net'],
                       capture_output=True, text=True)
    assert r.returncode == 78 and "no domains['example.net'].oauth2" in r.stderr
    r = subprocess.run([SLUICE, 'token', 'no-domain'], capture_output=True, text=True)
    assert r.returncode == 64


def test_migration_to_a_token_only_domain_and_listener(world, sink, keys, request):
    """docs/authentication.md "Migrating": passwords and tokens side by side, then the
    domain token-only, then a listener that offers tokens only; each step a reload (of
    files the daemon reads as `nobody` when the tests run as root: all in `world`)."""
    base = pathlib.Path(world)
    (base / 'relay').mkdir(mode=0o755)
    relay = Relay(base / 'relay', base / 'certs', base / 'users', upstream_conf(sink.port),
                  policies=POLICIES, domains=domains_lua(keys['dir'] / 'trusted.jwks'))
    os.chmod(relay.conf, 0o644)
    request.addfinalizer(relay.stop)  # also when an assertion fails half way
    token = dev_token(relay, keys)

    def password():
        c = connect(relay, 'smtps')
        code = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE]))).code
        c.close()
        return code

    def with_token():
        c = connect(relay, 'smtps')
        reply = c.cmd('AUTH XOAUTH2 ' + PAYLOAD['XOAUTH2'](ALICE, token))
        c.close()
        return reply

    def reload(text):
        relay.conf.write_text(text)
        n = len(relay.logs('reload.ok'))
        relay.proc.send_signal(signal.SIGHUP)
        assert len(relay.wait_logs('reload.ok', n + 1, timeout=15)) == n + 1, \
            relay.logs('reload.fail')

    assert (password(), with_token()) == (235, OK)
    conf = relay.conf.read_text()
    reload(conf.replace("['example.org'] = { auth = { 'file', 'oauth2' }",
                        "['example.org'] = { auth = { 'oauth2' }"))
    assert (password(), with_token()) == (535, OK)
    reload(relay.conf.read_text().replace(
        "tls = 'implicit' }", "tls = 'implicit', sasl = { 'XOAUTH2', 'OAUTHBEARER' } }"))
    c = connect(relay, 'smtps')
    ehlo = c.cmd(b'EHLO client.test')
    assert b'AUTH XOAUTH2 OAUTHBEARER' in ehlo.text.split(b'\n'), ehlo
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE]))) == (
        504, b'5.5.4 Unrecognized authentication type')
    c.close()
    assert with_token() == OK
    assert relay.stop() == 0
