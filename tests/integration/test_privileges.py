"""Privileges (docs/security.md "Privileges"): started as root, sluice runs as the
service user and reads files through its privileged reader, so a reload reads what
start-up read: files under a 0700 directory (root's home on Debian) and root-only (0600)
keys and users files. A file in a directory start-up never read from is the service
user's to read, and the reload that needs it fails naming it.

These tests are about what root does: they run only as root (CI does), and fail
otherwise rather than skip."""
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import (ALICE, ROOT, SHIPPED_POLICIES, SLUICE, Relay, hup, peer_cert,
                      renew_certs, upstream_conf)

SERVICE_UID = pwd.getpwnam('sluice').pw_uid  # the default `user`, made by `make test`


@pytest.fixture
def home(certs, users_dir):
    """A root-only tree as a clone in /root would be: 0700 at the top, keys and users
    files 0600, the policies and the Lua library inside."""
    assert os.geteuid() == 0, 'these tests need root: they test what sluice does as root'
    d = pathlib.Path(tempfile.mkdtemp(prefix='sluice-home-'))
    os.chmod(d, 0o700)
    shutil.copytree(certs, d / 'certs')
    shutil.copytree(users_dir, d / 'users')
    shutil.copytree(ROOT / 'lua', d / 'lua')
    (d / 'policies').mkdir()
    for p in SHIPPED_POLICIES:
        shutil.copy(p, d / 'policies')
    for sub in ('certs', 'users', 'lua', 'policies'):
        os.chmod(d / sub, 0o700)
    for f in list((d / 'certs').iterdir()) + list((d / 'users').iterdir()):
        os.chmod(f, 0o600)
    (d / 'relay').mkdir(mode=0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def locked(home, sink):
    relays = []

    def factory(**kw):
        policies = [str(home / 'policies' / os.path.basename(p)) for p in SHIPPED_POLICIES]
        kw.setdefault('policies', policies)
        r = Relay(home / 'relay', home / 'certs', home / 'users', upstream_conf(sink.port),
                  extra='lua_dir = %r,' % str(home / 'lua'), **kw)
        relays.append(r)
        return r
    yield factory
    for r in relays:
        rc = r.stop()
        err = r.err.read_text(errors='replace')
        assert 'AddressSanitizer' not in err and 'runtime error' not in err, err
        assert rc == 0, err[-3000:]


def uid_of(pid):
    for line in pathlib.Path('/proc/%d/status' % pid).read_text().splitlines():
        if line.startswith('Uid:'):
            return int(line.split()[1])
    raise AssertionError('no Uid line for %d' % pid)


def children_of(pid):
    out = []
    for p in pathlib.Path('/proc').iterdir():
        if p.name.isdigit():
            try:
                stat = (p / 'stat').read_text()
            except OSError:
                continue
            if int(stat.rsplit(')', 1)[1].split()[1]) == pid:
                out.append(int(p.name))
    return out


def add_user(home, local, password):
    h = subprocess.run([SLUICE, 'passwd', '-s', 'sha512'], input=password + '\n', text=True,
                       capture_output=True, check=True).stdout.strip()
    with open(home / 'users' / 'example.org.txt', 'a') as f:
        f.write('%s:%s\n' % (local, h))


def test_the_daemon_runs_as_the_service_user_and_only_its_reader_keeps_root(locked):
    r = locked()
    assert uid_of(r.proc.pid) == SERVICE_UID
    readers = children_of(r.proc.pid)
    assert len(readers) == 1 and uid_of(readers[0]) == 0, readers
    assert r.logs('privfile.start')[0]['msg'] == 'privileged reader: pid %d' % readers[0]
    assert r.stop() == 0
    deadline = time.monotonic() + 5
    while os.path.exists('/proc/%d' % readers[0]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists('/proc/%d' % readers[0]), 'the reader outlived the daemon'


def test_a_user_added_under_a_root_only_home_logs_in_after_a_reload(locked, home, sink):
    r = locked()
    add_user(home, 'dora', 'dora-pw')
    assert oct(os.stat(home / 'users' / 'example.org.txt').st_mode & 0o777) == '0o600'
    hup(r, 'reload.ok')
    c = r.smtps(login=None)
    assert c.login('dora@example.org', 'dora-pw')[0] == 235
    c.sendmail('dora@example.org', ['someone@example.com'], b'Subject: hi\r\n\r\nhi\r\n')
    c.quit()
    assert [m for m in sink.messages() if b'Subject: hi' in m]


def test_a_renewed_certificate_with_a_root_only_key_takes_effect(locked, home, tmp_path):
    r = locked()
    before = peer_cert(r)
    renew_certs(tmp_path / 'fresh', home / 'certs', 0o600)
    r.cafile = str(home / 'certs' / 'dev-ca.crt')
    hup(r, 'reload.ok')
    assert peer_cert(r) != before


def test_a_policy_in_a_new_root_only_directory_fails_the_reload_and_is_named(locked, home):
    r = locked()
    extra = home / 'elsewhere'
    extra.mkdir(mode=0o700)
    (extra / 'site.lua').write_text('return {}\n')
    os.chmod(extra / 'site.lua', 0o600)
    text = r.conf.read_text().replace("policies = { ",
                                      "policies = { %r, " % str(extra / 'site.lua'))
    r.conf.write_text(text)
    line = hup(r, 'reload.fail')
    assert str(extra / 'site.lua') in line['msg'] and 'Permission denied' in line['msg'], line
    refused = r.logs('privfile.refuse')
    assert refused and str(extra / 'site.lua') in refused[-1]['msg'], refused
    r.smtps().quit()  # the old generation stays in force


def test_the_audit_log_in_a_root_only_directory_is_made_again_after_rotation(locked, home):
    r = locked()
    r.smtps().quit()
    rotated = home / 'relay' / 'audit.log.1'
    os.rename(r.audit_log, rotated)
    hup(r, 'reload.ok')
    r.smtps().quit()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
            r.audit_log.exists() and ALICE in r.audit_log.read_text()):
        time.sleep(0.02)
    assert ALICE in r.audit_log.read_text()
    assert ALICE in rotated.read_text()

