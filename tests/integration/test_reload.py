"""SIGHUP reload (docs/policies.md "Reload"): a policy, a users file, a certificate
edited on disk take effect for new sessions after `kill -HUP`; sessions in flight finish
on the generation they started with; a broken file changes nothing and is reported as
`sluice check` reports it; nothing is lost while reloads happen under load.

The daemon reads the files again after it has dropped privileges (to `sluice` when the
tests run as root), so every file here lives in a world-readable directory of its own."""
import os
import smtplib
import subprocess
import threading
import time

import pytest

from conftest import (ALICE, PASSWORDS, SHIPPED_POLICIES, SLUICE, Relay,
                      assert_no_sanitizer_report, b64, hup, peer_cert, renew_certs,
                      upstream_conf)

# Reloads run on the main thread while the workers serve: `make integration-tsan`.
pytestmark = pytest.mark.threads

POLICY = """-- a site policy whose behaviour names its generation
local sluice = require('sluice')
local GEN = '%s'
return {
  on_connect = function(session) session.data.gen = GEN end,
  on_rcpt = function(session, tx, rcpt)
    if rcpt:match('^blocked@') then
      return sluice.reject(550, '5.7.1', 'blocked by ' .. GEN)
    end
    return nil
  end,
  on_data = function(session, tx)
    tx:add_header('X-Gen', GEN .. '/' .. tostring(session.data.gen))
    return nil
  end,
}
"""


@pytest.fixture
def reloadable(world, sink):
    """A relay whose policies are the shipped ones plus site.lua (generation 'v1')."""
    import pathlib
    base = pathlib.Path(world)
    site = base / 'site.lua'
    site.write_text(POLICY % 'v1')
    os.chmod(site, 0o644)
    relays = []

    def factory(**kw):
        tmp = base / ('relay%d' % len(relays))
        tmp.mkdir()
        os.chmod(tmp, 0o755)
        kw.setdefault('policies', SHIPPED_POLICIES + [str(site)])
        r = Relay(tmp, base / 'certs', base / 'users', upstream_conf(sink.port), **kw)
        os.chmod(r.conf, 0o644)
        r.site = site
        relays.append(r)
        return r
    yield factory
    for r in relays:
        rc = r.stop()
        err = r.err.read_text(errors='replace')
        assert_no_sanitizer_report(err)
        assert rc == 0, err[-3000:]


def rcpt_reply(c, rcpt='blocked@example.com'):
    c.mail(ALICE)
    reply = c.rcpt(rcpt)
    c.rset()
    return reply


def test_policy_change_applies_to_new_sessions_and_old_ones_finish_on_theirs(reloadable,
                                                                              sink):
    r = reloadable()
    old = r.smtps()
    assert rcpt_reply(old) == (550, b'5.7.1 blocked by v1')
    r.site.write_text(POLICY % 'v2')
    line = hup(r)
    assert 'generation 2' in line['msg']
    new = r.smtps()
    assert rcpt_reply(new) == (550, b'5.7.1 blocked by v2')
    # The connection opened before the reload was not dropped and stays on v1.
    assert rcpt_reply(old) == (550, b'5.7.1 blocked by v1')
    old.sendmail(ALICE, ['x@example.com'], b'Subject: old\r\n\r\nbody\r\n')
    new.sendmail(ALICE, ['x@example.com'], b'Subject: new\r\n\r\nbody\r\n')
    old.quit()
    new.quit()
    msgs = sink.wait_messages(2)
    gens = sorted(m.split(b'X-Gen: ')[1].split(b'\r\n')[0] for m in msgs)
    assert gens == [b'v1/v1', b'v2/v2']
    # Once its last session is gone the old generation is freed.
    assert r.wait_logs('reload.retired')


def test_broken_policy_changes_nothing_and_says_what_check_says(reloadable):
    r = reloadable()
    text = POLICY % 'v2' + '\nthis is not lua\n'
    r.site.write_text(text)
    where = 'site.lua:%d' % len(text.splitlines())  # the line with the error
    line = hup(r, 'reload.fail')
    check = subprocess.run([SLUICE, 'check', '-c', str(r.conf)], capture_output=True,
                           text=True)
    assert check.returncode == 78
    assert where in line['msg'], line
    assert where in check.stderr + check.stdout
    assert 'generation 1 stays in force' in line['msg']
    c = r.smtps()
    assert rcpt_reply(c) == (550, b'5.7.1 blocked by v1')
    c.quit()
    # Fixed on disk: the next reload goes through as generation 2.
    r.site.write_text(POLICY % 'v3')
    assert 'generation 2' in hup(r)['msg']
    c = r.smtps()
    assert rcpt_reply(c) == (550, b'5.7.1 blocked by v3')
    c.quit()


