"""Threads against each other (docs/security.md "Threads"): two workers relaying and
authenticating (hashes in the thread pool), counting in the shared dictionary and writing
the audit log through its writer thread, while the main thread (SIGHUP) and the control
thread (`sluice ctl reload`) reload at the same moment, changing the log level, the
connection limits and the audit log's file, and `sluice ctl` reads status and the blocked
list. Nothing may be lost or mixed, and the daemon must exit 0.

`make integration` runs this under ASan; `make integration-tsan` runs it (and every test
marked `threads`) under ThreadSanitizer, where a data race stops the daemon at once
(halt_on_error, exit 66) and so fails the test. Every loop is bounded in count."""
import json
import os
import pathlib
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import (ALICE, SHIPPED_POLICIES, SLUICE, Relay, assert_no_sanitizer_report,
                      b64, upstream_conf)

pytestmark = pytest.mark.threads

SENDERS = 3              # threads, each its own connections from 127.0.0.1
MESSAGES = 8             # per sender, each on a new connection with its own AUTH
# Each fails logins as its own user until its address is blocked (a user of its own: 10
# failures of one user in a minute would slow every AUTH for it down).
ATTACKERS = {'127.0.0.2': 'bob@example.org', '127.0.0.3': 'carol@example.net'}
ATTEMPTS = 7             # per attacker: the shipped ratelimit blocks after 5 failures
RELOADS = 4              # rounds of SIGHUP and `ctl reload` at once


