"""Password storage (issue 5 point 6): argon2id hashes next to crypt(3) ones, and
`sluice passwd --import` turning the Python design's `email:password` files into users
files that hold only hashes, served by a real daemon."""
import os
import subprocess

import pytest

from conftest import SLUICE, Relay, b64, stop, upstream_conf


def auth_plain(relay, user, password):
    with relay.raw() as c:
        c.cmd(b'EHLO client.test')
        return c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (user, password)))[0]


@pytest.fixture
def run_relay(tmp_path, certs, sink):
    made = []

    def factory(users, **kw):
        r = Relay(tmp_path / ('relay%d' % len(made)), certs, users, upstream_conf(sink.port),
                  **kw)
        made.append(r)
        return r
    for _ in range(3):
        (tmp_path / ('relay%d' % _)).mkdir()
    yield factory
    for r in made:
        assert stop(r.proc) == 0
        err = r.err.read_text(errors='replace')
        assert 'AddressSanitizer' not in err and 'runtime error' not in err, err


def hash_of(password, scheme):
    return subprocess.run([SLUICE, 'passwd', '-s', scheme], input=password + '\n', text=True,
                          capture_output=True, check=True).stdout.strip()


@pytest.mark.threads  # hashes in the thread pool
def test_argon2id_users_log_in_beside_crypt_ones(tmp_path, run_relay):
    users = tmp_path / 'users'
    users.mkdir()
    h = hash_of('ann-pw', 'argon2id')
    assert h.startswith('$argon2id$v=19$m=19456,t=2,p=1$')
    (users / 'example.org.txt').write_text(
        'ann:%s\nbea:%s\n' % (h, hash_of('bea-pw', 'sha512')))
    r = run_relay(users)
    assert auth_plain(r, 'ann@example.org', 'ann-pw') == 235
    assert auth_plain(r, 'bea@example.org', 'bea-pw') == 235
    assert auth_plain(r, 'ann@example.org', 'bea-pw') == 535


def test_import_of_the_python_designs_files(tmp_path, run_relay):
    old = tmp_path / 'old'
    old.mkdir()
    (old / 'users.txt').write_text('alice@example.org:a pass:with colon \n'
                                   '# a comment\n\nBob@Example.ORG:bob-pw\n')
    (old / 'example.net.txt').write_text('carol:carol-pw\n')
    users = tmp_path / 'users'
    users.mkdir()
    out = subprocess.run([SLUICE, 'passwd', '--import', '--out', str(users), '-s', 'sha512',
                          str(old / 'users.txt'), str(old / 'example.net.txt')],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'imported 3 users' in out.stderr
    text = (users / 'example.org.txt').read_text() + (users / 'example.net.txt').read_text()
    assert 'pass' not in text and 'bob-pw' not in text and 'carol-pw' not in text
    assert sorted(l.split(':')[0] for l in text.splitlines()) == ['Bob', 'alice', 'carol']
    assert os.stat(users / 'example.org.txt').st_mode & 0o077 == 0o040  # 0640
    check = subprocess.run([SLUICE, 'passwd', '--import', '--out', str(users),
                            str(old / 'users.txt')], capture_output=True, text=True)
    assert check.returncode == 1 and 'already has alice' in check.stderr
    r = run_relay(users)
    assert auth_plain(r, 'alice@example.org', 'a pass:with colon ') == 235
    assert auth_plain(r, 'bob@example.org', 'bob-pw') == 235
    assert auth_plain(r, 'carol@example.net', 'carol-pw') == 235
    assert auth_plain(r, 'carol@example.net', 'bob-pw') == 535


def test_import_refuses_bad_input_and_writes_nothing(tmp_path):
    old = tmp_path / 'old'
    old.mkdir()
    (old / 'users.txt').write_text('alice@example.org:pw\nbare:pw\n')
    (old / 'twice.txt').write_text('dan@example.org:x\nDAN@example.org:y\n')
    (old / 'nocolon.txt').write_text('dan@example.org\n')
    users = tmp_path / 'users'
    users.mkdir()
    for f, want in (('users.txt', "users.txt:2: 'bare' has no domain"),
                    ('twice.txt', 'twice.txt:2: DAN@example.org appears twice'),
                    ('nocolon.txt', "nocolon.txt:1: expected 'email:password'")):
        out = subprocess.run([SLUICE, 'passwd', '--import', '--out', str(users),
                              str(old / f)], capture_output=True, text=True)
        assert out.returncode == 1 and want in out.stderr, out.stderr
    assert list(users.iterdir()) == []
    # A default domain takes the bare names.
    out = subprocess.run([SLUICE, 'passwd', '--import', '--out', str(users),
                          '--default-domain', 'example.org', str(old / 'users.txt')],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert sorted(l.split(':')[0] for l in
                  (users / 'example.org.txt').read_text().splitlines()) == ['alice', 'bare']
