"""An identity provider on the same directory as the passwords (issue 13, point 4;
docs/authentication.md "One directory, passwords and tokens"), end to end:

  slapd (test_ldap.Slapd with the ppolicy overlay) holds alice's entry and password;
  the IdP (idp/server.mjs with idp/directory.mjs: oidc-provider whose login page binds to
  slapd as the user, and which asks slapd whether the account is enabled at every token
  issue and every introspection) gives alice tokens for her directory password, by the
  authorization-code flow with PKCE as test_idp.py drives it; sluice (example.org with
  auth = { 'ldap', 'oauth2' }) takes her directory password over AUTH PLAIN (bind mode,
  LDAPS) and her tokens over XOAUTH2: a JWT checked against the IdP's jwks_url, and an
  opaque token through its introspection endpoint.

Then the administrator disables alice in the directory, as an OpenLDAP site does with
ppolicy: `ldapmodify` adds pwdAccountLockedTime: 000001010000Z (locked until unlocked),
after which slapd refuses her binds (pwdLockout: TRUE in the default policy). The test
proves the documented bounds, each measured from the ldapmodify, with short cache times
so that the test takes seconds:

  * the IdP at once: no login, no refresh, introspection of her tokens inactive;
  * AUTH PLAIN: refused (535) within auth_cache_ttl (a success is remembered that long);
  * an opaque token: refused within introspection_cache (sluice remembers the IdP's
    active answer that long);
  * a JWT: still accepted after the lock (sluice checks it alone, asking nobody), and
    refused (reason expired) within one second after its exp: the IdP's access-token
    lifetime is the bound, which is why docs/authentication.md advises short lifetimes
    (or `sluice ctl token deny sub ...`, which acts at once) for such sites.

Each bound is polled (a new AUTH every 0.2 s) with a deadline; nothing sleeps to pass.

Why ldap-utils and not an npm LDAP client for the IdP's side (see idp/directory.mjs):
ldapwhoami / ldapsearch are Debian's, installed by `make deps` for test_ldap.py already,
use the same libldap and TLS settings as sluice, and read the password from a 0600 file
in a 0700 directory, removed when they exit (`-y`: not on a command line, where `ps`
shows it; Node gives a child a socket as stdin, which `-y /dev/stdin` cannot open);
ldapjs was decommissioned by
its maintainers in 2024. A process per lookup costs milliseconds, nothing at a test's
login rate. Why ppolicy for "disabled": it is OpenLDAP's own account lock, honoured by
every bind (sluice's in bind mode, the IdP's login) with nothing else to configure, as
389-ds's nsAccountLock and Active Directory's userAccountControl are for theirs; a site
that disables with a group or an attribute instead puts it in sluice's search-mode
filter (docs/authentication.md says how).

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_idp_ldap.py
(after `npm ci` in tests/integration/idp, which `make integration` does).
"""
import base64
import json
import subprocess
import time

import pytest

from conftest import ROOT, b64, client_bytes, lua_str, upstream_conf
from bearer import CHALLENGE, INVALID, OK, PAYLOAD, connect
from test_idp import AUDIENCE, OPAQUE_RESOURCE, RESOURCE, SCOPE, SECRETS, Idp, jwt_part
from test_ldap import LDAP_PASSWORDS, SLAPD_CONF, Slapd, auth_plain, ldif, ssha

ALICE = 'alice@example.org'
ALICE_PW = LDAP_PASSWORDS[ALICE]
ALICE_DN = 'uid=alice,ou=people,dc=example,dc=org'
ADMIN_DN, ADMIN_PW = 'cn=admin,dc=example,dc=org', 'admin-ldap-pw'
READER_DN, READER_PW = 'cn=idp,dc=example,dc=org', 'idp-reader-ldap-pw'
# Short, so that the test takes seconds; the bounds asserted are these plus SLACK (a
# busy 2-core machine's scheduling and the AUTH's own round trips).
AUTH_CACHE_TTL = 3
INTROSPECTION_CACHE = 3
TOKEN_TTL = 8
SLACK = 1.5
# policies/ratelimit.lua would block 127.0.0.1 after five refusals a minute, and the
# polls below are refused on purpose: it is not what this file is about.
POLICIES = [str(ROOT / 'policies' / n) for n in
            ('auth.lua', 'oauth2.lua', 'sender_domain.lua', 'audit.lua')]


