local testing = require('sluice.testing')

local NOW = 1700000000
local KEY = testing.jwk('idp-key-1')
local DEV = testing.jwk('sluice-dev-0123')

local function oauth2(jwks_file, over)
  local o = { issuer = 'https://idp.example', audience = 'smtp://relay.test',
    jwks_file = jwks_file, clients = { 'mail-app', 'scanner' } }
  for k, v in pairs(over or {}) do o[k] = v end
  return o
end

local function domains(file, dev_file)
  return {
    ['example.org'] = { auth = { 'file', 'oauth2' }, oauth2 = oauth2(file) },
    ['bücher.example'] = { auth = { 'oauth2' }, oauth2 = oauth2(file, { clients = {} }) },
    ['disabled.example'] = { enabled = false, auth = { 'oauth2' }, oauth2 = oauth2(file) },
    ['password.example'] = {},
    ['dev.example'] = { auth = { 'oauth2' }, oauth2 = oauth2(dev_file) },
  }
end

local function claims(over)
  local c = { iss = 'https://idp.example', aud = 'smtp://relay.test', sub = 'u-1234',
    email = 'alice@example.org', azp = 'mail-app', scope = 'smtp.send', iat = NOW - 5,
    exp = NOW + 600, jti = 'jti-1' }
  for k, v in pairs(over or {}) do
    if v == false then c[k] = nil else c[k] = v end
  end
  return c
end

local function whole(v)
  return { v.kind, v.code, v.enhanced }
end