@pytest.fixture
def world(certs, users_dir):
    """Files the daemon reads again after dropping privileges: a world-readable copy."""
    d = pathlib.Path(tempfile.mkdtemp(prefix='sluice-threads-'))
    os.chmod(d, 0o755)
    for sub, src in (('certs', certs), ('users', users_dir)):
        shutil.copytree(src, d / sub)
        os.chmod(d / sub, 0o755)
        for f in (d / sub).iterdir():
            os.chmod(f, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def busy(world, sink):
    """Two workers, a control socket, no password cache (every AUTH goes to the pool)."""
    tmp = world / 'relay'
    tmp.mkdir()
    os.chmod(tmp, 0o755)
    sock = tmp / 'sluice.ctl'
    r = Relay(tmp, world / 'certs', world / 'users', upstream_conf(sink.port), workers=2,
              policies=SHIPPED_POLICIES, limits='max_connections = 1000,',
              extra="control_socket = '%s', auth_cache_ttl = 0," % sock)
    os.chmod(r.conf, 0o644)
    r.sock = sock
    yield r
    rc = r.stop()
    err = r.err.read_text(errors='replace')
    assert_no_sanitizer_report(err)
    assert rc == 0, err[-3000:]


def ctl(relay, *args):
    p = subprocess.run([SLUICE, 'ctl', '-s', str(relay.sock), '--json'] + list(args),
                       capture_output=True, text=True, timeout=60)
    reply = json.loads(p.stdout)
    assert p.returncode == (0 if reply['ok'] else 1), p
    return reply


def send(relay, tag, results, errors):
    """MESSAGES messages, each on a connection of its own with its own AUTH."""
    try:
        for i in range(MESSAGES):
            c = relay.smtps()
            c.sendmail(ALICE, ['to@example.com'], b'Subject: %s-%d\r\n\r\nbody\r\n' % (
                tag.encode(), i))
            c.quit()
            results.append('%s-%d' % (tag, i))
    except Exception as e:  # every message must go through
        errors.append('%s: %r' % (tag, e))


def attack(relay, source, user, codes, errors):
    """ATTEMPTS wrong passwords from source, one connection each: the reply to AUTH, or
    the greeting's code when the connection is refused (421 once blocked)."""
    try:
        for _ in range(ATTEMPTS):
            try:
                c = smtplib.SMTP_SSL(relay.host, relay.smtps_port, timeout=30,
                                     context=relay.tls_context(),
                                     source_address=(source, 0))
            except smtplib.SMTPConnectError as e:
                codes.append(e.smtp_code)
                continue
            c.ehlo('attacker.test')
            codes.append(c.docmd('AUTH', 'PLAIN ' + b64('\0%s\0wrong' % user))[0])
            c.close()
    except Exception as e:
        errors.append('%s: %r' % (source, e))


def reconfigure(relay, round_):
    """Change what a reload publishes to running threads: the log level, the connection
    limits; and rotate the audit log as logrotate does (rename, then a new file)."""
    text = relay.conf.read_text()
    level = ("log_level = 'debug'", "log_level = 'info'")
    text = text.replace(level[round_ % 2], level[(round_ + 1) % 2])
    text = text.replace('max_connections = %d,' % (1000 + round_),
                        'max_connections = %d,' % (1000 + round_ + 1))
    relay.conf.write_text(text)
    owner = os.stat(relay.audit_log)
    os.rename(relay.audit_log, relay.audit_log.with_suffix('.%d' % round_))
    relay.audit_log.write_text('')
    os.chown(relay.audit_log, owner.st_uid, owner.st_gid)


def audit_records(relay):
    out = []
    for p in sorted(relay.dir.glob('audit.*')):
        out += [json.loads(l) for l in p.read_text().splitlines() if l.strip()]
    return out


def wait_audit(relay, kind, n, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in audit_records(relay) if r['event_type'] == kind]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_nothing_shared_is_lost_or_torn_while_two_reloads_race_the_workers(busy, sink):
    r = busy
    results, codes, errors = [], {a: [] for a in ATTACKERS}, []
    threads = [threading.Thread(target=send, args=(r, 's%d' % i, results, errors))
               for i in range(SENDERS)]
    threads += [threading.Thread(target=attack, args=(r, a, u, codes[a], errors))
                for a, u in ATTACKERS.items()]
    for t in threads:
        t.start()
    statuses = []
    for round_ in range(RELOADS):
        reconfigure(r, round_)
        # Two reloads at once: SIGHUP on the main thread, `ctl reload` on the control one.
        r.proc.send_signal(signal.SIGHUP)
        assert ctl(r, 'reload')['ok'] is True
        statuses.append(ctl(r, 'status'))
        ctl(r, 'ratelimit', 'list', 'auth_fail:')
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    # every message relayed exactly once, the audit trail complete across its files
    subjects = sorted(m.split(b'Subject: ')[1].split(b'\r\n')[0].decode()
                      for m in sink.wait_messages(SENDERS * MESSAGES))
    assert subjects == sorted(results) and len(results) == SENDERS * MESSAGES
    relayed = wait_audit(r, 'message_relayed', SENDERS * MESSAGES)
    assert sorted(x['message_id'] for x in relayed) == sorted(set(x['message_id'] for x in relayed))
    assert len(relayed) == SENDERS * MESSAGES
    logins = [x for x in wait_audit(r, 'auth_attempt', SENDERS * MESSAGES) if x['success']]
    assert len(logins) == SENDERS * MESSAGES

    # each attacker blocked after exactly 5 failures, whichever worker counted them
    for source, got in codes.items():
        assert got[:5] == [535] * 5 and all(c in (421, 454) for c in got[5:]), (source, got)
        assert len(got) == ATTEMPTS
    blocked = ctl(r, 'ratelimit', 'list', 'auth_fail:ip:')['blocked']
    assert sorted(b['name'] for b in blocked) == ['auth_fail:ip:' + a for a in sorted(ATTACKERS)]

    # 2 reloads a round, all succeeded; counters summed over the workers add up
    r.wait_logs('reload.ok', 2 * RELOADS)
    assert len(r.logs('reload.ok')) == 2 * RELOADS and r.logs('reload.fail') == []
    final = ctl(r, 'status')
    assert final['generation'] == 1 + 2 * RELOADS
    assert final['messages_relayed'] == SENDERS * MESSAGES
    assert final['auth_ok'] == SENDERS * MESSAGES
    assert [s['generation'] for s in statuses] == sorted(s['generation'] for s in statuses)
