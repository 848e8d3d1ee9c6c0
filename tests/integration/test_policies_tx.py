"""The tx methods seen from a client (docs/lua-api.md "The transaction"): on_data reads
the message's headers and body and edits its header block, the relay sends the edited
bytes with headers added right below our Received:, and the shipped sender_domain policy
holds the header From: to the user's domain (on by default; test_header_from.py has the
forms it reads and the ways around it that it closes)."""
from conftest import ALICE, SHIPPED_POLICIES, client_bytes, received_header, upstream_conf

EDIT = """
local sluice = require('sluice')
return {
  on_data = function(session, tx)
    if tx:header('x-mailer') == 'spam-cannon' then
      return sluice.reject(550, '5.7.1', 'Mailer not allowed')
    end
    local n = tx:remove_header('X-Originating-IP')
    tx:add_header('X-Sluice-User', session.user)
    tx:add_header('X-Removed', tostring(n))
    local all = {}
    for _, h in ipairs(tx:headers()) do all[#all + 1] = h.name .. '=' .. h.value end
    tx:add_header('X-Seen', table.concat(all, '|'))
    tx:add_header('X-Body', tx:body(5) .. '/' .. #tx:body() .. '/' .. tx.size)
    tx:add_header('X-Folded', tx:header('Subject'))
  end,
}
"""


def write_policy(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def send(relay, message):
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode())[0] == 250
    assert c.cmd(b'RCPT TO:<rcpt@example.com>')[0] == 250
    assert c.cmd(b'DATA')[0] == 354
    return c.cmd(message + b'.')


def test_on_data_rejects_on_a_header_value(make_relay, sink, tmp_path):
    relay = make_relay(upstream_conf(sink.port),
                       policies=SHIPPED_POLICIES + [write_policy(tmp_path, 'edit.lua', EDIT)])
    reply = send(relay, b'From: <alice@example.org>\r\nX-Mailer: spam-cannon\r\n\r\nhi\r\n')
    assert reply == (550, b'5.7.1 Mailer not allowed')
    assert sink.wait_messages(1, timeout=0.5) == []


def test_added_headers_go_below_our_received_and_removed_ones_are_gone(make_relay, sink,
                                                                        tmp_path):
    relay = make_relay(upstream_conf(sink.port),
                       policies=SHIPPED_POLICIES + [write_policy(tmp_path, 'edit.lua', EDIT)])
    message = (b'From: <alice@example.org>\r\nX-Originating-IP: 10.0.0.1\r\n'
               b'Subject: one\r\n\ttwo\r\nx-originating-ip: 10.0.0.2\r\n\r\n'
               b'hello world\r\n')
    assert send(relay, message)[0] == 250
    stored = sink.wait_messages(1)[0]
    assert stored.startswith(received_header(stored))
    assert client_bytes(stored) == (
        b'X-Sluice-User: alice@example.org\r\n'
        b'X-Removed: 2\r\n'
        b'X-Seen: X-Sluice-User=alice@example.org|X-Removed=2|From=<alice@example.org>|'
        b'Subject=one\ttwo\r\n'
        b'X-Body: hello/13/%d\r\n'
        b'X-Folded: one\ttwo\r\n'
        b'From: <alice@example.org>\r\nSubject: one\r\n\ttwo\r\n\r\nhello world\r\n'
        % len(message))


def test_add_header_raises_on_a_bad_name_or_value(make_relay, sink, tmp_path):
    bad = write_policy(tmp_path, 'bad.lua', """
return {
  on_data = function(session, tx)
    local subject = tx:header('Subject')
    local calls = {
      name = function() tx:add_header('Bad Name', 'x') end,
      colon = function() tx:add_header('A:B', 'x') end,
      empty = function() tx:add_header('', 'x') end,
      crlf = function() tx:add_header('A', 'x\\r\\nB: y') end,
      nul = function() tx:add_header('A', 'x\\0y') end,
      long = function() tx:add_header('A', ('x'):rep(996)) end,
    }
    local ok, err = pcall(calls[subject])
    assert(not ok)
    assert(tx:add_header('A', ('x'):rep(995)))
    error('raised: ' .. subject)
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [bad])
    for subject in (b'name', b'colon', b'empty', b'crlf', b'nul', b'long'):
        assert send(relay, b'Subject: %s\r\n\r\nx\r\n' % subject)[0] == 451
    errors = [e.get('error', '') for e in relay.wait_logs('policy.error', 6)]
    assert len(errors) == 6 and all('raised: ' in e for e in errors), errors


def test_the_methods_raise_outside_on_data_and_edits_raise_in_on_relayed(make_relay, sink,
                                                                          tmp_path):
    where = write_policy(tmp_path, 'where.lua', """
local sluice = require('sluice')
return {
  on_rcpt = function(session, tx)
    if pcall(tx.header, tx, 'From') then return sluice.reject(550, '5.7.1', 'read in rcpt') end
  end,
  on_relayed = function(session, tx)
    sluice.audit('seen', { from = tx:header('From'),
                           edit = pcall(tx.add_header, tx, 'A', 'b') })
  end,
}
""")
    relay = make_relay(upstream_conf(sink.port), policies=SHIPPED_POLICIES + [where])
    assert send(relay, b'From: <alice@example.org>\r\n\r\nhi\r\n')[0] == 250
    [seen] = relay.audit('seen')
    assert (seen['from'], seen['edit']) == ('<alice@example.org>', False)


HEADER_FROM = "{ ['example.org'] = {}, ['example.net'] = {} }"  # both at the default: on


def test_sender_domain_accepts_a_header_from_in_the_domain(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), domains=HEADER_FROM)
    assert send(relay, b'From: Alice <alice@example.org>\r\n\r\nhi\r\n')[0] == 250
    assert len(sink.wait_messages(1)) == 1


def test_sender_domain_refuses_a_header_from_outside_the_domain(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), domains=HEADER_FROM)
    reply = send(relay, b'From: Mallory <mallory@example.net>\r\n\r\nhi\r\n')
    assert reply == (550, b'5.7.1 Header From: address is not in your domain')
    reply = send(relay, b'Subject: no from\r\n\r\nhi\r\n')
    assert reply == (550, b'5.6.0 The message has no From: header')
    assert sink.wait_messages(1, timeout=0.5) == []