describe('policies/oauth2', function()
  local file, dev_file, h, policy, session
  setup(function()
    file = testing.jwks_file({ KEY, testing.jwk('idp-key-2', 'RSA') })
    dev_file = testing.jwks_file({ DEV })
  end)
  teardown(function()
    os.remove(file)
    os.remove(dev_file)
  end)
  before_each(function()
    h = testing.new({ now = NOW, domains = domains(file, dev_file) })
    policy = h:load_policy('policies/oauth2.lua')
    session = h:session()
  end)

  local function auth(token, user, mech)
    return { mechanism = mech or 'XOAUTH2', user = user or 'alice@example.org', token = token }
  end

  local function token(over, opts)
    return testing.token((opts or {}).key or KEY, claims(over), opts)
  end

  local function refused_for(reason, v, code)
    assert.same({ 'reject', code or 535, code == 525 and '5.7.13' or '5.7.8' }, whole(v))
    local events = h:audit_events('token_validation')
    assert.equal(1, #events)
    assert.same({ false, reason }, { events[1].success, events[1].reason })
    return events[1]
  end

  describe('on_auth', function()
    it('leaves passwords to policies/auth.lua', function()
      assert.is_nil(policy.on_auth(session, { mechanism = 'PLAIN', user = 'a@example.org',
        password = 'x' }))
      assert.same({}, h:audit_events('token_validation'))
    end)

    it('accepts a good token for the SASL identity and audits it', function()
      assert.same({ 'accept' }, whole(policy.on_auth(session, auth(token()))))
      local e = h:audit_events('token_validation')[1]
      assert.same({ true, 'alice@example.org', 'example.org', 'mail-app', 'jti-1', 'XOAUTH2',
        '192.0.2.10', session.id }, { e.success, e.email, e.domain, e.client_id, e.jti,
        e.method, e.ip_address, e.session_id })
      assert.is_nil(e.reason)
    end)

    it('compares the identity case-insensitively and IDN-equal', function()
      local t = token({ email = 'dora@bücher.example' })
      assert.same({ 'accept' }, whole(policy.on_auth(session,
        auth(t, 'Dora@XN--BCHER-KVA.example', 'OAUTHBEARER'))))
    end)

    it('takes the identity from the token when OAUTHBEARER has no a=', function()
      local s = h:session()
      local v = h:auth({ policy }, s, auth(token({ email = 'Alice@Example.org' }), '',
        'OAUTHBEARER'))
      assert.same({ 'accept' }, whole(v))
      assert.same({ 'alice@example.org', 'example.org', 'OAUTHBEARER' },
        { s.user, s.domain, s.auth_mechanism })
    end)

    it('takes an address-shaped sub when there is no email claim', function()
      assert.same({ 'accept' }, whole(policy.on_auth(session,
        auth(token({ email = false, sub = 'alice@example.org' })))))
    end)

    it('accepts any client when the domain lists none', function()
      local t = token({ email = 'dora@xn--bcher-kva.example', azp = 'whatever' })
      assert.same({ 'accept' }, whole(policy.on_auth(session, auth(t,
        'dora@xn--bcher-kva.example'))))
    end)

    it('refuses a token that is not a JWT', function()
      refused_for('malformed', policy.on_auth(session, auth('ya29.opaque-token')))
    end)

    it('refuses a token of a domain that is not declared', function()
      local e = refused_for('unknown_domain', policy.on_auth(session,
        auth(token({ email = 'eve@elsewhere.example' }), 'eve@elsewhere.example')))
      assert.equal('elsewhere.example', e.domain)
    end)

    it('refuses a token of a domain without oauth2 in its auth list', function()
      refused_for('not_allowed', policy.on_auth(session,
        auth(token({ email = 'pat@password.example' }), 'pat@password.example')))
    end)

    it('refuses an expired token', function()
      refused_for('expired', policy.on_auth(session, auth(token({ exp = NOW - 61 }))))
    end)

    it('refuses a token signed by a key the domain does not trust', function()
      refused_for('unknown_key', policy.on_auth(session,
        auth(token(nil, { key = testing.jwk('stranger') }))))
    end)

    it('refuses a forged signature under a trusted kid', function()
      refused_for('signature', policy.on_auth(session,
        auth(token(nil, { key = testing.jwk('stranger', 'OKP', 'idp-key-1') }))))
    end)

    it('refuses a token for another audience, issuer or scope', function()
      refused_for('audience', policy.on_auth(session, auth(token({ aud = 'https://api' }))))
      h = testing.new({ now = NOW, domains = domains(file, dev_file) })
      policy = h:load_policy('policies/oauth2.lua')
      refused_for('issuer', policy.on_auth(session, auth(token({ iss = 'https://x' }))))
      h = testing.new({ now = NOW, domains = domains(file, dev_file) })
      policy = h:load_policy('policies/oauth2.lua')
      refused_for('scope', policy.on_auth(session, auth(token({ scope = 'openid' }))))
    end)

    it('refuses a token living longer than max_token_lifetime', function()
      refused_for('lifetime', policy.on_auth(session,
        auth(token({ iat = NOW - 5, exp = NOW + 86400 }))))
    end)

    it('refuses a token for bob presented as alice', function()
      local e = refused_for('user_mismatch', policy.on_auth(session,
        auth(token({ email = 'bob@example.org' }), 'alice@example.org')))
      assert.equal('bob@example.org', e.email)
    end)

    it('refuses a domain claim that is not the email\'s domain', function()
      refused_for('user_mismatch', policy.on_auth(session,
        auth(token({ domain = 'example.org', email = 'alice@bücher.example' }))))
    end)

    it('refuses a token that names nobody', function()
      refused_for('no_identity', policy.on_auth(session,
        auth(token({ email = false, domain = 'example.org' }), '', 'OAUTHBEARER')))
    end)

    it('refuses a client the domain does not allow', function()
      local e = refused_for('client', policy.on_auth(session, auth(token({ azp = 'rogue' }))))
      assert.equal('rogue', e.client_id)
      h = testing.new({ now = NOW, domains = domains(file, dev_file) })
      policy = h:load_policy('policies/oauth2.lua')
      assert.same({ 'accept' }, whole(policy.on_auth(session,
        auth(token({ azp = false, client_id = 'scanner' })))))
    end)

    for _, by in ipairs({ { 'jti', 'jti-1' }, { 'sub', 'u-1234' }, { 'client', 'mail-app' } }) do
      it('refuses a token denied by ' .. by[1] .. ' until the entry expires', function()
        h.zones.denylist:set('oauth2:deny:' .. by[1] .. ':' .. by[2], true, 300)
        refused_for('revoked', policy.on_auth(session, auth(token())))
        h:advance(301)
        assert.same({ 'accept' }, whole(policy.on_auth(session,
          auth(token({ iat = NOW + 296, exp = NOW + 900 })))))
      end)
    end

    it('leaves other tokens alone when one is denied', function()
      h.zones.denylist:set('oauth2:deny:jti:jti-2', true)
      assert.same({ 'accept' }, whole(policy.on_auth(session, auth(token()))))
    end)

    it('finds a long jti under its bounded key, as sluice ctl writes it', function()
      local jti = ('j'):rep(300)
      local key = 'oauth2:deny:jti:~' .. h.core.crypto.sha256(jti, 'hex')
      h.zones.denylist:set(key, true)
      refused_for('revoked', policy.on_auth(session, auth(token({ jti = jti }))))
      assert.same({ 'accept' }, whole(policy.on_auth(session,
        auth(token({ jti = jti .. 'x' })))))
    end)

    it('answers 454 4.7.0 to every token while a deny could not be written', function()
      h = testing.new({ now = NOW, domains = domains(file, dev_file),
        zones = { denylist = { size = '32k' } } })
      policy = h:load_policy('policies/oauth2.lua')
      h.zones.denylist:set('oauth2:deny:client:scanner', true)
      local n = 0
      repeat n = n + 1 until not h.zones.denylist:set('oauth2:deny:jti:x' .. n, true)
      -- a token the list names is still refused as revoked, by any of its three names
      refused_for('revoked', policy.on_auth(session,
        auth(token({ azp = false, client_id = 'scanner' }))))
      h.audits = {}
      assert.same({ 'tempfail', 454, '4.7.0' }, whole(policy.on_auth(session, auth(token()))))
      assert.equal(1, #h:log_events('oauth2.denylist_unavailable'))
      assert.same({}, h:audit_events('token_validation'))
      h.zones.denylist:delete('oauth2:deny:jti:x1')  -- room again, and a deny succeeds:
      assert.is_true(h.zones.denylist:set('oauth2:deny:jti:jti-9', true))
      assert.same({ 'accept' }, whole(policy.on_auth(session, auth(token()))))
    end)

    it('answers a good token of a disabled domain with 525 5.7.13', function()
      refused_for('disabled', policy.on_auth(session,
        auth(token({ email = 'erin@disabled.example' }), 'erin@disabled.example')), 525)
    end)

    it('gives a bad token of a disabled domain the usual 535', function()
      refused_for('expired', policy.on_auth(session,
        auth(token({ email = 'erin@disabled.example', exp = NOW - 100 }),
          'erin@disabled.example')))
    end)

    it('never writes the token to the audit or the log', function()
      local t = token({ azp = 'rogue' })
      policy.on_auth(session, auth(t))
      local text = require('sluice.json').encode({ h.audits, h.logs })
      assert.is_nil(text:find(t:sub(-20), 1, true))
      assert.equal(1, #h:log_events('oauth2.refuse'))
    end)
  end)

  describe('in the chain after auth.lua', function()
    it('decides tokens; the engine default no longer refuses them', function()
      local chain = { h:load_policy('policies/auth.lua'), h:load_policy('policies/oauth2.lua') }
      assert.same({ 'accept' }, whole(h:auth(chain, h:session(), auth(token()))))
      assert.same({ 'reject', 535, '5.7.8' }, whole(h:auth(chain, h:session(),
        auth(token({ exp = NOW - 100 })))))
    end)
  end)

  describe('when loaded', function()
    -- As the configuration check loads it (start, reload, `sluice check`): without the
    -- shared zones, whose methods raise there (core/policy/lapi_zone.c).
    local function load_as_the_check(hh)
      local zone = hh.core.zone
      hh.core.zone = function(name)
        local z = zone(name)
        return setmetatable({}, { __index = function(_, k)
          if type(z[k]) ~= 'function' then return z[k] end
          return function() error('sluice.zone:' .. k .. ': not available here') end
        end })
      end
      local ok, err = pcall(hh.load_policy, hh, 'policies/oauth2.lua')
      hh.core.zone = zone
      assert(ok, err)
    end

    it('warns in the configuration check that a domain trusts the sluice token dev key',
      function()
      local h2 = testing.new({ now = NOW, domains = domains(file, dev_file) })
      load_as_the_check(h2)
      local w = h2:log_events('oauth2.dev_key')
      assert.equal(1, #w)
      assert.same({ 'warning', 'dev.example', 'sluice-dev-0123' },
        { w[1].level, w[1].fields.domain, w[1].fields.kid })
    end)

    it('does not warn again in each worker, which has the zones: once per start', function()
      assert.same({}, h:log_events('oauth2.dev_key'))
    end)

    it('does not warn for a configuration without the dev key', function()
      local d = domains(file, dev_file)
      d['dev.example'] = nil
      local h2 = testing.new({ now = NOW, domains = d })
      load_as_the_check(h2)
      assert.same({}, h2:log_events('oauth2.dev_key'))
    end)

    it('fails to load when a JWKS file cannot be used, naming the domain and file', function()
      local bad = testing.jwks_file({ { kty = 'RSA', n = 'AQAB', e = 'AQAB' } })
      local h2 = testing.new({ domains = { ['example.org'] = { auth = { 'oauth2' },
        oauth2 = oauth2(bad) } } })
      local ok, err = pcall(h2.load_policy, h2, 'policies/oauth2.lua')
      os.remove(bad)
      assert.is_false(ok)
      assert.matches("domains%['example.org'%]%.oauth2%.jwks_file: .*no usable signing key", err)
    end)
  end)
end)
