"""`sluice ctl` against a running daemon (docs/ctl.md): the real binary over the real
control socket. status (generation, open sessions), the rate-limit commands on a client
address blocked by policies/ratelimit.lua after failed logins (show, list, reset, and the
next connection greeted again), reload (ok, and a broken policy naming file:line with the
generation unchanged), exit codes (69 without a daemon, 64 on usage, 78 with no socket
configured) and the socket's owner-only mode.

The daemon reloads after it has dropped privileges (to `sluice` when the tests run as
root), so its files live in a world-readable directory of its own, as in test_reload.py."""
import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import (ALICE, PASSWORDS, SHIPPED_POLICIES, SLUICE, Relay,
                      assert_no_sanitizer_report, b64, upstream_conf)

# The control thread against the workers: `make integration-tsan`.
pytestmark = pytest.mark.threads

SITE = """-- a site policy that does nothing: only here to be broken and reloaded
return { on_connect = function(session) return nil end }
"""
CLIENT = 'auth_fail:ip:127.0.0.1'
PAIR = 'auth_fail:user_ip:%s|127.0.0.1' % ALICE


@pytest.fixture
def world(certs, users_dir):
    d = pathlib.Path(tempfile.mkdtemp(prefix='sluice-ctl-'))
    os.chmod(d, 0o755)
    for sub, src in (('certs', certs), ('users', users_dir)):
        shutil.copytree(src, d / sub)
        os.chmod(d / sub, 0o755)
        for f in (d / sub).iterdir():
            os.chmod(f, 0o644)
    site = d / 'site.lua'
    site.write_text(SITE)
    os.chmod(site, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def ctl_relay(world, sink):
    """A relay with the shipped policies (ratelimit.lua first) plus site.lua, and a
    control socket at relay0/sluice.ctl."""
    relays = []

    def factory(extra='', **kw):
        tmp = world / ('relay%d' % len(relays))
        tmp.mkdir()
        os.chmod(tmp, 0o755)
        sock = tmp / 'sluice.ctl'
        kw.setdefault('policies', SHIPPED_POLICIES + [str(world / 'site.lua')])
        r = Relay(tmp, world / 'certs', world / 'users', upstream_conf(sink.port),
                  extra="control_socket = '%s',%s" % (sock, extra), **kw)
        os.chmod(r.conf, 0o644)
        r.sock = sock
        r.site = world / 'site.lua'
        relays.append(r)
        return r
    yield factory
    for r in relays:
        rc = r.stop()
        err = r.err.read_text(errors='replace')
        assert_no_sanitizer_report(err)
        assert rc == 0, err[-3000:]


def ctl(relay, *args, via_config=False, **kw):
    """Run `sluice ctl` with -s SOCKET (or -c CONFIG); the CompletedProcess."""
    where = ['-c', str(relay.conf)] if via_config else ['-s', str(relay.sock)]
    return subprocess.run([SLUICE, 'ctl'] + where + list(args), capture_output=True,
                          text=True, timeout=60, **kw)


def ctl_json(relay, *args):
    p = ctl(relay, '--json', *args)
    assert p.stdout.endswith('\n') and p.stdout.count('\n') == 1, p
    reply = json.loads(p.stdout)
    assert p.returncode == (0 if reply['ok'] else 1), p
    return reply


def status(relay):
    reply = ctl_json(relay, 'status')
    assert reply['ok'] is True
    return reply


def wait_sessions(relay, n, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(relay)
        if st['sessions'] == n:
            return st
        time.sleep(0.05)
    return status(relay)


def fail_login(relay, user=ALICE):
    """One refused AUTH PLAIN (535) on a connection of its own."""
    with relay.raw() as c:
        c.cmd(b'EHLO client.test')
        reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0wrong-password' % user))
        assert reply.code == 535, reply


def greeting(relay):
    """The first reply a new cleartext connection gets."""
    with relay.raw(tls=False) as c:
        return c.greeting


def test_status_gives_generation_1_and_counts_a_connected_client(ctl_relay):
    r = ctl_relay()
    st = wait_sessions(r, 0)
    assert (st['generation'], st['sessions'], st['workers']) == (1, 0, 1)
    assert st['reloads_ok'] == 0 and st['last_reload_error'] is None
    assert st['pid'] == r.proc.pid
    assert st['zones']['default']['capacity'] > 0 and st['zones']['denylist']['evict'] is False
    assert 'audit' in st  # the relay writes an audit log
    c = r.raw_authed()
    st = wait_sessions(r, 1)
    assert st['sessions'] == 1
    assert st['sessions_total'] >= 1 and st['auth_ok'] >= 1
    c.close()
    assert wait_sessions(r, 0)['sessions'] == 0
    # The readable form, found through the configuration file this time.
    p = ctl(r, 'status', via_config=True)
    assert p.returncode == 0, p
    lines = p.stdout.splitlines()
    assert 'generation: 1' in lines and 'sessions: 0' in lines
    assert any(l.startswith('started: 20') and l.endswith('Z') for l in lines), lines
    assert any(l.startswith('zones.limits.entries: ') for l in lines), lines
    logs = r.wait_logs('control.command', 3)
    assert logs[-1]['command'] == 'status' and logs[-1]['ok'] is True
    assert logs[-1]['uid'] == os.geteuid()


def test_ratelimit_show_list_and_reset_unblock_a_blocked_address(ctl_relay):
    r = ctl_relay()
    assert greeting(r).code == 220
    for _ in range(5):
        fail_login(r)
    assert greeting(r) == (421, b'4.7.0 Too many failed logins from your address, try later')

    show = ctl_json(r, 'ratelimit', 'show', CLIENT)
    assert show['name'] == CLIENT
    assert 280 < show['blocked'] <= 300
    keys = {k['key']: k for k in show['keys']}
    assert CLIENT + ':block' in keys
    counters = [k for k in keys if k.startswith(CLIENT + ':60:')]
    assert len(counters) >= 1 and sum(keys[k]['value'] for k in counters) >= 5
    assert all(0 < k['ttl'] <= 7200 for k in show['keys'])
    p = ctl(r, 'ratelimit', 'show', CLIENT)
    assert p.returncode == 0
    assert p.stdout.startswith('%s: blocked, ' % CLIENT), p.stdout
    assert '  %s:block = ' % CLIENT in p.stdout

    listed = ctl_json(r, 'ratelimit', 'list', 'auth_fail:ip:')
    assert [b['name'] for b in listed['blocked']] == [CLIENT]
    everything = ctl_json(r, 'ratelimit', 'list')
    assert {b['name'] for b in everything['blocked']} == {CLIENT, PAIR}
    p = ctl(r, 'ratelimit', 'list', 'auth_fail:')
    assert sorted(l.split(': blocked')[0] for l in p.stdout.splitlines()) == sorted(
        [CLIENT, PAIR]), p.stdout

    reset = ctl_json(r, 'ratelimit', 'reset', CLIENT)
    assert reset['removed'] == len(show['keys'])
    assert greeting(r).code == 220
    after = ctl_json(r, 'ratelimit', 'show', CLIENT)
    assert after['blocked'] is False and after['keys'] == []
    # The (user, address) pair is a name of its own: still blocked at AUTH until reset.
    with r.raw() as c:
        c.cmd(b'EHLO client.test')
        reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE])))
        assert reply == (454, b'4.7.0 Too many failed logins, try again later')
    p = ctl(r, 'ratelimit', 'reset', PAIR)
    assert p.returncode == 0 and p.stdout.startswith('%s: removed ' % PAIR), p
    r.raw_authed().close()
    assert ctl_json(r, 'ratelimit', 'list', 'auth_fail:')['blocked'] == []
    resets = [l for l in r.logs('control.command') if l['command'] == 'ratelimit reset']
    assert [l['name'] for l in resets] == [CLIENT, PAIR]
    assert all(l['level'] == 'notice' and l['ok'] for l in resets)