class PolicySlapd(Slapd):
    """test_ldap.Slapd with the ppolicy overlay on dc=example,dc=org (a default policy
    with pwdLockout: TRUE, so that pwdAccountLockedTime locks binds), an administrator
    with a password (ldapmodify) and the IdP's reader account."""

    CONF = SLAPD_CONF.replace(
        'moduleload back_mdb\n', 'moduleload back_mdb\nmoduleload ppolicy\n').replace(
        'rootdn "cn=admin,dc=example,dc=org"\n',
        'rootdn "cn=admin,dc=example,dc=org"\nrootpw %s\n' % ADMIN_PW).replace(
        'directory {dir}/org\n',
        'directory {dir}/org\noverlay ppolicy\n'
        'ppolicy_default "cn=default,ou=policies,dc=example,dc=org"\n')

    def ldif(self, dc):
        out = ldif(dc)
        if dc == 'org':
            out += ('\ndn: ou=policies,dc=example,dc=org\nobjectClass: organizationalUnit\n'
                    'ou: policies\n\n'
                    'dn: cn=default,ou=policies,dc=example,dc=org\n'
                    'objectClass: applicationProcess\nobjectClass: pwdPolicy\ncn: default\n'
                    'pwdAttribute: userPassword\npwdLockout: TRUE\n\n'
                    'dn: %s\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n'
                    'cn: idp\nuserPassword: %s\n' % (READER_DN, ssha(READER_PW)))
        return out

    def modify(self, change):
        """ldapmodify as the administrator, over LDAPS with the dev CA."""
        r = subprocess.run(
            ['ldapmodify', '-x', '-H', self.ldaps_uri, '-D', ADMIN_DN, '-w', ADMIN_PW],
            input=change, capture_output=True, text=True, timeout=10,
            env={'LDAPTLS_CACERT': self.ca_file, 'LDAPTLS_REQCERT': 'demand'})
        assert r.returncode == 0, r.stderr

    def lock(self, dn):
        self.modify('dn: %s\nchangetype: modify\nadd: pwdAccountLockedTime\n'
                    'pwdAccountLockedTime: 000001010000Z\n' % dn)


class LdapIdp(Idp):
    """test_idp.Idp whose accounts and passwords are the directory's (idp/directory.mjs)."""

    def __init__(self, tmp, slapd, certs):
        super().__init__(tmp, ldap={
            'uri': slapd.ldaps_uri, 'ca_file': str(certs / 'dev-ca.crt'),
            'user_dn': 'uid=%u,ou=people,dc=example,dc=org', 'domains': ['example.org'],
            'reader_dn': READER_DN, 'reader_password': READER_PW}, users={})


@pytest.fixture
def slapd(tmp_path, certs):
    d = tmp_path / 'slapd'
    d.mkdir()
    s = PolicySlapd(d, certs)
    s.ca_file = str(certs / 'dev-ca.crt')
    yield s
    s.stop()


@pytest.fixture
def idp(tmp_path, slapd, certs):
    d = tmp_path / 'idp'
    d.mkdir()
    i = LdapIdp(d, slapd, certs)
    yield i
    rc = i.stop()
    err = i.err.read_text(errors='replace')
    assert 'server_error' not in err and 'idp error' not in err, err
    assert rc in (0, -15), (rc, err)


