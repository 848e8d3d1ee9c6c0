"""systemd integration (docs/deployment.md): the notification protocol a Type=notify unit
relies on, heard on a real Unix datagram socket named by NOTIFY_SOCKET (READY=1 once the
listeners accept, RELOADING=1 with MONOTONIC_USEC then READY=1 around a HUP reload,
STOPPING=1 on TERM before the drain).

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

from conftest import (ALICE, SLUICE, RawClient, client_bytes, hup, upstream_conf,
                      wait_read_by_peer, wait_until)

# The reload notifications come from the main thread while workers serve.
pytestmark = pytest.mark.threads

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

