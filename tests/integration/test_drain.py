"""Draining on SIGTERM, as docs/smtp.md describes it: stop accepting, 421 4.3.2 to idle
sessions, let transactions in flight finish (the upstream's answer included), then
421 to those sessions too, and exit 0; after timeouts.drain whatever is left is cut
off, and a message whose upstream answer had not arrived was never acknowledged. A
session whose on_disconnect still waits is a session: the drain waits for it, and the
drain timeout cancels it.

Real clients over TLS, a real `sluice run` and a real `sluice sink` (--delay-ms holds
the upstream's answer to the end of data). Each test checks what the clients got,
what the sink stored, the relay's log and its exit.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_drain.py
"""
import os
import pathlib
import shutil
import signal
import socket
import tempfile
import time

import pytest

from conftest import (ALICE, SHIPPED_POLICIES, client_bytes, lua_str, upstream_conf,
                      wait_read_by_peer, wait_until)

# The main thread drains the workers while they serve: `make integration-tsan`.
pytestmark = pytest.mark.threads

BODY = b'Subject: drain\r\n\r\nsent while the relay was asked to stop\r\n'


def start_message(relay):
    """An authenticated session that has sent a whole message (BDAT LAST) and waits for
    the reply to it."""
    client = relay.raw_authed()
    assert client.cmd('MAIL FROM:<%s>' % ALICE).code == 250
    assert client.cmd('RCPT TO:<x@example.com>').code == 250
    client.send(b'BDAT %d LAST\r\n' % len(BODY) + BODY)
    return client


def upstream_has_message(sink):
    """The relay has sent the whole message to the sink (which holds its answer)."""
    path = sink.transcripts / 'conn-1.in'
    return wait_for(lambda: path.exists() and path.read_bytes().endswith(BODY))


def idle_session(relay):
    client = relay.raw_authed()
    assert client.cmd('NOOP').code == 250
    return client


def wait_for(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def is_refused(relay):
    try:
        socket.create_connection((relay.host, relay.smtps_port), timeout=2).close()
    except (ConnectionRefusedError, ConnectionResetError):  # reset: closed in the backlog
        return True
    return False


def terminate(relay):
    """SIGTERM by PID; the moment it was sent."""
    os.kill(relay.proc.pid, signal.SIGTERM)
    return time.monotonic()


def exit_within(relay, seconds):
    relay.proc.wait(seconds)
    return relay.proc.returncode


def events(relay):
    return [e['event'] for e in relay.logs()]


def test_sigterm_lets_the_message_in_flight_finish_and_tells_idle_sessions_421(
        make_relay, make_sink):
    sink = make_sink('--delay-ms', '1500')
    relay = make_relay(upstream_conf(sink.port), timeouts='drain = 10,')
    idle = idle_session(relay)
    busy = start_message(relay)
    assert upstream_has_message(sink)  # the relay waits for the upstream's answer
    sent = terminate(relay)

    assert idle.reply() == (421, b'4.3.2 Service shutting down')
    assert idle.at_eof()
    reply = busy.reply()
    assert reply.code == 250, reply
    assert reply.text.startswith(b'2.0.0 Ok: queued as '), reply
    assert busy.reply() == (421, b'4.3.2 Service shutting down')
    assert busy.at_eof()
    assert exit_within(relay, 5) == 0
    assert time.monotonic() - sent < 5

    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    [done] = relay.logs('relay.done')
    assert done['code'] == 250
    log = events(relay)
    assert log.index('daemon.drain') < log.index('relay.done') < log.index('daemon.stop')
    assert relay.logs('daemon.stop')[-1]['msg'] == 'exit 0'
    assert 'worker.drain_timeout' not in log
    idle.close()
    busy.close()


def test_a_message_still_being_uploaded_at_sigterm_is_finished_and_relayed(
        make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), timeouts='drain = 10,')
    client = relay.raw_authed()
    assert client.cmd('MAIL FROM:<%s>' % ALICE).code == 250
    assert client.cmd('RCPT TO:<x@example.com>').code == 250
    assert client.cmd('DATA').code == 354
    client.send(BODY[:10])
    wait_read_by_peer(client.sock)  # the relay has the first part
    terminate(relay)
    # draining now: the session is neither idle nor cut off
    wait_until(lambda: 'daemon.drain' in events(relay), 'daemon.drain')
    client.send(BODY[10:] + b'.\r\n')

    reply = client.reply()
    assert reply.code == 250, reply
    assert client.reply() == (421, b'4.3.2 Service shutting down')
    assert exit_within(relay, 5) == 0
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    client.close()


def test_no_new_connection_is_accepted_while_draining(make_relay, make_sink):
    sink = make_sink('--delay-ms', '1500')
    relay = make_relay(upstream_conf(sink.port), timeouts='drain = 10,')
    busy = start_message(relay)
    assert upstream_has_message(sink)
    terminate(relay)
    assert wait_for(lambda: 'daemon.drain' in events(relay))
    # the worker stops its listeners a moment after the main thread logs daemon.drain
    wait_until(lambda: is_refused(relay), 'the listener to refuse connections')
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((relay.host, relay.smtps_port), timeout=2).close()
    assert busy.reply().code == 250
    assert exit_within(relay, 5) == 0
    busy.close()


