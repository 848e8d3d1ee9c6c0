"""systemd integration (docs/deployment.md): the notification protocol a Type=notify unit
relies on, heard on a real Unix datagram socket named by NOTIFY_SOCKET (READY=1 once the
listeners accept, RELOADING=1 with MONOTONIC_USEC then READY=1 around a HUP reload,
STOPPING=1 on TERM before the drain), the shipped unit checked by `systemd-analyze
verify`, and `make install DESTDIR=` putting every file where the docs say.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_systemd.py
"""
import json
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import (ALICE, ROOT, SLUICE, RawClient, client_bytes, hup, upstream_conf,
                      wait_read_by_peer, wait_until)

BODY = b'Subject: stop\r\n\r\nsent while systemd was told STOPPING=1\r\n'


class Notify:
    """A datagram socket like systemd's /run/systemd/notify; every datagram it gets goes
    into a queue, with what on_ready() (called in the receiving thread, before the next
    datagram is read) returned for a READY=1."""

    def __init__(self, address, on_ready=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.on_ready = on_ready
        self.got = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except OSError:
                return
            seen = self.on_ready() if self.on_ready and 'READY=1' in data.split('\n') else None
            self.got.put((data, seen))

    def next(self, timeout=10):
        return self.got.get(timeout=timeout)

    def none_pending(self):
        return self.got.empty()

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def fields(datagram):
    return dict(line.split('=', 1) for line in datagram.split('\n'))


@pytest.fixture
def notify_dir():
    """A directory the daemon reaches after dropping to the service user."""
    d = tempfile.mkdtemp(prefix='sluice-notify-')
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def path_socket(notify_dir, monkeypatch, on_ready=None):
    path = os.path.join(notify_dir, 'notify')
    n = Notify(path, on_ready)
    os.chmod(path, 0o666)  # systemd's is writable by every service user too
    monkeypatch.setenv('NOTIFY_SOCKET', path)
    return n


def test_ready_comes_once_the_listeners_accept_connections(make_relay, sink, tmp_path,
                                                           monkeypatch):
    err = tmp_path / 'relay0' / 'sluice.err'  # where make_relay's first daemon logs

    def greeting():
        # in the receiving thread, at once: a new connection is served now
        port = [json.loads(line)['port'] for line in err.read_text().splitlines()
                if '"listener.ready"' in line and '"submission"' in line][0]
        c = RawClient('127.0.0.1', port, timeout=5)
        c.close()
        return c.greeting
    name = '@sluice-test-notify-%d' % os.getpid()  # an abstract name: no file
    notify = Notify('\0' + name[1:], greeting)
    monkeypatch.setenv('NOTIFY_SOCKET', name)
    relay = make_relay(upstream_conf(sink.port))

    data, seen = notify.next()
    assert fields(data) == {'READY': '1', 'STATUS': 'serving, generation 1'}
    assert seen is not None and seen.code == 220, seen
    assert [e['event'] for e in relay.logs()].count('daemon.ready') == 1
    assert notify.none_pending()  # one READY=1 only
    notify.close()


def test_a_daemon_that_cannot_start_never_says_ready(tmp_path, notify_dir, monkeypatch):
    notify = path_socket(notify_dir, monkeypatch)
    conf = tmp_path / 'broken.lua'
    conf.write_text('return { listeners = 42 }\n')
    proc = subprocess.run([SLUICE, 'run', '-c', str(conf)], capture_output=True, timeout=30)
    assert proc.returncode != 0
    assert b'config.fail' in proc.stderr
    assert notify.none_pending()
    notify.close()


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# The reload and drain notifications come from the main thread while workers serve:
# `make integration-tsan` runs these two.
@pytest.mark.threads
def test_a_hup_reload_is_framed_by_reloading_and_ready(make_relay, sink, notify_dir,
                                                       monkeypatch):
    notify = path_socket(notify_dir, monkeypatch)
    relay = make_relay(upstream_conf(sink.port))
    assert fields(notify.next()[0])['READY'] == '1'

    before = monotonic_usec()
    hup(relay, 'reload.ok')
    after = monotonic_usec()
    reloading, ready = fields(notify.next()[0]), fields(notify.next()[0])
    assert list(reloading) == ['RELOADING', 'MONOTONIC_USEC']
    assert reloading['RELOADING'] == '1'
    assert before <= int(reloading['MONOTONIC_USEC']) <= after
    assert ready == {'READY': '1', 'STATUS': 'serving, generation 2'}

    # a failed reload keeps generation 2 serving, and says so
    good = relay.conf.read_text()
    relay.conf.write_text('return {')
    hup(relay, 'reload.fail')
    relay.conf.write_text(good)
    assert fields(notify.next()[0])['RELOADING'] == '1'
    assert fields(notify.next()[0]) == {
        'READY': '1', 'STATUS': 'serving, generation 2 (last reload failed)'}
    assert relay.logs('notify.fail') == []
    notify.close()


@pytest.mark.threads
def test_stopping_is_sent_on_term_before_the_drain_lets_a_message_finish(
        make_relay, sink, notify_dir, monkeypatch):
    notify = path_socket(notify_dir, monkeypatch)
    relay = make_relay(upstream_conf(sink.port), timeouts='drain = 10,')
    assert fields(notify.next()[0])['READY'] == '1'
    client = relay.raw_authed()
    assert client.cmd('MAIL FROM:<%s>' % ALICE).code == 250
    assert client.cmd('RCPT TO:<x@example.com>').code == 250
    assert client.cmd('DATA').code == 354
    client.send(BODY[:10])
    wait_read_by_peer(client.sock)

    relay.proc.terminate()
    assert notify.next()[0] == 'STOPPING=1'
    assert relay.proc.poll() is None  # the drain waits for the message in flight
    wait_until(lambda: relay.logs('daemon.drain'), 'daemon.drain')
    client.send(BODY[10:] + b'.\r\n')
    assert client.reply().code == 250
    assert relay.proc.wait(10) == 0
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert notify.none_pending()
    client.close()
    notify.close()


def make_install(**variables):
    """`make install` with these variables (the binary of build/, which `make
    integration` builds); the tree it made."""
    args = ['make', '-s', '-C', str(ROOT), 'install'] + [
        '%s=%s' % kv for kv in variables.items()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_make_install_puts_every_file_under_destdir_where_the_docs_say(tmp_path):
    make_install(DESTDIR=tmp_path)  # PREFIX=/usr/local
    root = tmp_path / 'usr' / 'local'
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*') if p.is_file())
    lua = sorted('usr/local/share/sluice/lua/sluice/' + p.name
                 for p in (ROOT / 'lua' / 'sluice').glob('*.lua'))
    policies = sorted('usr/local/share/sluice/policies/' + str(p.relative_to(
        ROOT / 'policies')) for p in (ROOT / 'policies').rglob('*.lua'))
    assert files == sorted([
        'usr/local/etc/logrotate.d/sluice',
        'usr/local/etc/sluice/sluice.lua.example',
        'usr/local/lib/systemd/system/sluice.service',
        'usr/local/sbin/sluice',
        'usr/local/share/man/man5/sluice.lua.5',
        'usr/local/share/man/man8/sluice.8',
    ] + lua + policies)
    assert os.access(root / 'sbin' / 'sluice', os.X_OK)
    version = subprocess.run([str(root / 'sbin' / 'sluice'), '--version'],
                             capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith('sluice ')

    unit = (root / 'lib' / 'systemd' / 'system' / 'sluice.service').read_text()
    assert 'ExecStartPre=/usr/local/sbin/sluice check -c /usr/local/etc/sluice/sluice.lua\n' in unit
    assert 'ExecStart=/usr/local/sbin/sluice run -c /usr/local/etc/sluice/sluice.lua\n' in unit
    # the example names the installed Lua library and policies, which are there
    example = (root / 'etc' / 'sluice' / 'sluice.lua.example').read_text()
    assert "lua_dir = '/usr/local/share/sluice/lua'" in example
    named = [line.strip().strip("',") for line in example.splitlines()
             if '/share/sluice/policies/' in line]
    assert len(named) == 4
    for path in named:
        assert (tmp_path / path.lstrip('/')).is_file(), path


def test_the_installed_example_passes_sluice_check_on_the_installed_library(
        tmp_path, certs, users_dir):
    # only what is site-specific is replaced: certificates, users, the upstream, and the
    # root for /run and /var/log; the Lua library and the policies are the installed ones
    make_install(DESTDIR=tmp_path / 'dest')
    share = tmp_path / 'dest' / 'usr' / 'local' / 'share' / 'sluice'
    conf = (tmp_path / 'dest' / 'usr' / 'local' / 'etc' / 'sluice' /
            'sluice.lua.example').read_text()
    for old, new in (('/usr/local/share/sluice', str(share)),
                     ('/usr/local/etc/sluice/users', str(users_dir)),
                     ('/usr/local/etc/sluice/tls/ecdsa-fullchain.pem',
                      str(certs / 'dev-ecdsa.crt')),
                     ('/usr/local/etc/sluice/tls/ecdsa-privkey.pem', str(certs / 'dev-ecdsa.key')),
                     ('/usr/local/etc/sluice/tls/fullchain.pem', str(certs / 'dev-rsa.crt')),
                     ('/usr/local/etc/sluice/tls/privkey.pem', str(certs / 'dev-rsa.key')),
                     ("'smtp.internal.example.org'", "'127.0.0.1'"),
                     ('/run/sluice/', str(tmp_path) + '/'),
                     ('/var/log/sluice/', str(tmp_path) + '/')):
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / 'sluice.lua').write_text(conf)
    done = subprocess.run([SLUICE, 'check', '-c', str(tmp_path / 'sluice.lua')],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    (share / 'lua' / 'sluice' / 'init.lua').unlink()  # the library really is the one read
    done = subprocess.run([SLUICE, 'check', '-c', str(tmp_path / 'sluice.lua')],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78 and 'lua_dir' in done.stdout + done.stderr


def test_with_prefix_usr_the_configuration_goes_to_etc(tmp_path):
    make_install(DESTDIR=tmp_path, PREFIX='/usr')
    unit = (tmp_path / 'usr' / 'lib' / 'systemd' / 'system' / 'sluice.service').read_text()
    assert 'ExecStart=/usr/sbin/sluice run -c /etc/sluice/sluice.lua\n' in unit
    assert (tmp_path / 'etc' / 'sluice' / 'sluice.lua.example').is_file()
    assert (tmp_path / 'etc' / 'logrotate.d' / 'sluice').is_file()


def test_systemd_analyze_verifies_the_installed_unit_without_a_warning(tmp_path):
    # installed for real under tmp_path: verify checks that ExecStart= is executable and
    # that the Documentation= man pages exist (MANPATH)
    make_install(PREFIX=tmp_path)
    unit = tmp_path / 'lib' / 'systemd' / 'system' / 'sluice.service'
    done = subprocess.run(['systemd-analyze', 'verify', str(unit)], capture_output=True,
                          text=True, env=dict(os.environ, MANPATH=str(tmp_path / 'share' / 'man')))
    assert (done.returncode, done.stdout, done.stderr) == (0, '', '')
    unit.write_text(unit.read_text().replace('NoNewPrivileges=', 'NoNewPrivilege='))
    done = subprocess.run(['systemd-analyze', 'verify', str(unit)], capture_output=True,
                          text=True, env=dict(os.environ, MANPATH=str(tmp_path / 'share' / 'man')))
    assert "Unknown key 'NoNewPrivilege'" in done.stderr  # the check above can fail


@pytest.mark.parametrize('page', ['sluice.8', 'sluice.lua.5'])
def test_the_man_page_formats_without_a_groff_warning(page):
    done = subprocess.run(['groff', '-man', '-ww', '-z', '-Tutf8',
                           str(ROOT / 'dist' / 'man' / page)], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, '')
    broken = ROOT / 'dist' / 'man' / page
    done = subprocess.run(['groff', '-man', '-ww', '-z', '-Tutf8'], capture_output=True,
                          text=True, input=broken.read_text() + '.BOGUS\n\\fQ\n')
    assert done.stderr != ''  # the check above can fail
