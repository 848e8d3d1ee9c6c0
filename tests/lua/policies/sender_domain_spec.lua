local testing = require('sluice.testing')

local DOMAINS = {
  ['example.org'] = {
    senders = { ['alice@example.org'] = { 'Sales@Partner.example', 'news@bücher.example' } },
  },
  ['example.net'] = { allow_subdomains = true, allow_null_sender = true },
  ['bücher.example'] = {},
  ['loose.example'] = { check_header_from = false },
}

local function whole(v)
  return { v.kind, v.code, v.enhanced }
end

local function setup()
  local h = testing.new({ domains = DOMAINS })
  return h, h:load_policy('policies/sender_domain.lua')
end

describe('policies/sender_domain on_mail_from', function()
  local h, policy, alice
  before_each(function()
    h, policy = setup()
    alice = h:session({ user = 'alice@example.org' })
  end)

  local function mail_from(session, sender)
    return policy.on_mail_from(session, h:transaction({ sender = sender }), sender)
  end

  it('passes a sender in the authenticated domain, in any case', function()
    assert.is_nil(mail_from(alice, 'alice@example.org'))
    assert.is_nil(mail_from(alice, 'Other.Person@EXAMPLE.ORG'))
  end)

  it('rejects a sender outside the authenticated domain with 550 5.7.1', function()
    assert.same({ 'reject', 550, '5.7.1' }, whole(mail_from(alice, 'alice@example.net')))
  end)

  it('takes the domain after the last @, not the first', function()
    assert.same({ 'reject', 550, '5.7.1' },
      whole(mail_from(alice, '"alice@example.org"@evil.test')))
    assert.is_nil(mail_from(alice, '"x@evil.test"@example.org'))
  end)

  it('rejects a subdomain unless the domain allows them', function()
    assert.same({ 'reject', 550, '5.7.1' }, whole(mail_from(alice, 'a@mail.example.org')))
    local carol = h:session({ user = 'carol@example.net' })
    assert.is_nil(mail_from(carol, 'carol@lists.example.net'))
    assert.same({ 'reject', 550, '5.7.1' }, whole(mail_from(carol, 'carol@badexample.net')))
  end)

  it('rejects the null sender unless the domain allows it', function()
    assert.same({ 'reject', 550, '5.7.1' }, whole(mail_from(alice, '')))
    assert.is_nil(mail_from(h:session({ user = 'carol@example.net' }), ''))
  end)

  it('passes the extra addresses configured for this user, and only for them', function()
    assert.is_nil(mail_from(alice, 'sales@partner.example'))
    assert.is_nil(mail_from(alice, 'NEWS@xn--bcher-kva.example'))
    local bob = h:session({ user = 'bob@example.org' })
    assert.same({ 'reject', 550, '5.7.1' }, whole(mail_from(bob, 'sales@partner.example')))
  end)

  it('treats a U-label sender domain and its A-label as equal', function()
    local dora = h:session({ user = 'dora@xn--bcher-kva.example' })
    assert.is_nil(mail_from(dora, 'dora@BÜCHER.example'))
    local dora_u = h:session({ user = 'dora@bücher.example' })
    assert.is_nil(mail_from(dora_u, 'dora@xn--bcher-kva.example'))
  end)

  it('rejects an address literal as the sender domain', function()
    assert.same({ 'reject', 550, '5.7.1' }, whole(mail_from(alice, 'alice@[192.0.2.1]')))
  end)

  it('raises a domain_mismatch audit event when it rejects', function()
    mail_from(alice, 'alice@Example.NET')
    local e = h:audit_events('domain_mismatch')[1]
    assert.same({ 'alice@example.org', 'example.org', 'alice@Example.NET', 'example.net',
      '192.0.2.10', 'mail_from' },
      { e.email, e.domain, e.sender, e.sender_domain, e.ip_address, e.source })
  end)

  it('never returns accept, so later policies still run', function()
    local ratelimit_like = { on_mail_from = function()
      return require('sluice').tempfail(451, '4.7.1', 'later')
    end }
    local v = h:run('on_mail_from', { policy, ratelimit_like }, alice, h:transaction(),
      'alice@example.org')
    assert.same({ 'tempfail', 451, '4.7.1' }, whole(v))
  end)
end)

