"""The command line as README.md and docs/smtp.md ("Exit codes") describe it: `sluice
check`, `sluice run`, `sluice passwd` and their exit codes (0 clean, 64 usage, 71
cannot bind or drop privileges, 78 configuration, certificate or users file invalid,
with file:line on stderr), and `sluice run` started as root becoming `sluice`.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_cli.py
"""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import warnings

import pytest

from conftest import (ALICE, ROOT, SHIPPED_POLICIES, SLUICE, Relay, free_port, hup, lua_str,
                      stop, upstream_conf)

with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    import crypt  # noqa: E402 - deprecated in 3.11, still the libcrypt binding we need


def sluice(*args, stdin=None, timeout=20):
    return subprocess.run([SLUICE, *args], input=stdin, capture_output=True, timeout=timeout)


def write_config(path, certs, users_dir, port=None, limits='', extra=''):
    """A valid configuration with the dev certificates; limits/extra go in verbatim."""
    port = port or free_port()
    path.write_text("""return {
  hostname = 'relay.test',
  workers = 1,
  users_dir = %s,
  listeners = {
    { name = 'smtps', address = '127.0.0.1', port = %d, tls = 'implicit' },
  },
  tls = { certificates = { { cert = %s, key = %s } } },
  limits = {
    max_recipients = 50,%s
  },
  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } } },
  %s
}
""" % (lua_str(users_dir), port, lua_str(certs / 'dev-ecdsa.crt'),
       lua_str(certs / 'dev-ecdsa.key'), limits, extra))
    return path