def test_a_reset_leaves_other_names_alone(ctl_relay):
    r = ctl_relay()
    for _ in range(5):
        fail_login(r, 'bob@example.org')

    def values(name):
        return {k['key']: k['value'] for k in ctl_json(r, 'ratelimit', 'show', name)['keys']}
    names = ['auth_fail:user:bob@example.org', 'auth_fail:domain:example.org',
             'auth_fail:user_ip:bob@example.org|127.0.0.1']
    before = [values(n) for n in names]
    assert all(before)
    assert ctl_json(r, 'ratelimit', 'reset', CLIENT)['removed'] > 0
    assert [values(n) for n in names] == before
    assert values(CLIENT) == {}


def test_a_site_ratelimit_module_without_ctl_show_gets_a_clear_error(ctl_relay, world):
    """ctl calls the running generation's lua/sluice/ratelimit.lua: a site copy without
    ctl_show is named in the error (not answered from a key layout it may not use), and
    a reload that brings it back is used at the next request."""
    lua = world / 'lua'
    shutil.copytree(pathlib.Path(__file__).resolve().parents[2] / 'lua', lua)
    module = lua / 'sluice' / 'ratelimit.lua'
    shipped = module.read_text()
    module.write_text(shipped.replace('function ratelimit.ctl_show(',
                                      'local function ctl_show_gone('))
    for d, _, files in os.walk(lua):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    r = ctl_relay(extra=" lua_dir = '%s'," % lua)
    fail_login(r)
    reply = ctl_json(r, 'ratelimit', 'show', CLIENT)
    assert reply == {'ok': False,
                     'error': 'ratelimit: module sluice.ratelimit has no ctl_show'}
    p = ctl(r, 'ratelimit', 'show', CLIENT)
    assert p.returncode == 1 and 'has no ctl_show' in p.stderr, p
    assert ctl_json(r, 'ratelimit', 'list')['ok'] is True
    module.write_text(shipped)
    assert ctl_json(r, 'reload')['ok'] is True
    reply = ctl_json(r, 'ratelimit', 'show', CLIENT)
    assert reply['ok'] is True and reply['keys'], reply