def test_a_policy_that_raises_when_loaded_changes_nothing(reloadable):
    r = reloadable()
    r.site.write_text("error('refusing to load')\n")
    line = hup(r, 'reload.fail')
    assert 'site.lua:1' in line['msg'] and 'refusing to load' in line['msg']
    c = r.smtps()
    assert rcpt_reply(c) == (550, b'5.7.1 blocked by v1')
    c.quit()


def test_users_file_reload(reloadable, world):
    r = reloadable()
    h = subprocess.run([SLUICE, 'passwd', '-s', 'sha512'], input='dora-pw\n', text=True,
                       capture_output=True, check=True).stdout.strip()
    c = r.smtps(login=None)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        c.login('dora@example.org', 'dora-pw')
    c.close()
    with open(os.path.join(world, 'users', 'example.org.txt'), 'a') as f:
        f.write('dora:%s\n' % h)
    hup(r)
    c = r.smtps(login=None)
    assert c.login('dora@example.org', 'dora-pw')[0] == 235
    c.quit()


def test_a_plaintext_password_on_reload_is_refused_with_file_and_line(reloadable, world):
    r = reloadable()
    path = os.path.join(world, 'users', 'example.org.txt')
    n = len(open(path).read().splitlines())
    with open(path, 'a') as f:
        f.write('eve:plaintext\n')
    line = hup(r, 'reload.fail')
    assert 'example.org.txt:%d' % (n + 1) in line['msg'], line
    r.smtps().quit()  # alice still logs in: the old users stay in force


def test_certificate_reload(reloadable, world, tmp_path):
    r = reloadable()
    before = peer_cert(r)
    renew_certs(tmp_path / 'fresh', os.path.join(world, 'certs'), 0o644)
    r.cafile = os.path.join(world, 'certs', 'dev-ca.crt')
    hup(r)
    after = peer_cert(r)
    assert after != before


def test_a_missing_key_file_on_reload_keeps_the_old_certificates(reloadable, world):
    r = reloadable()
    before = peer_cert(r)
    os.rename(os.path.join(world, 'certs', 'dev-rsa.key'),
              os.path.join(world, 'certs', 'dev-rsa.key.moved'))
    line = hup(r, 'reload.fail')
    assert 'dev-rsa.key' in line['msg']
    assert peer_cert(r) == before


def test_changing_a_listener_needs_a_restart(reloadable):
    r = reloadable()
    text = r.conf.read_text().replace("port = %d" % r.smtps_port,
                                      "port = %d" % (r.smtps_port + 1))
    r.conf.write_text(text)
    line = hup(r, 'reload.fail')
    assert 'listeners changed' in line['msg'] and 'restart' in line['msg']
    r.smtps().quit()


def test_limits_change_on_reload(reloadable):
    r = reloadable()
    c = r.smtps()
    c.mail(ALICE)
    assert all(c.rcpt('r%d@example.com' % i)[0] == 250 for i in range(5))
    c.rset()
    r.conf.write_text(r.conf.read_text().replace('limits = {  }',
                                                 'limits = { max_recipients = 2 }'))
    hup(r)
    # The session that began before the reload keeps its limits...
    c.mail(ALICE)
    assert all(c.rcpt('r%d@example.com' % i)[0] == 250 for i in range(5))
    c.quit()
    # ...a new one has the new ones.
    c = r.smtps()
    c.mail(ALICE)
    assert [c.rcpt('r%d@example.com' % i)[0] for i in range(3)] == [250, 250, 452]
    c.quit()


def test_audit_log_is_reopened_on_hup(reloadable):
    r = reloadable()
    r.smtps().quit()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and 'auth_attempt' not in r.audit_log.read_text():
        time.sleep(0.02)
    rotated = r.audit_log.with_suffix('.1')
    owner = os.stat(r.audit_log)
    os.rename(r.audit_log, rotated)
    # logrotate's `create`: a new empty file for the daemon's user
    r.audit_log.write_text('')
    os.chown(r.audit_log, owner.st_uid, owner.st_gid)
    hup(r)
    r.smtps().quit()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
            r.audit_log.exists() and 'auth_attempt' in r.audit_log.read_text()):
        time.sleep(0.02)
    assert rotated.read_text().count('auth_attempt') == 1
    assert r.audit_log.read_text().count('auth_attempt') == 1


