-- policies/oauth2.lua with keys from a jwks_url and opaque tokens checked by RFC 7662
-- introspection, over the double's fake HTTP (lua/sluice/testing_http.lua).
local testing = require('sluice.testing')
local json = require('sluice.json')
local testing_http = require('sluice.testing_http')

local NOW = 1700000000
local JWKS_URL = 'https://idp.example/jwks'
local INTROSPECT_URL = 'https://idp.example/introspect'
local KEY1 = testing.jwk('idp-key-1')
local KEY2 = testing.jwk('idp-key-2', 'EC')
local OPAQUE = 'opaque-Token_0123456789'

local function domains(over)
  local o = { issuer = 'https://idp.example', audience = 'smtp://relay.test',
    jwks_url = JWKS_URL, jwks_refresh = 600, introspection_url = INTROSPECT_URL,
    client_id = 'relay', client_secret = 's3cr:et', introspection_cache = 300,
    clients = { 'mail-app' } }
  for k, v in pairs(over or {}) do
    if v == false then o[k] = nil else o[k] = v end
  end
  return { ['example.org'] = { auth = { 'oauth2' }, oauth2 = o } }
end

local function claims(over)
  local c = { iss = 'https://idp.example', aud = 'smtp://relay.test', sub = 'u-1',
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

local ACCEPT = { 'accept' }
local INVALID = { 'reject', 535, '5.7.8' }
local TEMPFAIL = { 'tempfail', 454, '4.7.0' }

describe('policies/oauth2 with a jwks_url', function()
  local h, policy, session, served, fetches

  before_each(function()
    h = testing.new({ now = NOW, domains = domains() })
    served, fetches = { KEY1 }, 0
    h:http_route(JWKS_URL, function(req)
      fetches = fetches + 1
      assert.equal('GET', req.method)
      return 200, json.encode({ keys = served })
    end)
    policy = h:load_policy('policies/oauth2.lua')
    session = h:session()
  end)

  local function auth_with(key, over)
    return policy.on_auth(session, { mechanism = 'XOAUTH2', user = 'alice@example.org',
      token = testing.token(key, claims(over)) })
  end

  it('fetches the key set on first use, not at load', function()
    assert.equal(0, fetches)
    assert.same(ACCEPT, whole(auth_with(KEY1)))
    assert.equal(1, fetches)
  end)

  it('serves every later check from the shared dictionary until jwks_refresh', function()
    auth_with(KEY1)
    local again = h:load_policy('policies/oauth2.lua') -- another worker's state
    assert.same(ACCEPT, whole(again.on_auth(session, { mechanism = 'XOAUTH2',
      user = 'alice@example.org', token = testing.token(KEY1, claims()) })))
    assert.equal(1, fetches)
    h:advance(601)
    assert.same(ACCEPT, whole(auth_with(KEY1, { iat = NOW + 590, exp = NOW + 1200 })))
    assert.equal(2, fetches)
  end)

  it('refetches once for an unknown kid, so a rotated key works at once', function()
    auth_with(KEY1)
    served = { KEY1, KEY2 }
    assert.same(ACCEPT, whole(auth_with(KEY2)))
    assert.equal(2, fetches)
  end)

  it('refetches for unknown kids at most once a minute per URL', function()
    auth_with(KEY1)
    local bogus = testing.jwk('bogus-1')
    assert.same(INVALID, whole(auth_with(bogus)))
    assert.same(INVALID, whole(auth_with(testing.jwk('bogus-2'))))
    assert.equal(2, fetches)
    assert.equal('unknown_key', h:audit_events('token_validation')[2].reason)
    h:advance(61)
    served = { KEY1, KEY2 }
    assert.same(ACCEPT, whole(auth_with(KEY2, { exp = NOW + 900 })))
    assert.equal(3, fetches)
  end)

  it('answers 454 4.7.0 when the key set cannot be fetched and none is cached', function()
    h:http_route(JWKS_URL, function() return nil, 'connection refused' end)
    assert.same(TEMPFAIL, whole(auth_with(KEY1)))
    assert.equal('oauth2.jwks_fetch_failed', h:log_events('oauth2.jwks_fetch_failed')[1].event)
    assert.equal(1, #h:log_events('oauth2.keys_unavailable'))
  end)

  it('answers 454 for a 5xx or a body that is not a key set', function()
    h:http_route(JWKS_URL, function() return 503, 'busy' end)
    assert.same(TEMPFAIL, whole(auth_with(KEY1)))
    h:advance(6) -- past the failure backoff
    h:http_route(JWKS_URL, function() return 200, '<html>' end)
    assert.same(TEMPFAIL, whole(auth_with(KEY1)))
  end)

  it('does not ask a failing IdP again within the backoff', function()
    local calls = 0
    h:http_route(JWKS_URL, function() calls = calls + 1; return nil, 'timed out' end)
    auth_with(KEY1)
    auth_with(KEY1)
    assert.equal(1, calls)
  end)

  it('keeps using the stale key set when a refresh fails', function()
    auth_with(KEY1)
    h:advance(601)
    h:http_route(JWKS_URL, function() return nil, 'connection refused' end)
    assert.same(ACCEPT, whole(auth_with(KEY1, { iat = NOW + 590, exp = NOW + 1200 })))
  end)
end)

describe('policies/oauth2 introspection of opaque tokens', function()
  local h, policy, session, answer, calls

  before_each(function()
    h = testing.new({ now = NOW, domains = domains() })
    answer, calls = claims({ active = true }), 0
    h:http_route(INTROSPECT_URL, function(req)
      calls = calls + 1
      if type(answer) == 'function' then return answer(req) end
      return 200, json.encode(answer)
    end)
    policy = h:load_policy('policies/oauth2.lua')
    session = h:session()
  end)

  local function auth(token, user)
    return policy.on_auth(session, { mechanism = 'OAUTHBEARER',
      user = user or 'alice@example.org', token = token or OPAQUE })
  end

  it('POSTs the token with a hint and HTTP Basic client authentication', function()
    assert.same(ACCEPT, whole(auth()))
    local req = h.http_requests[1]
    assert.equal('POST', req.method)
    assert.same({ token = OPAQUE, token_type_hint = 'access_token' },
      testing_http.form_decode(req.body))
    -- RFC 6749 2.3.1: each part form-encoded, then base64
    assert.equal('Basic cmVsYXk6czNjciUzQWV0', req.headers.Authorization)
    local e = h:audit_events('token_validation')[1]
    assert.same({ true, 'alice@example.org', 'mail-app' }, { e.success, e.email, e.client_id })
  end)

  it('refuses an inactive token with 535 and remembers that for 30 s', function()
    answer = { active = false }
    assert.same(INVALID, whole(auth()))
    assert.equal('inactive', h:audit_events('token_validation')[1].reason)
    auth()
    assert.equal(1, calls)
    h:advance(31)
    auth()
    assert.equal(2, calls)
  end)

  it('caches an active answer for introspection_cache, under a hash of the token', function()
    auth()
    auth()
    assert.equal(1, calls)
    assert.is_not_nil(next(h.stores.auth_cache))
    for key in pairs(h.stores.auth_cache) do assert.is_nil(key:find(OPAQUE, 1, true)) end
    answer = { active = false } -- revoked at the IdP
    h:advance(299)
    assert.same(ACCEPT, whole(auth()))
    h:advance(2)
    assert.same(INVALID, whole(auth()))
    assert.equal(2, calls)
  end)

  it('never keeps an answer past the token\'s exp', function()
    answer = claims({ active = true, exp = NOW + 40 })
    auth()
    h:advance(41)
    answer = claims({ active = true, exp = NOW + 400 })
    assert.same(ACCEPT, whole(auth()))
    assert.equal(2, calls)
  end)

  it('applies the JWT claim checks to the answer', function()
    local cases = {
      { { exp = NOW - 100 }, 'expired' }, { { exp = false }, 'no_expiry' },
      { { aud = 'other' }, 'audience' }, { { iss = 'https://evil' }, 'issuer' },
      { { scope = 'openid' }, 'scope' }, { { azp = 'other-app' }, 'client' },
      { { email = 'bob@example.org', sub = 'bob@example.org' }, 'user_mismatch' },
    }
    for i, c in ipairs(cases) do
      answer = claims(c[1])
      answer.active = true
      assert.same(INVALID, whole(auth('opaque-' .. i)))
      assert.equal(c[2], h:audit_events('token_validation')[i].reason)
    end
  end)

  it('accepts an answer without iss, and takes username as the identity', function()
    answer = claims({ iss = false, email = false, sub = 'x-1', username = 'alice@example.org' })
    answer.active = true
    assert.same(ACCEPT, whole(auth()))
  end)

  it('refuses a token on the deny-list even when the IdP says active', function()
    h.zones.denylist:set('oauth2:deny:jti:jti-1', true)
    assert.same(INVALID, whole(auth()))
    assert.equal('revoked', h:audit_events('token_validation')[1].reason)
  end)

  it('answers 454 4.7.0 when the endpoint is down, slow or failing', function()
    for i, a in ipairs({ function() return nil, 'timed out' end,
                         function() return 500, 'oops' end,
                         function() return 200, 'not json' end }) do
      answer = a
      assert.same(TEMPFAIL, whole(auth('opaque-down-' .. i)))
    end
    assert.equal(3, #h:log_events('oauth2.introspection_unavailable'))
    assert.same({}, h:audit_events('token_validation'))
  end)

  it('asks the only introspecting domain when OAUTHBEARER names no user', function()
    local v = auth(nil, '')
    assert.same(ACCEPT, whole(v))
    assert.equal('alice@example.org', v.user)
  end)

  it('refuses an opaque token for a domain without introspection as malformed', function()
    h = testing.new({ now = NOW, domains = domains({ introspection_url = false,
      client_id = false, client_secret = false }) })
    policy = h:load_policy('policies/oauth2.lua')
    assert.same(INVALID, whole(auth()))
    assert.equal('malformed', h:audit_events('token_validation')[1].reason)
    assert.same({}, h.http_requests)
  end)
end)