def test_sigterm_with_no_sessions_exits_0_at_once(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port))
    sent = terminate(relay)

    assert exit_within(relay, 5) == 0
    assert time.monotonic() - sent < 1.0
    log = events(relay)
    assert log.index('daemon.drain') < log.index('daemon.stop')
    assert relay.logs('daemon.stop')[-1]['msg'] == 'exit 0'


def test_sigterm_after_relaying_closes_the_pooled_upstream_connection_with_quit(
        make_relay, sink):
    relay = make_relay(upstream_conf(sink.port))
    client = relay.smtps()
    assert client.sendmail(ALICE, ['x@example.com'], BODY) == {}
    client.quit()
    terminate(relay)

    assert exit_within(relay, 5) == 0
    assert wait_for(lambda: sink.events('sink.close'))
    assert (sink.transcripts / 'conn-1.in').read_bytes().endswith(b'QUIT\r\n')
    [closed] = relay.logs('upstream.close')
    assert (closed['reason'], closed['transactions']) == ('draining', 1)


def test_the_drain_timeout_cuts_off_a_stuck_upstream_and_acknowledges_nothing(
        make_relay, make_sink):
    sink = make_sink('--delay-ms', '5000')
    relay = make_relay(upstream_conf(sink.port), timeouts='drain = 1,')
    busy = start_message(relay)
    assert upstream_has_message(sink)
    sent = terminate(relay)

    reply = busy.reply()
    assert reply.code == 421 and reply.text.startswith(b'4.3.2 '), reply  # never a 250
    assert 0.8 <= time.monotonic() - sent < 4
    assert exit_within(relay, 4) == 0
    assert relay.logs('daemon.stop')[-1]['msg'] == 'exit 0'
    log = events(relay)
    assert 'worker.drain_timeout' in log
    assert [d['code'] for d in relay.logs('relay.done')] in ([], [451])
    assert [r['status'] for r in relay.logs('upstream.relay')] in ([], ['unavailable'])
    [closed] = relay.logs('upstream.close')
    assert closed['reason'] in ('cancelled', 'shutdown')
    assert sink.events('sink.message') == []  # still waiting: nothing was accepted yet
    busy.close()


# on_disconnect that waits (docs/lua-api.md): it says test.waiting once the client has
# gone, then waits until the test creates the file `go` (polled with sluice.sleep, the
# way a limiter whose zone is in Redis waits for its answer), then says test.bye.
WAITER = """local sluice = require('sluice')
return {
  on_disconnect = function(session, reason)
    sluice.log('info', 'test.waiting', { reason = reason })
    while true do
      local f = io.open(%s)
      if f then f:close() break end
      sluice.sleep(0.02)
    end
    sluice.log('info', 'test.bye', { reason = reason })
  end,
}
"""


@pytest.fixture
def go_dir():
    """A directory the daemon's service user can look into (tmp_path is root's alone)."""
    d = tempfile.mkdtemp(prefix='sluice-go-')
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def waiting_relay(make_relay, sink, tmp_path, go_dir, timeouts):
    go = go_dir / 'go'
    policy = tmp_path / 'waiter.lua'
    policy.write_text(WAITER % lua_str(go))
    relay = make_relay(upstream_conf(sink.port), timeouts=timeouts,
                       policies=SHIPPED_POLICIES + [str(policy)])
    client = relay.raw_authed()
    assert client.cmd(b'QUIT').code == 221
    assert client.at_eof()
    relay.wait_logs('test.waiting')
    return relay, go


def test_sigterm_waits_for_an_on_disconnect_that_waits(make_relay, sink, tmp_path, go_dir):
    relay, go = waiting_relay(make_relay, sink, tmp_path, go_dir, 'drain = 10,')
    terminate(relay)
    wait_until(lambda: 'daemon.drain' in events(relay), 'daemon.drain')
    go.touch()

    assert exit_within(relay, 5) == 0
    log = events(relay)
    assert log.index('session.close') < log.index('daemon.drain') < log.index('test.bye') \
        < log.index('daemon.stop')
    assert 'worker.drain_timeout' not in log and 'policy.cancel' not in log
    assert relay.logs('policy.error') == []


def test_the_drain_timeout_cancels_an_on_disconnect_that_waits_and_exits_0(
        make_relay, sink, tmp_path, go_dir):
    relay, _ = waiting_relay(make_relay, sink, tmp_path, go_dir, 'drain = 0.5,')
    sent = terminate(relay)

    assert exit_within(relay, 5) == 0  # make_relay checks stderr for sanitizer reports
    assert time.monotonic() - sent >= 0.4
    log = events(relay)
    assert log.index('worker.drain_timeout') < log.index('policy.cancel')
    [cancel] = relay.logs('policy.cancel')
    [closed] = relay.logs('session.close')
    assert (cancel['hook'], cancel['reason'], cancel['sid']) == (
        'on_disconnect', 'drain timeout', closed['sid'])
    assert 'test.bye' not in log