def sender(relay, n, results, errors, reuse):
    """Send n messages, over one connection (reuse) or one connection each."""
    try:
        c = None
        for i in range(n):
            if c is None:
                c = relay.smtps()
            c.sendmail(ALICE, ['to@example.com'], b'Subject: load %d\r\n\r\nbody\r\n' % i)
            results.append(1)
            if not reuse:
                c.quit()
                c = None
        if c is not None:
            c.quit()
    except Exception as e:  # every message must go through: no exception at all
        errors.append(repr(e))


def test_reload_under_load_loses_nothing_and_never_mixes_generations(reloadable, sink):
    r = reloadable(workers=2)
    results, errors = [], []
    threads = [threading.Thread(target=sender, args=(r, 60, results, errors, i % 2 == 0))
               for i in range(6)]
    for t in threads:
        t.start()
    gens = 1
    deadline = time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        gens += 1
        r.site.write_text(POLICY % ('v%d' % gens))
        assert 'generation %d' % gens in hup(r)['msg']
        time.sleep(0.1)
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 360
    msgs = sink.wait_messages(360)
    assert len(msgs) == 360
    seen = set()
    for m in msgs:
        tag = m.split(b'X-Gen: ')[1].split(b'\r\n')[0]
        a, b = tag.split(b'/')
        assert a == b, tag  # on_data ran on the generation on_connect ran on
        seen.add(a)
    assert gens >= 3 and len(seen) >= 2, (gens, seen)


def auth_plain(relay, user, password):
    """One AUTH PLAIN on a new connection (smtplib's login() would try every mechanism,
    and every try counts as a failure for the rate limiter)."""
    with relay.raw() as c:
        c.cmd(b'EHLO client.test')
        return c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (user, password)))[0]


def test_auth_cache_remembers_successes_only_and_forgets_them_on_reload(reloadable, world):
    r = reloadable()
    assert [auth_plain(r, ALICE, 'wrong') for _ in range(2)] == [535, 535]
    assert r.logs('auth.cache_hit') == []  # a failure is never remembered
    assert [auth_plain(r, ALICE, PASSWORDS[ALICE]) for _ in range(2)] == [235, 235]
    assert len(r.wait_logs('auth.cache_hit')) == 1
    # A new password in the users file: after the reload the old one no longer works,
    # though it was remembered a moment ago.
    h = subprocess.run([SLUICE, 'passwd', '-s', 'sha512'], input='new-pw\n', text=True,
                       capture_output=True, check=True).stdout.strip()
    path = os.path.join(world, 'users', 'example.org.txt')
    lines = [l for l in open(path).read().splitlines() if not l.startswith('alice:')]
    open(path, 'w').write('\n'.join(lines + ['alice:' + h]) + '\n')
    hup(r)
    assert auth_plain(r, ALICE, PASSWORDS[ALICE]) == 535
    assert auth_plain(r, ALICE, 'new-pw') == 235
    assert len(r.logs('auth.cache_hit')) == 1


def test_auth_cache_entries_expire_and_can_be_switched_off(reloadable):
    r = reloadable(extra='auth_cache_ttl = 1,')
    r.smtps().quit()
    time.sleep(1.2)
    r.smtps().quit()
    assert r.logs('auth.cache_hit') == []
    r.smtps().quit()
    assert len(r.wait_logs('auth.cache_hit')) == 1
    off = reloadable(extra='auth_cache_ttl = 0,')
    for _ in range(3):
        off.smtps().quit()
    assert off.logs('auth.cache_hit') == []


def test_default_domain_serves_bare_user_names(reloadable):
    r = reloadable(extra="default_domain = 'example.org',")
    c = r.smtps(login=None)
    assert c.login('alice', PASSWORDS[ALICE])[0] == 235
    # the session's identity is the whole address: MAIL FROM in example.org is allowed
    c.sendmail(ALICE, ['x@example.com'], b'Subject: bare\r\n\r\nhi\r\n')
    c.quit()
    ok = r.logs('auth.ok')
    assert ok[-1]['user'] == ALICE
    assert auth_plain(r, 'carol', PASSWORDS['carol@example.net']) == 535  # example.net