def test_reload_gives_generation_2_and_a_broken_policy_changes_nothing(ctl_relay):
    r = ctl_relay()
    p = ctl(r, 'reload')
    assert p.returncode == 0, p
    assert p.stdout == 'reload: generation 2\n'
    assert r.wait_logs('reload.ok')
    assert status(r)['generation'] == 2

    text = SITE + 'this is not lua\n'
    r.site.write_text(text)
    where = 'site.lua:%d' % len(text.splitlines())
    p = ctl(r, 'reload')
    assert p.returncode == 1, p
    assert p.stdout == ''
    assert p.stderr.startswith('sluice ctl: ') and where in p.stderr, p.stderr
    assert p.stderr.endswith('\nsluice ctl: reload failed; generation 2 stays in force\n')
    reply = ctl_json(r, 'reload')
    assert reply['ok'] is False and where in reply['error'] and reply['generation'] == 2
    st = status(r)
    assert st['generation'] == 2
    assert st['reloads_ok'] == 1 and st['reloads_failed'] == 2
    assert where in st['last_reload_error']
    r.raw_authed().close()  # still serving, on generation 2

    r.site.write_text(SITE)
    assert ctl_json(r, 'reload') == {'ok': True, 'message': 'generation 3', 'generation': 3}


def test_ctl_without_a_daemon_exits_69_and_names_the_socket(tmp_path):
    missing = tmp_path / 'none.ctl'
    p = subprocess.run([SLUICE, 'ctl', '-s', str(missing), 'status'], capture_output=True,
                       text=True)
    assert p.returncode == 69, p
    assert p.stderr == 'sluice ctl: cannot connect to %s: No such file or directory ' \
                       '(is sluice running?)\n' % missing
    # a socket file nobody listens on: refused, also 69
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / 'dead.ctl'))
    s.close()
    p = subprocess.run([SLUICE, 'ctl', '-s', str(tmp_path / 'dead.ctl'), 'status'],
                       capture_output=True, text=True)
    assert p.returncode == 69 and 'Connection refused' in p.stderr, p


def test_the_socket_is_owner_only(ctl_relay, world):
    r = ctl_relay()
    st = os.lstat(r.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    if os.geteuid() != 0:
        return
    # Someone else is kept out by the file mode (and would be by SO_PEERCRED after it).
    # They run a copy of sluice from the world-readable test directory: the build tree
    # may be under root's 0700 home (CI's fresh root), where nobody cannot exec it.
    # So is a TSan build's suppressions file: nobody reads a copy of it too.
    other = pathlib.Path(world) / 'sluice-copy'
    shutil.copy(SLUICE, other)
    os.chmod(other, 0o755)
    env = dict(os.environ)
    supp = re.search(r'suppressions=([^: ]+)', env.get('TSAN_OPTIONS', ''))
    if supp:
        shutil.copy(supp.group(1), pathlib.Path(world) / 'tsan.supp')
        os.chmod(pathlib.Path(world) / 'tsan.supp', 0o644)
        env['TSAN_OPTIONS'] = env['TSAN_OPTIONS'].replace(
            supp.group(0), 'suppressions=%s' % (pathlib.Path(world) / 'tsan.supp'))
    p = subprocess.run([str(other), 'ctl', '-s', str(r.sock), 'status'], capture_output=True,
                       text=True, timeout=60, env=env,
                       preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    assert p.returncode == 69, p
    assert 'Permission denied' in p.stderr


def test_usage_errors_exit_64_and_a_config_without_socket_78(ctl_relay, tmp_path):
    r = ctl_relay()
    for args in ([], ['stat'], ['status', 'now'], ['ratelimit'], ['ratelimit', 'show'],
                 ['ratelimit', 'show', ''], ['ratelimit', 'reset', 'a\nb'],
                 ['ratelimit', 'list', 'a', 'b'], ['reload', 'x']):
        p = ctl(r, *args)
        assert p.returncode == 64, (args, p)
        assert p.stderr.startswith('usage: sluice ctl'), p.stderr
    p = subprocess.run([SLUICE, 'ctl', '-c', str(r.conf), '-s', str(r.sock), 'status'],
                       capture_output=True, text=True)
    assert p.returncode == 64
    no_socket = tmp_path / 'plain.lua'
    no_socket.write_text(r.conf.read_text().replace("control_socket = '%s'," % r.sock, ''))
    p = subprocess.run([SLUICE, 'ctl', '-c', str(no_socket), 'status'], capture_output=True,
                       text=True)
    assert p.returncode == 78, p
    assert 'sets no control_socket' in p.stderr
