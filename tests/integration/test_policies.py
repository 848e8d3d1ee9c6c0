"""The Lua policy engine seen from a client (docs/lua-api.md): decisions come from the
configured policies in order, a failing or slow hook gives 451 4.3.0 and a policy.error
log line naming the policy file and line, a waiting hook holds up only its own session,
and with no policies at all AUTH is refused."""
import datetime
import subprocess
import threading
import time

import pytest

from conftest import ALICE, PASSWORDS, SHIPPED_POLICIES, SLUICE, b64, upstream_conf

TEMPFAIL = (451, b'4.3.0 Temporary policy failure, try again later')


def write_policy(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def authed(relay):
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode())[0] == 250
    return c


def test_without_policies_every_auth_is_refused(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), policies=[])
    c = relay.raw()
    c.cmd(b'EHLO client.test')
    reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE])))
    assert reply == (535, b'5.7.8 Authentication credentials invalid')
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode())[0] == 530


def test_a_policy_added_to_the_list_rejects_a_recipient(make_relay, sink, tmp_path):
    block = write_policy(tmp_path, 'block.lua', """
local sluice = require('sluice')
return {
  on_rcpt = function(session, tx, recipient)
    if recipient == 'blocked@example.com' then
      return sluice.reject(550, '5.7.1', 'Recipient blocked by policy')
    end
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [block])
    c = authed(relay)
    assert c.cmd(b'RCPT TO:<blocked@example.com>') == (550, b'5.7.1 Recipient blocked by policy')
    assert c.cmd(b'RCPT TO:<ok@example.com>') == (250, b'2.1.5 Recipient ok')
    assert c.cmd(b'DATA')[0] == 354
    assert c.cmd(b'Subject: x\r\n\r\nhi\r\n.')[0] == 250
    assert len(sink.wait_messages(1)) == 1


def test_hooks_see_the_session_and_the_transaction(make_relay, sink, tmp_path):
    show = write_policy(tmp_path, 'show.lua', """
local sluice = require('sluice')
return {
  on_rcpt = function(session, tx, recipient)
    session.data.n = (session.data.n or 0) + 1
    if recipient ~= 'show@example.com' then return nil end
    return sluice.reject(550, '5.7.1', ('%s %s %s %s %s %s %s %d %s %s %d %s'):format(
      session.user, session.domain, session.auth_mechanism, session.helo,
      session.listener, session.tls_version, tx.sender, #tx.recipients,
      tx.recipients[1], tostring(tx.smtputf8), session.data.n, tx.id))
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [show])
    c = authed(relay)
    assert c.cmd(b'RCPT TO:<a@example.com>')[0] == 250
    code, text = c.cmd(b'RCPT TO:<show@example.com>')
    sid = relay.logs('session.open')[-1]['sid']
    assert (code, text.decode()) == (550, '5.7.1 %s example.org PLAIN client.test smtps TLSv1.3 '
                                          '%s 1 a@example.com false 2 %s.1' % (ALICE, ALICE, sid))


def test_a_raising_hook_gives_451_and_names_the_policy_and_line(make_relay, sink, tmp_path):
    boom = write_policy(tmp_path, 'boom.lua', """local sluice = require('sluice')
return {
  on_rcpt = function(session, tx, recipient)
    if recipient == 'boom@example.com' then
      error('boom')
    end
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [boom])
    c = authed(relay)
    assert c.cmd(b'RCPT TO:<boom@example.com>') == TEMPFAIL
    assert c.cmd(b'RCPT TO:<fine@example.com>')[0] == 250  # the session goes on
    [err] = relay.wait_logs('policy.error')
    assert (err['policy'], err['line'], err['hook']) == (boom, 5, 'on_rcpt')
    assert err['error'].endswith('boom.lua:5: boom')
    assert err['level'] == 'err' and err['sid'] == relay.logs('session.open')[-1]['sid']


def test_a_non_verdict_gives_451_at_the_line_of_the_hook(make_relay, sink, tmp_path):
    odd = write_policy(tmp_path, 'odd.lua', """return {

  on_mail_from = function(session, tx, sender)
    return { kind = 'accept' }
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=[odd] + SHIPPED_POLICIES)
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode()) == TEMPFAIL
    [err] = relay.wait_logs('policy.error')
    assert (err['line'], err['hook']) == (3, 'on_mail_from')
    assert 'expected a verdict' in err['error']


def test_a_hook_over_its_budget_gives_451(make_relay, sink, tmp_path):
    slow = write_policy(tmp_path, 'slow.lua', """local sluice = require('sluice')
return {
  on_mail_from = function(session, tx, sender)
    for _ = 1, 20 do sluice.sleep(0.1) end
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [slow],
                       extra='hook_timeout = 0.5,')
    c = relay.raw_authed()
    start = time.monotonic()
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode()) == TEMPFAIL
    assert 0.4 < time.monotonic() - start < 1.5
    [err] = relay.wait_logs('policy.error')
    # the sleep that would end past the budget raises (docs/lua-api.md sluice.sleep)
    assert (err['policy'], err['line'], err['hook']) == (slow, 4, 'on_mail_from')
    assert 'out of range' in err['error']
    assert c.cmd(b'NOOP')[0] == 250


def test_a_sleeping_hook_does_not_hold_up_other_sessions(make_relay, sink, tmp_path):
    nap = write_policy(tmp_path, 'nap.lua', """local sluice = require('sluice')
return {
  on_rcpt = function(session, tx, recipient)
    if recipient:match('^slow@') then
      sluice.log('info', 'nap.start')
      sluice.sleep(1.5)
    end
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [nap], workers=1)
    slow = authed(relay)
    slow_reply = []
    start = time.monotonic()
    t = threading.Thread(target=lambda: slow_reply.append(
        (slow.cmd(b'RCPT TO:<slow@example.com>'), time.monotonic() - start)))
    t.start()
    assert relay.wait_logs('nap.start'), 'the slow RCPT never reached its hook'
    fast = authed(relay)
    assert fast.cmd(b'RCPT TO:<fast@example.com>')[0] == 250
    assert fast.cmd(b'DATA')[0] == 354
    assert fast.cmd(b'Subject: fast\r\n\r\nhi\r\n.')[0] == 250
    assert time.monotonic() - start < 1.2
    t.join(5)
    [(reply, took)] = slow_reply
    assert reply == (250, b'2.1.5 Recipient ok') and took >= 1.4


def test_pipelined_commands_wait_for_a_pending_hook(make_relay, sink, tmp_path):
    nap = write_policy(tmp_path, 'nap.lua', """local sluice = require('sluice')
return { on_rcpt = function() sluice.sleep(0.2) end }
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [nap])
    c = relay.raw_authed()
    c.send(b'MAIL FROM:<%s>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n'
           b'DATA\r\n' % ALICE.encode())
    assert [r[0] for r in c.replies(4)] == [250, 250, 250, 354]
    assert c.cmd(b'Subject: p\r\n\r\nhi\r\n.')[0] == 250
    [msg] = sink.wait_messages(1)
    assert b'Subject: p' in msg


def test_sluice_audit_appends_a_json_line(make_relay, sink, tmp_path):
    note = write_policy(tmp_path, 'note.lua', """local sluice = require('sluice')
return {
  on_mail_from = function(session, tx, sender)
    assert(sluice.audit('test_mail', { sender = sender, session_id = session.id }))
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [note])
    authed(relay)
    mine = relay.audit('test_mail')
    assert len(mine) == 1 and mine[0]['sender'] == ALICE
    assert list(mine[0])[:2] == ['timestamp', 'event_type']
    assert mine[0]['timestamp'].endswith('Z') and len(mine[0]['timestamp']) == 27


def test_check_fails_with_78_on_a_policy_that_does_not_load(make_relay, sink, tmp_path):
    relay = make_relay(upstream_conf(sink.port))
    bad = write_policy(tmp_path, 'bad.lua', "return {\n  on_rcpt = function( end,\n}\n")
    typo = write_policy(tmp_path, 'typo.lua', "return {\n  on_rpct = function() end,\n}\n")
    text = relay.conf.read_text()
    for policy, want in [(bad, "bad.lua:2: "), (typo, "typo.lua:2: unknown hook 'on_rpct'")]:
        conf = tmp_path / 'check.lua'
        conf.write_text(text.replace(SHIPPED_POLICIES[-1], policy))
        out = subprocess.run([SLUICE, 'check', '-c', str(conf)], capture_output=True,
                             text=True)
        assert out.returncode == 78, out
        assert want in out.stderr, out.stderr


@pytest.mark.threads  # the audit writer thread
def test_the_audit_log_has_logins_and_relayed_messages(relay, sink):
    c = relay.raw()
    c.cmd(b'EHLO client.test')
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0wrong' % ALICE))[0] == 535
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE])))[0] == 235
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode())[0] == 250
    assert c.cmd(b'RCPT TO:<bob@example.com>')[0] == 250
    assert c.cmd(b'DATA')[0] == 354
    code, text = c.cmd(b'Subject: a\r\n\r\nhi\r\n.')
    assert code == 250
    relay.audit('message_relayed')
    lines = relay.audit()
    auth = [l for l in lines if l['event_type'] == 'auth_attempt']
    assert [(a['email'], a['success'], a['code'], a['method']) for a in auth] == [
        (ALICE, False, 535, 'PLAIN'), (ALICE, True, 235, 'PLAIN')]
    [sent] = [l for l in lines if l['event_type'] == 'message_relayed']
    assert (sent['sender'], sent['recipients'], sent['success']) == (
        ALICE, ['bob@example.com'], True)
    assert sent['upstream_reply']['code'] == 250 and sent['message_id'] in text.decode()
    assert sent['size'] > 0 and sent['tls_version'] == 'TLSv1.3'