@pytest.fixture
def relay(make_relay, sink, slapd, idp, certs):
    """example.org: passwords from the directory (bind mode, LDAPS), tokens from the IdP
    (JWTs by jwks_url, opaque ones by introspection), short cache times."""
    ldap = ("{ uris = { %s }, ca_file = %s, timeout = 4,\n"
            "      bind_dn = 'uid=%%u,ou=people,dc=example,dc=org' }"
            % (lua_str(slapd.ldaps_uri), lua_str(certs / 'dev-ca.crt')))
    oauth2 = ("{ issuer = %s, audience = %s, scope = %s, clients = { 'mail-app' }, leeway = 0,"
              " jwks_url = %s, introspection_url = %s, client_id = 'sluice',"
              " client_secret = %s, introspection_cache = %d }"
              % (lua_str(idp.issuer), lua_str(AUDIENCE), lua_str(SCOPE),
                 lua_str(idp.jwks_url), lua_str(idp.introspection_url),
                 lua_str(SECRETS['sluice']), INTROSPECTION_CACHE))
    domains = ("{ ['example.org'] = { auth = { 'ldap', 'oauth2' }, ldap = %s,\n"
               "    oauth2 = %s } }" % (ldap, oauth2))
    return make_relay(upstream_conf(sink.port), policies=POLICIES, domains=domains,
                      extra='auth_cache_ttl = %d,' % AUTH_CACHE_TTL)


def xoauth2(relay, token, user=ALICE):
    """AUTH XOAUTH2 on a new connection; the final reply (after the error challenge and
    the client's empty answer, when there is one)."""
    c = connect(relay, 'smtps')
    try:
        reply = c.cmd('AUTH XOAUTH2 ' + PAYLOAD['XOAUTH2'](user, token))
        if reply.code == 334:
            assert json.loads(base64.b64decode(reply.text)) == CHALLENGE['XOAUTH2']
            reply = c.cmd('')
        return reply
    finally:
        c.close()


def plain(relay, password=ALICE_PW):
    c = connect(relay, 'smtps')
    try:
        return auth_plain(c, ALICE, password)
    finally:
        c.close()


def refused_within(attempt, since, bound, what):
    """Poll attempt() (a new AUTH) until it is refused; the seconds since `since` it
    took. Every reply before is a 235; the refusal is the 535, not a 454."""
    deadline = since + bound + SLACK
    while True:
        reply = attempt()
        now = time.monotonic()
        if reply != OK:
            assert reply == INVALID, (what, reply)
            return now - since
        assert now < deadline, '%s still accepted %.1f s after the lock (bound %s s)' % (
            what, now - since, bound)
        time.sleep(0.2)


def send_one(c, subject):
    c.send(('MAIL FROM:<%s>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n' % ALICE).encode())
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    return c.cmd(('From: <%s>\r\nSubject: %s\r\n\r\nbody\r\n.' % (ALICE, subject)).encode())


def test_the_directory_password_gets_a_token_and_both_relay_mail(slapd, idp, relay, sink):
    # the IdP's login page binds as the user: the directory's password, nothing else
    with pytest.raises(AssertionError, match='403'):
        idp.authorization_code(ALICE, password='not-her-password')
    got = idp.user_token(ALICE, password=ALICE_PW)
    token = got['access_token']
    assert (jwt_part(token, 1)['sub'], jwt_part(token, 1)['aud']) == (ALICE, AUDIENCE)
    opaque = idp.user_token(ALICE, password=ALICE_PW, resource=OPAQUE_RESOURCE)['access_token']
    assert opaque.count('.') == 0
    for mech_payload, subject in [(PAYLOAD['XOAUTH2'](ALICE, token), 'jwt'),
                                  (PAYLOAD['XOAUTH2'](ALICE, opaque), 'opaque')]:
        c = connect(relay, 'smtps')
        assert c.cmd('AUTH XOAUTH2 ' + mech_payload) == OK
        assert send_one(c, subject).code == 250
        c.close()
    c = connect(relay, 'smtps')
    assert auth_plain(c, ALICE, ALICE_PW) == OK
    assert send_one(c, 'password').code == 250
    c.close()
    stored = sink.wait_messages(3)
    assert [client_bytes(m) for m in stored] == [
        b'From: <alice@example.org>\r\nSubject: %s\r\n\r\nbody\r\n' % s
        for s in (b'jwt', b'opaque', b'password')]
    assert [(o['mech'], o['user']) for o in relay.wait_logs('auth.ok', 3)] == [
        ('XOAUTH2', ALICE), ('XOAUTH2', ALICE), ('PLAIN', ALICE)]
    [connect_line] = relay.logs('ldap.connect')
    assert connect_line['domain'] == 'example.org'