def line_of(path, text):
    """1-based number of the line of path that contains text."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return n
    raise AssertionError('%r not in %s' % (text, path))


def run_daemon(conf, timeout=10):
    """`sluice run` that is expected to stop on its own: (exit code, stderr text)."""
    proc = subprocess.run([SLUICE, 'run', '-c', str(conf)], capture_output=True,
                          timeout=timeout)
    return proc.returncode, proc.stderr.decode(errors='replace')


# ---- sluice check ----


def test_check_accepts_the_shipped_configuration(tmp_path, certs):
    shipped = (ROOT / 'conf' / 'sluice.lua').read_text()
    assert "'../certs/dev-rsa.crt'" in shipped and "users_dir = 'users'" in shipped
    conf = tmp_path / 'sluice.lua'
    assert "audit_log = '../run/audit/audit.log'" in shipped
    conf.write_text(shipped.replace("'../certs/", "'%s/" % certs)
                    .replace("'../policies/", "'%s/" % (ROOT / 'policies'))
                    .replace("'../run/audit/audit.log'", lua_str(tmp_path / 'audit.log'))
                    .replace("users_dir = 'users'",
                             'users_dir = ' + lua_str(ROOT / 'conf' / 'users')))
    got = sluice('check', '-c', str(conf))

    assert got.returncode == 0, got.stderr
    # the dev users of example.org show both schemes: every AUTH there costs both hashes
    # (docs/security.md "User enumeration by timing")
    assert got.stdout.decode() == (
        '%s: ok (2 listeners, 1 upstream sets, 3 users)\n'
        '%s/example.org.txt: 2 hash cost classes, every AUTH of the domain hashes 2: '
        '$6$ (1 user), $y$j9T$ (1 user)\n' % (conf, ROOT / 'conf' / 'users'))
    # The only thing said besides: it trusts the dev token key (docs/authentication.md),
    # and, as root, which files the user 'sluice' cannot read by itself (pytest's root-only
    # temporary directories: test_config_access.py is about those).
    [warning] = [w for w in map(json.loads, got.stderr.decode().splitlines())
                 if w['event'] != 'config.unreadable']
    assert (warning['level'], warning['event'], warning['domain']) == (
        'warning', 'oauth2.dev_key', 'example.org')


def test_run_warns_about_the_dev_key_once_per_start_and_reload(tmp_path, make_relay, sink):
    # The configuration check and then each worker load policies/oauth2.lua: only the
    # check says it (it said it three times with two workers).
    keys = tmp_path / 'keys'
    keys.mkdir()
    subprocess.run([SLUICE, 'token', '--init', '--dir', str(keys)], check=True,
                   capture_output=True)
    domains = ("{ ['example.org'] = { auth = { 'file', 'oauth2' }, oauth2 = { issuer = "
               "'https://idp.test', audience = 'smtp://relay.test', jwks_file = %s } } }"
               % lua_str(keys / 'dev-token.jwks'))
    policies = SHIPPED_POLICIES[:2] + [str(ROOT / 'policies' / 'oauth2.lua')]
    relay = make_relay(upstream_conf(sink.port), workers=2, policies=policies,
                       domains=domains)

    [warning] = relay.logs('oauth2.dev_key')
    assert (warning['level'], warning['domain']) == ('warning', 'example.org')
    hup(relay)
    assert len(relay.logs('oauth2.dev_key')) == 2


def test_check_names_the_file_line_and_key_of_a_typo_and_exits_78(tmp_path, certs, users_dir):
    conf = write_config(tmp_path / 'typo.lua', certs, users_dir,
                        limits='\n    max_recipent = 10,')
    got = sluice('check', '-c', str(conf))

    assert got.returncode == 78
    assert got.stderr.decode() == '%s:%d: limits.max_recipent: unknown key\n' % (
        conf, line_of(conf, 'max_recipent'))
    assert got.stdout == b''


def test_run_refuses_a_typo_with_78_and_the_same_message(tmp_path, certs, users_dir):
    conf = write_config(tmp_path / 'typo.lua', certs, users_dir,
                        limits='\n    max_recipent = 10,')
    code, err = run_daemon(conf)

    assert code == 78
    assert '"event":"config.fail"' in err
    assert '%s:%d: limits.max_recipent: unknown key' % (conf, line_of(conf, 'max_recipent')) \
        in err
    assert 'daemon.ready' not in err


def test_check_names_the_file_and_line_of_a_syntax_error_and_exits_78(tmp_path, certs,
                                                                       users_dir):
    conf = write_config(tmp_path / 'syntax.lua', certs, users_dir,
                        limits='\n    max_errors = 5\n    max_commands = 100,')
    got = sluice('check', '-c', str(conf))

    assert got.returncode == 78
    line = line_of(conf, 'max_commands')
    assert re.fullmatch(r'%s:%d: .+\n' % (re.escape(str(conf)), line),
                        got.stderr.decode()), got.stderr


def test_check_refuses_a_plaintext_password_naming_the_users_file_and_line(tmp_path, certs):
    users = tmp_path / 'users'
    users.mkdir()
    good = sluice('passwd', '-s', 'sha512', stdin=b'alice-pw\n').stdout.decode().strip()
    (users / 'example.org.txt').write_text(
        '# example.org\nalice:%s\nbob:bob-plain-secret\n' % good)
    conf = write_config(tmp_path / 'sluice.lua', certs, users)
    got = sluice('check', '-c', str(conf))

    assert got.returncode == 78
    err = got.stderr.decode()
    assert err.startswith('%s:3: ' % (users / 'example.org.txt')), err
    assert 'bob-plain-secret' not in err  # never echo what may be a password
    code, log = run_daemon(conf)
    assert code == 78
    assert '%s:3: ' % (users / 'example.org.txt') in log and 'bob-plain-secret' not in log


def test_check_of_a_missing_file_exits_78_naming_it(tmp_path):
    missing = tmp_path / 'nope.lua'
    got = sluice('check', '-c', str(missing))

    assert got.returncode == 78
    assert got.stderr.decode().startswith('%s: ' % missing)


# ---- usage ----


@pytest.mark.parametrize('argv', [['frobnicate'], [], ['run', '--bogus'], ['check', '-c'],
                                  ['passwd', '-s', 'md5']])
def test_bad_command_lines_exit_64_with_usage_on_stderr(argv):
    got = sluice(*argv, stdin=b'pw\n')

    assert got.returncode == 64, got
    assert b'usage: sluice' in got.stderr
    assert got.stdout == b''


def test_help_prints_usage_on_stdout_and_exits_0():
    got = sluice('--help')

    assert got.returncode == 0
    assert got.stdout.startswith(b'usage: sluice run')


@pytest.mark.parametrize('sub', ['run', 'check', 'passwd', 'sink', 'ctl', 'token'])
@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_each_subcommand_prints_its_own_usage_on_stdout_for_help_and_exits_0(sub, flag):
    got = sluice(sub, flag, stdin=b'')

    assert (got.returncode, got.stderr) == (0, b''), got
    assert got.stdout.startswith(b'usage: sluice %s' % sub.encode()), got.stdout


def test_version_prints_the_version_and_exits_0():
    got = sluice('--version')

    assert (got.returncode, got.stderr) == (0, b''), got
    assert re.fullmatch(rb'sluice \d+\.\d+\.\d+\n', got.stdout), got.stdout


# ---- sluice passwd ----


@pytest.mark.parametrize('args, prefix', [((), '$y$'), (('-s', 'yescrypt'), '$y$'),
                                          (('-s', 'bcrypt'), '$2b$'),
                                          (('-s', 'sha512'), '$6$')])
def test_passwd_prints_a_hash_that_crypt_verifies(args, prefix):
    first = sluice('passwd', *args, stdin=b'correct horse\n')
    second = sluice('passwd', *args, stdin=b'correct horse')

    assert first.returncode == 0 and second.returncode == 0, (first, second)
    hashes = [first.stdout.decode(), second.stdout.decode()]
    for h in hashes:
        assert h.endswith('\n') and h.count('\n') == 1
        h = h.strip()
        assert h.startswith(prefix), h
        assert crypt.crypt('correct horse', h) == h  # the newline is not part of it
        assert crypt.crypt('correct horse\n', h) != h
        assert crypt.crypt('wrong horse', h) != h
    assert hashes[0] != hashes[1]  # a fresh salt each time
    assert b'correct horse' not in first.stderr + first.stdout


def test_a_passwd_hash_in_a_users_file_lets_the_user_authenticate(tmp_path, certs, sink):
    users = tmp_path / 'users'
    users.mkdir()
    h = sluice('passwd', stdin=b'dave-secret\n').stdout.decode().strip()
    (users / 'example.org.txt').write_text('dave:%s\n' % h)
    relay_dir = tmp_path / 'relay'
    relay_dir.mkdir()
    relay = Relay(relay_dir, certs, users, upstream_conf(sink.port))
    try:
        c = relay.smtps(login=None)
        assert c.login('dave@example.org', 'dave-secret')[0] == 235
        assert c.sendmail('dave@example.org', ['x@example.com'], b'Subject: hi\r\n\r\nhi\r\n') \
            == {}
        c.quit()
        c = relay.smtps(login=None)
        with pytest.raises(Exception) as refused:
            c.login('dave@example.org', 'dave-secret\n')
        assert getattr(refused.value, 'smtp_code', None) == 535
        c.close()
    finally:
        assert relay.stop() == 0
    assert 'AddressSanitizer' not in relay.err.read_text(errors='replace')
    [auth] = relay.logs('auth.ok')
    assert auth['user'] == 'dave@example.org'
    assert len(sink.wait_messages(1)) == 1


# ---- sluice run: binding and privileges ----


def test_run_exits_71_when_its_port_is_taken(tmp_path, certs, users_dir):
    taken = socket.socket()
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        conf = write_config(tmp_path / 'sluice.lua', certs, users_dir, port=port)
        code, err = run_daemon(conf)
    finally:
        taken.close()

    assert code == 71, err
    [fail] = [line for line in err.splitlines() if '"event":"daemon.fail"' in line]
    assert '127.0.0.1' in fail and str(port) in fail
    assert 'daemon.ready' not in err


def test_a_second_daemon_on_the_same_port_exits_71(tmp_path, certs, users_dir, make_relay,
                                                   sink):
    first = make_relay(upstream_conf(sink.port))
    conf = tmp_path / 'second.lua'
    conf.write_text(first.conf.read_text())
    proc = subprocess.Popen([SLUICE, 'run', '-c', str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        proc.wait(15)  # a refused bind exits at once (after loading: seconds under ASan)
    except subprocess.TimeoutExpired:
        pass
    finally:
        code = stop(proc)
    assert code == 71


def proc_ids(pid, field):
    status = open('/proc/%d/status' % pid).read()
    return re.search(r'^%s:[ \t]*(.*)$' % field, status, re.M).group(1).split()


def test_run_started_as_root_serves_its_port_as_the_sluice_user(make_relay, sink, certs):
    # About what root does: as test_privileges.py, it fails rather than skips otherwise.
    assert os.geteuid() == 0, 'this test needs root: it checks the drop to the service user'
    import pwd
    nobody = pwd.getpwnam('sluice')  # the default `user`
    # The upstream's CA file is readable by root only, like the keys: it must be loaded
    # before the privileges go.
    relay = make_relay(
        "{ default = { { host = '127.0.0.1', port = %d, tls = 'none' } },"
        "  tls = { { host = '127.0.0.1', port = %d, tls = 'starttls', ca_file = %s } } }"
        % (sink.port, sink.port, lua_str(certs / 'dev-ca.crt')))
    assert oct(os.stat(certs).st_mode & 0o777) == '0o700'

    pid = relay.proc.pid
    assert proc_ids(pid, 'Uid') == [str(nobody.pw_uid)] * 4
    assert proc_ids(pid, 'Gid') == [str(nobody.pw_gid)] * 4
    assert proc_ids(pid, 'Groups') == []
    for task in os.listdir('/proc/%d/task' % pid):  # every thread
        assert proc_ids(int(task), 'Uid') == [str(nobody.pw_uid)] * 4
    c = relay.smtps()
    assert c.sendmail(ALICE, ['x@example.com'], b'Subject: hi\r\n\r\nhi\r\n') == {}
    c.quit()
    assert len(sink.wait_messages(1)) == 1
    assert relay.stop(signal.SIGTERM) == 0


def test_an_audit_log_turned_on_by_a_reload_is_written_in_the_service_users_directory(
        make_relay, sink):
    # As `make run` sets up run/audit/ for conf/sluice.lua: a directory of the service
    # user's, so that a reload that turns audit_log on can make the file as that user (the
    # privileged reader only opens paths start-up had).
    assert os.geteuid() == 0, 'this test needs root: it checks the drop to the service user'
    import pwd
    import shutil
    import tempfile
    user = pwd.getpwnam('sluice')
    top = tempfile.mkdtemp(prefix='sluice-audit-')
    try:
        os.chmod(top, 0o755)
        audit_dir = os.path.join(top, 'audit')
        os.mkdir(audit_dir, 0o750)
        os.chown(audit_dir, user.pw_uid, user.pw_gid)
        relay = make_relay(upstream_conf(sink.port), extra='audit_log = nil,')
        assert proc_ids(relay.proc.pid, 'Uid') == [str(user.pw_uid)] * 4
        audit_log = os.path.join(audit_dir, 'audit.log')
        relay.conf.write_text(relay.conf.read_text().replace(
            'audit_log = nil,', 'audit_log = %s,' % lua_str(audit_log)))
        hup(relay, 'reload.ok')
        relay.smtps().quit()  # an AUTH: policies/audit.lua writes auth_attempt
        relay.audit_log = pathlib.Path(audit_log)
        [record] = relay.audit('auth_attempt')
        assert (record['email'], record['success']) == (ALICE, True), record
        assert os.stat(audit_log).st_uid == user.pw_uid
    finally:
        shutil.rmtree(top, ignore_errors=True)