@pytest.mark.threads  # sluice.shdict
def test_the_shipped_ratelimit_blocks_an_address_after_five_failures(relay, sink):
    c = relay.raw()
    c.cmd(b'EHLO client.test')
    replies = []
    for i in range(2):  # limits.max_auth_failures is 3: a third would close the session
        replies.append(c.cmd('AUTH PLAIN ' + b64('\0%s\0wrong%d' % (ALICE, i)))[0])
    c = relay.raw()
    c.cmd(b'EHLO client.test')
    replies += [c.cmd('AUTH PLAIN ' + b64('\0%s\0wrong%d' % (ALICE, i)))[0]
                for i in range(2)]
    c = relay.raw()
    c.cmd(b'EHLO client.test')
    replies.append(c.cmd('AUTH PLAIN ' + b64('\0%s\0wrong' % ALICE))[0])
    # the block holds at AUTH in a session already open, and at connect (on_connect)
    reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE])))
    assert replies == [535] * 5
    assert reply == (454, b'4.7.0 Too many failed logins, try again later')
    c = relay.raw()
    assert c.greeting == (421, b'4.7.0 Too many failed logins from your address, try later')
    assert c.at_eof()


def test_on_disconnect_runs_with_the_reason(make_relay, sink, tmp_path):
    bye = write_policy(tmp_path, 'bye.lua', """local sluice = require('sluice')
return {
  on_disconnect = function(session, reason)
    sluice.log('info', 'test.bye', { reason = reason, helo = session.helo or '-' })
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [bye])
    c = relay.raw()
    c.cmd(b'EHLO client.test')
    assert c.cmd(b'QUIT')[0] == 221
    [bye_line] = relay.wait_logs('test.bye')
    assert (bye_line['reason'], bye_line['helo'], bye_line['policy']) == (
        'Bye', 'client.test', bye)
    # the session's sid, and the same order of keys on every line: the core's, then the
    # policy's fields by name
    [opened] = relay.wait_logs('session.open')
    assert list(bye_line) == ['ts', 'level', 'event', 'sid', 'policy', 'helo', 'reason']
    assert bye_line['sid'] == opened['sid']
    assert relay.logs('policy.error') == []


def ts_seconds(line):
    """A log line's ts ("2026-11-24T10:15:02.114Z") as seconds since the epoch."""
    return datetime.datetime.strptime(line['ts'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp()


NAPPER = """local sluice = require('sluice')
return {
  on_disconnect = function(session, reason)
    sluice.sleep(%s)  -- as a limiter whose zone is in Redis waits for its answer
    sluice.log('info', 'test.bye', { reason = reason, user = session.user or '-' })
  end,
}
"""


def test_on_disconnect_may_wait_and_runs_after_the_client_has_left(make_relay, sink,
                                                                   tmp_path):
    bye = write_policy(tmp_path, 'bye.lua', NAPPER % '0.2')
    # one connection per address: the second one below is let in only because the first
    # gave its slot back before on_disconnect began
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [bye],
                       limits='max_connections_per_ip = 1')
    c = relay.raw_authed()
    assert c.cmd(b'QUIT')[0] == 221
    assert c.at_eof()  # closed by the server, on_disconnect not over yet
    again = relay.raw()
    assert again.greeting.code == 220
    [closed] = relay.wait_logs('session.close')
    [bye_line] = relay.wait_logs('test.bye')
    assert (bye_line['sid'], bye_line['reason'], bye_line['user']) == (
        closed['sid'], 'Bye', ALICE)
    assert ts_seconds(bye_line) - ts_seconds(closed) >= 0.2
    assert relay.logs('policy.error') == []
    [opened, _] = relay.logs('session.open')
    assert opened['sid'] == closed['sid']


def test_an_on_disconnect_that_waits_past_hook_timeout_ends_with_policy_error(
        make_relay, sink, tmp_path):
    forever = write_policy(tmp_path, 'forever.lua', """local sluice = require('sluice')
return {
  on_disconnect = function(session, reason)
    while true do sluice.sleep(0.1) end
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [forever],
                       extra='hook_timeout = 0.5,')
    c = relay.raw_authed()
    assert c.cmd(b'QUIT')[0] == 221
    assert c.at_eof()
    [err] = relay.wait_logs('policy.error')
    [closed] = relay.logs('session.close')
    assert (err['hook'], err['sid']) == ('on_disconnect', closed['sid'])
    # the sleep that would end past the budget is refused (the budget's timer ends a wait
    # that cannot know its length): either way hook_timeout ended it
    assert 'what is left of hook_timeout' in err['error']
    assert ts_seconds(err) - ts_seconds(closed) >= 0.4
    # the session is gone with its run: nothing is left for a drain to wait for
    sent = time.monotonic()
    assert relay.stop() == 0
    assert time.monotonic() - sent < 2
    assert relay.logs('policy.cancel') == []


def test_on_connect_and_on_helo_decide(make_relay, sink, tmp_path):
    gate = write_policy(tmp_path, 'gate.lua', """local sluice = require('sluice')
return {
  on_connect = function(session)
    sluice.sleep(0.05)
    if sluice.shdict.get('closed') then
      return sluice.reject(554, '5.7.1', 'Go away')
    end
  end,
  on_helo = function(session, name)
    session.data.helos = (session.data.helos or 0) + 1
    if name == 'bad.example' then
      return sluice.reject(550, '5.7.1', 'Bad HELO, previous ' .. (session.helo or 'none'))
    end
    if name == 'close.example' then sluice.shdict.set('closed', true) end
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [gate])
    for tls in (True, False):
        c = relay.raw(tls=tls)
        assert c.greeting.code == 220
        assert c.cmd(b'EHLO good.example').code == 250
        assert c.cmd(b'EHLO bad.example') == (550, b'5.7.1 Bad HELO, previous good.example')
        assert c.cmd(b'HELO other.example').code == 250
        c.close()
    c = relay.raw(tls=False)
    assert c.cmd(b'EHLO close.example').code == 250
    c.close()
    for tls in (True, False):
        c = relay.raw(tls=tls, greeting=False)
        assert c.reply() == (554, b'5.7.1 Go away')
        assert c.at_eof()


def test_a_hook_that_never_yields_is_stopped_at_its_budget(make_relay, sink, tmp_path):
    spin = write_policy(tmp_path, 'spin.lua', """local sluice = require('sluice')
return {
  on_rcpt = function(session, tx, recipient)
    local t = {}
    while recipient == 'spin@example.com' do t[#t % 7 + 1] = tostring(#t) end
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [spin],
                       extra='hook_timeout = 0.5,')
    c = authed(relay)
    start = time.monotonic()
    assert c.cmd(b'RCPT TO:<spin@example.com>') == TEMPFAIL
    assert time.monotonic() - start < 2
    [err] = relay.wait_logs('policy.error')
    assert (err['policy'], err['hook']) == (spin, 'on_rcpt')
    assert 'hook_timeout' in err['error']
    assert c.cmd(b'RCPT TO:<fine@example.com>')[0] == 250


def test_session_fields_are_read_only_but_data_is_not(make_relay, sink, tmp_path):
    forge = write_policy(tmp_path, 'forge.lua', """return {
  on_rcpt = function(session, tx, recipient)
    session.data.seen = true
    if recipient == 'forge@example.com' then
      session.user = 'mallory@example.org'
    end
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [forge])
    c = authed(relay)
    assert c.cmd(b'RCPT TO:<a@example.com>')[0] == 250
    assert c.cmd(b'RCPT TO:<forge@example.com>') == TEMPFAIL
    [err] = relay.wait_logs('policy.error')
    assert err['line'] == 5 and 'session.user is read-only' in err['error']