def test_a_user_disabled_in_the_directory_loses_password_and_tokens_within_the_bounds(
        slapd, idp, relay):
    idp.ttl(TOKEN_TTL)
    got = idp.user_token(ALICE, password=ALICE_PW)
    jwt = got['access_token']
    exp = jwt_part(jwt, 1)['exp']
    assert exp - jwt_part(jwt, 1)['iat'] == TOKEN_TTL
    opaque = idp.user_token(ALICE, password=ALICE_PW, resource=OPAQUE_RESOURCE)['access_token']
    # every way works, and each success is now remembered: the password in the auth
    # cache, the opaque token's introspection answer in the introspection cache
    assert plain(relay) == OK
    assert xoauth2(relay, opaque) == OK
    assert xoauth2(relay, jwt) == OK

    slapd.lock(ALICE_DN)
    locked = time.monotonic()
    locked_wall = time.time()

    # the IdP knows at once: no new login, no refresh, her tokens inactive
    with pytest.raises(AssertionError, match='403'):
        idp.authorization_code(ALICE, password=ALICE_PW)
    status, _, data = idp.request('POST', '/token', {
        'grant_type': 'refresh_token', 'refresh_token': got['refresh_token'],
        'resource': RESOURCE}, 'mail-app')
    assert (status, json.loads(data)['error']) == (400, 'invalid_grant'), data
    assert idp.introspect(opaque) == {'active': False}
    # the JWT: sluice checks it alone, asking nobody, so it works on until its exp
    assert time.time() < exp - 1
    assert xoauth2(relay, jwt) == OK, 'a JWT is refused before its exp'

    # sluice: within its cache times
    took = refused_within(lambda: plain(relay), locked, AUTH_CACHE_TTL, 'the password')
    assert took <= AUTH_CACHE_TTL + SLACK
    took = refused_within(lambda: xoauth2(relay, opaque), locked, INTROSPECTION_CACHE,
                          'the opaque token')
    assert took <= INTROSPECTION_CACHE + SLACK
    # and the JWT no later than a second after its exp, never before it
    refused_within(lambda: xoauth2(relay, jwt), locked,
                          exp + 1 - locked_wall, 'the JWT')
    assert time.time() >= exp, 'the JWT was refused before it expired'
    fails = relay.wait_logs('auth.fail', 3)
    assert [(f['mech'], f['code']) for f in fails] == [('PLAIN', 535), ('XOAUTH2', 535),
                                                       ('XOAUTH2', 535)]
    assert 'Invalid credentials' in fails[0]['reason'], fails[0]
    reasons = [e['reason'] for e in relay.audit('token_validation', n=7)
               if e['success'] is False]
    assert reasons == ['inactive', 'expired'], reasons


MALFORMED = (501, b'5.5.2 Malformed authentication data')


def test_what_the_docs_say_about_empty_fields_and_the_challenges(slapd, idp, relay):
    """docs/authentication.md: an empty password is malformed (501 5.5.2, RFC 4616
    passwd = 1*SAFE), before any backend; OAUTHBEARER omits the authzid (n,,) to let the
    token name the user, and `n,a=,` is malformed; the XOAUTH2 challenge says Bearer, the
    OAUTHBEARER one bearer."""
    c = connect(relay, 'smtps')
    assert auth_plain(c, ALICE, '') == MALFORMED
    c.close()
    token = idp.user_token(ALICE, password=ALICE_PW)['access_token']
    c = connect(relay, 'smtps')
    assert c.cmd('AUTH OAUTHBEARER ' + b64('n,a=,\x01auth=Bearer %s\x01\x01' % token)) == \
        MALFORMED
    assert c.cmd('AUTH OAUTHBEARER ' + b64('n,,\x01auth=Bearer %s\x01\x01' % token)) == OK
    c.close()
    assert relay.logs('ldap.result') == []  # the empty password never reached the directory
    for mech, scheme in (('XOAUTH2', 'Bearer'), ('OAUTHBEARER', 'bearer')):
        c = connect(relay, 'smtps')
        reply = c.cmd('AUTH %s %s' % (mech, PAYLOAD[mech](ALICE, token + 'x')))
        assert reply.code == 334, reply
        assert json.loads(base64.b64decode(reply.text))['schemes'] == scheme
        assert c.cmd('') == INVALID
        c.close()