describe('policies/sender_domain on_data', function()
  local h, policy, dora, alice
  before_each(function()
    h, policy = setup()
    dora = h:session({ user = 'dora@bücher.example' })
    alice = h:session({ user = 'alice@example.org' })
  end)

  local function data(session, message, policies)
    local tx = h:transaction({ sender = session.user, message = message })
    return h:run('on_data', policies or { policy }, session, tx)
  end

  local function from(session, value, extra)
    return whole(data(session, 'From: ' .. value .. '\r\n' .. (extra or '')
      .. 'Subject: s\r\n\r\nhi\r\n'))
  end

  local ACCEPT, SPOOF, MALFORMED = { 'accept' }, { 'reject', 550, '5.7.1' },
    { 'reject', 550, '5.6.0' }

  it('checks every domain that does not opt out: the default is on', function()
    assert.same(SPOOF, from(alice, 'ceo@example.net'))
    assert.same(ACCEPT, from(alice, 'alice@example.org'))
  end)

  it('accepts the forms a mail reader writes for an address in the domain', function()
    for _, value in ipairs({
      'alice@example.org', 'Alice@EXAMPLE.ORG', '<alice@example.org>',
      'Alice Liddell <alice@example.org>', '"Liddell, Alice" <alice@example.org>',
      '"Alice \\"the boss\\" L." <alice@example.org>',
      'alice@example.org (Alice Liddell, Example Org)',
      '=?UTF-8?B?QWxpY2UgTGlkZGVsbA==?= <alice@example.org>',
      '=?utf-8?q?Alice_L=C3=BCdell?= <alice@example.org>', 'Älice Lüddell <alice@example.org>',
      'Alice (the (nested) comment) <alice (here) @ example . org>',
      'John.Q. Public <alice@example.org>', '"alice"@example.org', '"ali ce"@example.org',
      '<@relay.example:alice@example.org>', 'Team: Alice <alice@example.org>;',
    }) do
      assert.same(ACCEPT, from(alice, value), value)
    end
    assert.same(ACCEPT, from(dora, '"Dora, B." <dora@xn--bcher-kva.example>'))
    assert.same(ACCEPT, from(dora, 'Dora <dora@BÜCHER.example>'))
  end)

  it('accepts the user\'s listed senders and, where allowed, subdomains', function()
    assert.same(ACCEPT, from(alice, 'Sales <sales@partner.example>'))
    local carol = h:session({ user = 'carol@example.net' })
    assert.same(ACCEPT, from(carol, 'carol@lists.example.net'))
    assert.same(SPOOF, from(carol, 'carol@badexample.net'))
    assert.same(SPOOF, from(h:session({ user = 'bob@example.org' }), 'sales@partner.example'))
  end)

  it('rejects a header From: outside the domain with 550 5.7.1 and an audit event', function()
    local v = data(dora, 'From: Dora <dora@bücher.example.evil.test>\r\n\r\nhi\r\n')
    assert.same(SPOOF, whole(v))
    assert.equal('Header From: address is not in your domain', v.text)
    local e = h:audit_events('domain_mismatch')[1]
    assert.same({ 'dora@bücher.example', 'dora@bücher.example.evil.test', 'header_from' },
      { e.email, e.sender, e.source })
  end)

  it('sees a From: however it is spelt: case, obsolete blanks before the colon, folding', function()
    for _, message in ipairs({
      'from: ceo@example.net\r\n\r\nhi\r\n',
      'FROM:ceo@example.net\r\n\r\nhi\r\n',
      'From : ceo@example.net\r\n\r\nhi\r\n',
      'From\t: CEO <ceo@example.net>\r\n\r\nhi\r\n',
      'From:\r\n "Alice"\r\n\t<ceo@example.net>\r\n\r\nhi\r\n',
      'From: Alice\r\n <ceo@example.net>\r\nSubject: x\r\n\r\nhi\r\n',
      'Subject: x\r\nFrom: ceo@example.net', -- no blank line, no final CRLF (BDAT)
    }) do
      assert.same(SPOOF, whole(data(alice, message)), message)
    end
  end)

  it('refuses a second From: in any spelling with 550 5.6.0', function()
    for _, second in ipairs({ 'From: ceo@example.net', 'From : ceo@example.net',
        'from\t:ceo@example.net', 'FROM: alice@example.org', 'From:\r\n ceo@example.net' }) do
      local v = data(alice, 'From: alice@example.org\r\n' .. second .. '\r\n\r\nhi\r\n')
      assert.same(MALFORMED, whole(v), second)
      assert.equal('The message has more than one From: header', v.text)
    end
  end)

  it('refuses a message with no From: with 550 5.6.0', function()
    local v = data(alice, 'Subject: x\r\n\r\nFrom: alice@example.org\r\n')
    assert.same(MALFORMED, whole(v))
    assert.equal('The message has no From: header', v.text)
    assert.same(MALFORMED, whole(data(alice, '\r\nFrom: alice@example.org\r\n')))
    -- Resent-From:, a folded line or a malformed one are not From: fields
    assert.same(MALFORMED, whole(data(alice,
      'Resent-From: alice@example.org\r\nSubject: x\r\n From: alice@example.org\r\n'
      .. 'From alice@example.org\r\n\r\nhi\r\n')))
  end)

  it('refuses a From: it cannot read with 550 5.6.0, rather than guess', function()
    for _, value in ipairs({
      '"Alice <alice@example.org>', 'Alice <alice@example.org', 'Alice',
      '', 'undisclosed-senders:;',
      'ceo@example.net <alice@example.org>', -- '@' is not allowed in a display name
      '=?utf-8?q?<ceo@example.net>?= <alice@example.org>',
      '<alice@example.org> <ceo@example.net>', 'alice@example.org; ceo@example.net',
      'alice@example.org (unclosed', 'alice@', '@example.org', 'a\1lice@example.org',
    }) do
      local v = data(alice, 'From: ' .. value .. '\r\n\r\nhi\r\n')
      assert.same(MALFORMED, whole(v), value)
      assert.equal('The From: header is not a valid address list', v.text, value)
    end
  end)

  it('refuses a From: or Sender: over 8192 octets before reading it', function()
    local long = ('"' .. ('x'):rep(8180) .. '" <alice@example.org>')
    local v = data(alice, 'From: ' .. long .. '\r\n\r\nhi\r\n')
    assert.same(MALFORMED, whole(v))
    assert.equal('The From: or Sender: header is too long', v.text)
    assert.same(MALFORMED, from(alice, 'alice@example.org', 'Sender: ' .. long .. '\r\n'))
    assert.same(ACCEPT, from(alice, '"' .. ('x'):rep(8160) .. '" <alice@example.org>'))
  end)

  it('takes a display name for what it is: text, not an address', function()
    -- the name is the sender's to choose, as in every mail system; the address is checked
    assert.same(ACCEPT, from(alice, '"ceo@example.net" <alice@example.org>'))
    assert.same(SPOOF, from(alice, '"alice@example.org" <ceo@example.net>'))
  end)

  it('holds every mailbox of a From: list to the domain, and wants a Sender: with them', function()
    local two = 'alice@example.org, Bob <bob@example.org>'
    assert.same(ACCEPT, from(alice, two, 'Sender: alice@example.org\r\n'))
    local v = data(alice, 'From: ' .. two .. '\r\n\r\nhi\r\n')
    assert.same(MALFORMED, whole(v))
    assert.equal('A From: header with several addresses needs a Sender: header', v.text)
    assert.same(SPOOF, from(alice, 'alice@example.org, ceo@example.net',
      'Sender: alice@example.org\r\n'))
    assert.same(SPOOF, from(alice, 'ceo@example.net,, alice@example.org',
      'Sender: alice@example.org\r\n'))
    assert.same(SPOOF, from(alice, 'Board: alice@example.org, ceo@example.net;',
      'Sender: alice@example.org\r\n'))
  end)

  it('holds a Sender: to the domain too, and wants at most one of one mailbox', function()
    local v = data(alice, 'From: alice@example.org\r\nSender: CEO <ceo@example.net>\r\n\r\n')
    assert.same(SPOOF, whole(v))
    assert.equal('Header Sender: address is not in your domain', v.text)
    assert.equal('header_sender', h:audit_events('domain_mismatch')[1].source)
    assert.same(MALFORMED, from(alice, 'alice@example.org',
      'Sender: alice@example.org\r\nsender : alice@example.org\r\n'))
    assert.same(MALFORMED, from(alice, 'alice@example.org',
      'Sender: alice@example.org, bob@example.org\r\n'))
    assert.same(MALFORMED, from(alice, 'alice@example.org', 'Sender: nobody\r\n'))
    assert.same(ACCEPT, from(alice, 'alice@example.org', 'Sender: Alice <alice@example.org>\r\n'))
  end)

  it('sees headers other policies added before it', function()
    local sluice = h:require('sluice')
    local function adder(name, value)
      return { on_data = function(_, tx) tx:add_header(name, value) end }
    end
    local ok = 'From: alice@example.org\r\n\r\nhi\r\n'
    assert.same(ACCEPT, whole(data(alice, ok, { adder('X-Scanned', 'yes'), policy })))
    assert.same(MALFORMED, whole(data(alice, ok, { adder('From', 'ceo@example.net'), policy })))
    assert.same(SPOOF, whole(data(alice, 'Subject: x\r\n\r\nhi\r\n',
      { adder('From', 'ceo@example.net'), policy })))
    assert.same(ACCEPT, whole(data(alice, 'Subject: x\r\n\r\nhi\r\n',
      { adder('From', 'alice@example.org'), policy })))
    -- and a policy after it that accepts does not undo a refusal
    local accept = { on_data = function() return sluice.accept() end }
    assert.same(SPOOF, whole(data(alice, 'From: ceo@example.net\r\n\r\nhi\r\n',
      { policy, accept })))
  end)

  it('holds each message to the rule, whoever sent the one before on this state', function()
    local bob = h:session({ user = 'bob@example.org' })
    local dora_a = h:session({ user = 'dora@xn--bcher-kva.example' })
    local alias = 'From: sales@partner.example\r\n\r\nhi\r\n'
    for _ = 1, 2 do
      assert.same(ACCEPT, whole(data(alice, alias)))
      assert.same(SPOOF, whole(data(bob, alias)))
      assert.same(ACCEPT, whole(data(alice, 'From: sales@partner.example\r\n'
        .. 'Sender: alice@example.org\r\n\r\nhi\r\n')))
      assert.same(SPOOF, whole(data(alice, 'From: sales@partner.example\r\n'
        .. 'Sender: bob@example.net\r\n\r\nhi\r\n')))
      assert.same(MALFORMED, whole(data(alice, 'From: sales@partner.example\r\n' .. alias)))
      assert.same(ACCEPT, whole(data(dora, 'From: dora@bücher.example\r\n\r\nhi\r\n')))
      assert.same(ACCEPT, whole(data(dora_a, 'From: dora@bücher.example\r\n\r\nhi\r\n')))
      assert.same(SPOOF, whole(data(alice, 'From: dora@bücher.example\r\n\r\nhi\r\n')))
    end
  end)

  it('does not look at From: for a domain that opts out', function()
    local lou = h:session({ user = 'lou@loose.example' })
    assert.same(ACCEPT, whole(data(lou, 'From: boss@evil.test\r\n\r\nhi\r\n')))
    assert.same(ACCEPT, whole(data(lou, 'Subject: none\r\n\r\nhi\r\n')))
  end)
end)

describe('policies/sender_domain hooks', function()
  local function hooks(domains)
    return testing.new({ domains = domains }):load_policy('policies/sender_domain.lua')
  end

  it('has on_data unless every declared domain opts out (no hook call per message then)', function()
    assert.is_function(hooks(DOMAINS).on_data)
    assert.is_function(hooks({ ['example.org'] = {} }).on_data)
    assert.is_function(hooks({}).on_data)
    local without = hooks({ ['example.org'] = { check_header_from = false },
      ['example.net'] = { check_header_from = false } })
    assert.is_nil(without.on_data)
    assert.is_function(without.on_mail_from)
  end)
end)
