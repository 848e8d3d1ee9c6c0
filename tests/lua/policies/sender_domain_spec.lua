local testing = require('sluice.testing')

local DOMAINS = {
  ['example.org'] = {
    senders = { ['alice@example.org'] = { 'Sales@Partner.example', 'news@bücher.example' } },
  },
  ['example.net'] = { allow_subdomains = true, allow_null_sender = true },
  ['bücher.example'] = { check_header_from = true },
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
  local h, policy, dora
  before_each(function()
    h, policy = setup()
    dora = h:session({ user = 'dora@bücher.example' })
  end)

  local function data(session, message)
    local tx = h:transaction({ sender = session.user, message = message })
    return h:run('on_data', { policy }, session, tx)
  end

  it('accepts a header From: in the domain when the domain checks it', function()
    local v = data(dora, 'From: "Dora, B." <dora@xn--bcher-kva.example>\r\n\r\nhi\r\n')
    assert.same({ 'accept' }, whole(v))
  end)

  it('rejects a header From: outside the domain with 550 5.7.1', function()
    local v = data(dora, 'From: Dora <dora@bücher.example.evil.test>\r\n\r\nhi\r\n')
    assert.same({ 'reject', 550, '5.7.1' }, whole(v))
    assert.equal('header_from', h:audit_events('domain_mismatch')[1].source)
  end)

  it('rejects when any mailbox of a From: list is outside the domain', function()
    local v = data(dora, 'From: dora@bücher.example, boss@evil.test\r\n\r\nhi\r\n')
    assert.same({ 'reject', 550, '5.7.1' }, whole(v))
  end)

  it('rejects a message with no From:, two of them, or one it cannot read: 550 5.6.0', function()
    assert.same({ 'reject', 550, '5.6.0' }, whole(data(dora, 'Subject: x\r\n\r\nhi\r\n')))
    assert.same({ 'reject', 550, '5.6.0' }, whole(data(dora,
      'From: dora@bücher.example\r\nFrom: dora@bücher.example\r\n\r\nhi\r\n')))
    assert.same({ 'reject', 550, '5.6.0' }, whole(data(dora, 'From: "Dora <x@y>\r\n\r\nhi\r\n')))
  end)

  it('does not look at From: for a domain that does not ask for it', function()
    local alice = h:session({ user = 'alice@example.org' })
    assert.same({ 'accept' }, whole(data(alice, 'From: boss@evil.test\r\n\r\nhi\r\n')))
  end)
end)

describe('policies/sender_domain hooks', function()
  it('has on_data only when some domain sets check_header_from (no hook call per message otherwise)', function()
    local with = testing.new({ domains = DOMAINS }):load_policy('policies/sender_domain.lua')
    local without = testing.new({ domains = { ['example.org'] = {} } })
      :load_policy('policies/sender_domain.lua')
    assert.is_function(with.on_data)
    assert.is_nil(without.on_data)
    assert.is_function(without.on_mail_from)
  end)
end)
