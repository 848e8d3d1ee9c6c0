-- The double refuses what the daemon refuses, with the daemon's message: the cases of
-- tests/lua/fixtures/domains_schema.lua, which tests/unit/test_config_schema.c runs through
-- config_load().
local testing = require('sluice.testing')
local cases = dofile('tests/lua/fixtures/domains_schema.lua')

local function domains(text)
  return assert(loadstring('return ' .. text))()
end

describe('sluice.testing domains', function()
  for _, text in ipairs(cases.accepted) do
    it('accepts what the daemon accepts: ' .. text:match('%[\'([^\']+)\'%]'), function()
      assert.is_table(testing.new({ domains = domains(text) }).domains)
    end)
  end

  for _, case in ipairs(cases.refused) do
    it('refuses as the daemon does: ' .. case[2], function()
      local ok, err = pcall(testing.new, { domains = domains(case[1]) })
      assert.is_false(ok)
      assert.equal(case[2], err)
    end)
  end

  it('shows each domain with its defaults and without its secrets', function()
    local h = testing.new({ domains = domains(cases.accepted[2]) })
    local d = h.domains['b.example']
    assert.same({ true, { 'oauth2', 'ldap' }, {}, true }, { d.enabled, d.auth, d.limits,
      d.check_header_from })
    assert.same({ { 'smtp' }, 'smtp.send', 3600, 60, 5, {}, 60, 86400 }, { d.oauth2.audience,
      d.oauth2.scope, d.oauth2.jwks_refresh, d.oauth2.introspection_cache, d.oauth2.timeout,
      d.oauth2.clients, d.oauth2.leeway, d.oauth2.max_token_lifetime })
    assert.is_nil(d.oauth2.client_secret)
    assert.same({ { 'ldaps://ldap.example' }, true, 5, 4 }, { d.ldap.uris, d.ldap.starttls,
      d.ldap.timeout, d.ldap.max_connections })
    assert.is_nil(d.ldap.bind_password)
  end)

  it('lowercases domain names and senders users', function()
    local h = testing.new({ domains = domains(cases.accepted[1]) })
    assert.same({ 'sales@a.example' }, h.domains['a.example'].senders['ann@a.example'])
  end)
end)

describe('sluice.testing sessions', function()
  local h, policy
  before_each(function()
    h = testing.new()
    policy = h:load_policy('tests/lua/fixtures/writes_session.lua')
  end)

  it('refuses a policy\'s assignment to a session field with the engine\'s error', function()
    local session = h:session({ user = 'ann@example.org' })
    local ok, err = pcall(policy.on_mail_from, session, h:transaction(), 'ann@example.org')
    assert.is_false(ok)
    assert.equal('tests/lua/fixtures/writes_session.lua:5: session.user is read-only '
      .. '(notes go in session.data)', err)
    assert.equal('ann@example.org', session.user)
    assert.is_false(getmetatable(session))
  end)

  it('answers such a hook with 451 and a policy.error, as the engine does', function()
    local v = h:run('on_mail_from', { policy }, h:session({ user = 'ann@example.org' }),
      h:transaction(), 'ann@example.org')
    assert.same({ 'tempfail', 451, '4.3.0' }, { v.kind, v.code, v.enhanced })
    assert.matches('session.user is read%-only', h:log_events('policy.error')[1].fields.error)
  end)

  it('lets a policy keep notes in session.data', function()
    local session = h:session()
    assert.is_nil(policy.on_rcpt(session, h:transaction(), 'bob@example.net'))
    assert.equal('bob@example.net', session.data.seen)
  end)

  it('lets the spec, playing the core, set a field', function()
    local session = h:session()
    session.helo = 'other.example'
    assert.equal('other.example', session.helo)
  end)
end)
