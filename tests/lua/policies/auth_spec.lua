local testing = require('sluice.testing')

local DOMAINS = {
  ['example.org'] = { enabled = true, auth = { 'file' } },
  ['example.net'] = { enabled = false },
  ['bücher.example'] = {},
  ['ldap-only.example'] = { auth = { 'ldap' } },
}
local USERS = {
  ['alice@example.org'] = 'alice-secret',
  ['carol@example.net'] = 'carol-secret',
  ['dora@xn--bcher-kva.example'] = 'dora-secret', -- users files are named by A-label
  ['eve@other.example'] = 'eve-secret',
}

local function whole(v)
  return { v.kind, v.code, v.enhanced }
end

local function password(user, pw)
  return { mechanism = 'PLAIN', user = user, password = pw }
end

describe('policies/auth on_auth', function()
  local h, policy
  before_each(function()
    h = testing.new({ domains = DOMAINS, users = USERS })
    policy = h:load_policy('policies/auth.lua')
  end)

  it('accepts the right password of a user in an enabled domain', function()
    local v = policy.on_auth(h:session(), password('alice@example.org', 'alice-secret'))
    assert.same({ 'accept' }, whole(v))
  end)

  it('accepts a user whatever the case of the identity', function()
    local v = policy.on_auth(h:session(), password('Alice@EXAMPLE.org', 'alice-secret'))
    assert.same({ 'accept' }, whole(v))
  end)

  it('accepts a user of a domain declared by its U-label', function()
    local v = policy.on_auth(h:session(), password('dora@bücher.example', 'dora-secret'))
    assert.same({ 'accept' }, whole(v))
  end)

  it('rejects a wrong password with 535 5.7.8', function()
    local v = policy.on_auth(h:session(), password('alice@example.org', 'guess'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('rejects an unknown user exactly like a wrong password', function()
    local unknown = policy.on_auth(h:session(), password('mallory@example.org', 'x'))
    local wrong = policy.on_auth(h:session(), password('alice@example.org', 'x'))
    assert.same({ 'reject', 535, '5.7.8', wrong.text }, { unknown.kind, unknown.code,
      unknown.enhanced, unknown.text })
    assert.equal(2, h.verifications) -- both cost a hash
  end)

  it('does not serve a domain that is not declared, without hashing', function()
    local v = policy.on_auth(h:session(), password('eve@other.example', 'eve-secret'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
    assert.equal(0, h.verifications)
  end)

  it('rejects an identity without a domain', function()
    local v = policy.on_auth(h:session(), password('alice', 'x'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('tells the right password of a disabled domain 525 5.7.13', function()
    local v = policy.on_auth(h:session(), password('carol@example.net', 'carol-secret'))
    assert.same({ 'reject', 525, '5.7.13' }, whole(v))
    assert.matches('disabled', v.text)
  end)

  it('tells a wrong password of a disabled domain only 535 5.7.8', function()
    local v = policy.on_auth(h:session(), password('carol@example.net', 'guess'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('tempfails with 454 4.7.0 when the users file cannot be checked', function()
    h.passwd_error = 'offload queue full'
    local v = policy.on_auth(h:session(), password('alice@example.org', 'alice-secret'))
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
    assert.equal('auth.backend_error', h.logs[1].event)
  end)

  it('leaves a bearer token to the next policy', function()
    local token = { mechanism = 'XOAUTH2', user = 'alice@example.org', token = 'eyJ...' }
    assert.is_nil(policy.on_auth(h:session(), token))
  end)

  it('rejects when the domain lists no backend this version has', function()
    local v = policy.on_auth(h:session(), password('x@ldap-only.example', 'pw'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)
end)

describe('policies/auth in the chain', function()
  it('leaves a bearer token to the engine\'s default: 535 5.7.8', function()
    local h = testing.new({ domains = DOMAINS, users = USERS })
    local policy = h:load_policy('policies/auth.lua')
    local v = h:auth({ policy }, h:session(),
      { mechanism = 'OAUTHBEARER', user = 'alice@example.org', token = 't' })
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('fixes the session\'s identity on accept', function()
    local h = testing.new({ domains = DOMAINS, users = USERS })
    local s = h:session()
    h:auth({ h:load_policy('policies/auth.lua') }, s, password('Alice@Example.org', 'alice-secret'))
    assert.same({ 'alice@example.org', 'example.org' }, { s.user, s.domain })
  end)
end)
