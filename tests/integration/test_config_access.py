"""Files the service user cannot read (issue 13, point 6; docs/authentication.md and
docs/security.md "Privileges"): started as root, sluice reads them through its privileged
reader, at start and on every reload, so a root-only bind_password_file or jwks_file
works and a rotated JWKS takes effect on HUP. `sluice check` (on stderr) and `sluice run` (as root)
name every such file, with the key that names it, so that the administrator knows which
files depend on the reader (a reload that moves one to a directory start-up never read
from fails; a daemon started as the user itself cannot start). A file the user can read
(root:sluice, 0640) is not named.

The answer is exact: a child becomes the user and opens each file (core/config/
config_access.c). These tests run as root, as CI does, and fail otherwise."""
import grp
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from conftest import ROOT, SLUICE, b64, hup, lua_str, upstream_conf

POLICIES = [str(ROOT / 'policies' / n) for n in ('auth.lua', 'oauth2.lua', 'audit.lua')]
ISSUER, AUDIENCE = 'https://idp.test', 'smtp-relay'


def dev_key(d):
    """A fresh Ed25519 dev key pair in d: (key, jwks)."""
    d.mkdir()
    subprocess.run([SLUICE, 'token', '--init', '--dir', str(d)], check=True,
                   capture_output=True)
    return d / 'dev-token.key', d / 'dev-token.jwks'


def token(key):
    return subprocess.run([SLUICE, 'token', '--key', str(key), '--issuer', ISSUER,
                           '--audience', AUDIENCE, '--ttl', '300', 'ann@example.org'],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def secrets():
    """A directory for the secrets, 0755, removed afterwards."""
    assert os.geteuid() == 0, 'these tests need root: they test what sluice does as root'
    d = pathlib.Path(tempfile.mkdtemp(prefix='sluice-secrets-'))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def domains(secrets):
    ldap = ("{ uris = { 'ldaps://127.0.0.1:1' }, base_dn = 'dc=example,dc=net', "
            "bind_dn = 'cn=sluice,dc=example,dc=net', bind_password_file = %s, "
            "filter = '(mail=%%s)' }" % lua_str(secrets / 'ldap.secret'))
    oauth2 = ("{ issuer = %s, audience = %s, jwks_file = %s, "
              "introspection_url = 'https://idp.test/introspect', client_id = 'sluice', "
              "client_secret_file = %s }"
              % (lua_str(ISSUER), lua_str(AUDIENCE), lua_str(secrets / 'idp.jwks'),
                 lua_str(secrets / 'idp.secret')))
    return ("{ ['example.org'] = { auth = { 'file', 'oauth2' }, oauth2 = %s },\n"
            "  ['example.net'] = { auth = { 'ldap' }, ldap = %s } }" % (oauth2, ldap))


def write_secrets(secrets, jwks, mode, group=0):
    (secrets / 'ldap.secret').write_text('service-pw\n')
    (secrets / 'idp.secret').write_text('client-secret\n')
    shutil.copy(jwks, secrets / 'idp.jwks')
    for name in ('ldap.secret', 'idp.secret', 'idp.jwks'):
        os.chown(secrets / name, 0, group)
        os.chmod(secrets / name, mode)


def check(conf):
    return subprocess.run([SLUICE, 'check', '-c', str(conf)], capture_output=True, text=True,
                          timeout=60)


def warned(lines, secrets):
    """{file name: its config.unreadable line} for the secrets' files, of log lines."""
    return {pathlib.Path(w['path']).name: w for w in lines
            if w['event'] == 'config.unreadable' and w['path'].startswith(str(secrets))}


def check_warnings(got):
    return [json.loads(line) for line in got.stderr.splitlines()]


def test_root_only_secrets_are_named_by_check_and_run_and_still_reload(make_relay, sink,
                                                                      secrets, tmp_path):
    old_key, old_jwks = dev_key(tmp_path / 'old')
    write_secrets(secrets, old_jwks, 0o600)
    relay = make_relay(upstream_conf(sink.port), policies=POLICIES, domains=domains(secrets))

    got = check(relay.conf)
    assert got.returncode == 0, got.stderr
    for lines in (warned(check_warnings(got), secrets), warned(relay.logs(), secrets)):
        assert {name: (w['level'], w['key'], w['user'], w['error'])
                for name, w in lines.items()} == {
            'ldap.secret': ('notice', "domains['example.net'].ldap.bind_password_file",
                            'sluice', 'Permission denied'),
            'idp.jwks': ('notice', "domains['example.org'].oauth2.jwks_file",
                         'sluice', 'Permission denied'),
            'idp.secret': ('notice', "domains['example.org'].oauth2.client_secret_file",
                           'sluice', 'Permission denied')}
        assert 'privileged reader' in lines['idp.jwks']['msg']

    # the reader reads them on reload: a rotated JWKS (root-only too) takes effect
    new_key, new_jwks = dev_key(tmp_path / 'new')
    write_secrets(secrets, new_jwks, 0o600)
    hup(relay, 'reload.ok')
    for key, want in ((new_key, 235), (old_key, 535)):
        s = relay.raw()
        assert s.cmd(b'EHLO client.test').code == 250
        reply = s.cmd('AUTH XOAUTH2 ' + b64('user=ann@example.org\x01auth=Bearer %s\x01\x01'
                                            % token(key)))
        if reply.code == 334:
            reply = s.cmd('')
        assert reply.code == want, (key, reply)
        s.close()


def test_secrets_the_service_user_can_read_are_not_named(make_relay, sink, secrets,
                                                         tmp_path):
    _, jwks = dev_key(tmp_path / 'k')
    write_secrets(secrets, jwks, 0o640, grp.getgrnam('sluice').gr_gid)
    relay = make_relay(upstream_conf(sink.port), policies=POLICIES, domains=domains(secrets))
    got = check(relay.conf)
    assert got.returncode == 0, got.stderr
    assert warned(check_warnings(got), secrets) == {}, got.stderr
    assert warned(relay.logs(), secrets) == {}
    # the same files root-only are named (the test above): the check can fail
