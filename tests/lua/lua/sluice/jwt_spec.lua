local testing = require('sluice.testing')

local NOW = 1700000000
local KEY = testing.jwk('issuer-key-1')

local function claims(over)
  local c = { iss = 'https://idp.example', aud = 'smtp', sub = 'ann@example.org',
    scope = 'openid smtp.send', iat = NOW - 10, exp = NOW + 3600, jti = 'j1' }
  for k, v in pairs(over or {}) do
    if v == false then c[k] = nil else c[k] = v end -- false: leave the claim out
  end
  return c
end

describe('sluice.jwt', function()
  local h, jwt, jwks, keys, opts
  before_each(function()
    h = testing.new({ now = NOW })
    jwt = h:require('sluice.jwt')
    jwks = h:require('sluice.jwks')
    keys = assert(jwks.parse(require('sluice.json').encode({ keys = { KEY,
      testing.jwk('issuer-key-2', 'EC') } })))
    opts = { keys = keys, issuer = 'https://idp.example', audience = { 'smtp' },
      scope = 'smtp.send' }
  end)

  local function verify(token, o)
    local all = {}
    for k, v in pairs(opts) do all[k] = v end
    for k, v in pairs(o or {}) do all[k] = v end
    return jwt.verify(token, all)
  end

  it('returns the claims of a good token', function()
    local c = assert(verify(testing.token(KEY, claims())))
    assert.same({ 'ann@example.org', 'j1' }, { c.sub, c.jti })
  end)

  it('picks the key by kid among several', function()
    local ec = testing.jwk('issuer-key-2', 'EC')
    assert.is_table(verify(testing.token(ec, claims())))
  end)

  it('uses the only key of a set for a token without kid', function()
    local one = assert(jwks.parse(require('sluice.json').encode({ keys = { KEY } })))
    assert.is_table(verify(testing.token(KEY, claims(), { kid = false }), { keys = one }))
    assert.same({ nil, 'unknown_key' }, { verify(testing.token(KEY, claims(), { kid = false })) })
  end)

  local refusals = {
    { 'malformed', 'a token that is not three base64url parts', 'abc.def' },
    { 'malformed', 'a payload that is not JSON', function()
      return testing.token(KEY, nil, { raw_payload = 'not json' }) end },
    { 'malformed', 'a payload that is a list', function()
      return testing.token(KEY, nil, { raw_payload = '[1,2]' }) end },
    { 'unsupported_alg', 'alg none', function()
      return testing.token(KEY, claims(), { alg = 'none' }) end },
    { 'unsupported_alg', 'HS256 (a resource server holds no shared secret)', function()
      return testing.token(KEY, claims(), { alg = 'HS256' }) end },
    { 'unsupported_alg', 'an alg that does not fit the key', function()
      return testing.token(KEY, claims(), { alg = 'ES256' }) end },
    { 'malformed', 'a crit header', function()
      return testing.token(KEY, claims(), { header = { crit = { 'exp' } } }) end },
    { 'malformed', 'a typ that is not a JWT', function()
      return testing.token(KEY, claims(), { header = { typ = 'dpop+jwt' } }) end },
    { 'unknown_key', 'a kid the set does not have', function()
      return testing.token(testing.jwk('other'), claims()) end },
    { 'signature', 'a signature by another key under a known kid', function()
      return testing.token(testing.jwk('other', 'OKP', 'issuer-key-1'), claims()) end },
    { 'signature', 'a tampered payload', function()
      local t = testing.token(KEY, claims())
      local other = testing.token(KEY, claims({ sub = 'eve@example.org' }))
      local a = t:match('^[^.]+%.'); local b = other:match('%.([^.]+)%.')
      return a .. b .. t:match('%.[^.]+$') end },
    { 'no_expiry', 'no exp', function() return testing.token(KEY, claims({ exp = false })) end },
    { 'malformed', 'an exp that is not a number', function()
      return testing.token(KEY, claims({ exp = 'soon' })) end },
    { 'expired', 'exp past the leeway', function()
      return testing.token(KEY, claims({ iat = NOW - 3600, exp = NOW - 61 })) end },
    { 'not_yet_valid', 'nbf ahead of the leeway', function()
      return testing.token(KEY, claims({ nbf = NOW + 61 })) end },
    { 'not_yet_valid', 'iat in the future', function()
      return testing.token(KEY, claims({ iat = NOW + 120 })) end },
    { 'lifetime', 'exp - iat over the maximum', function()
      return testing.token(KEY, claims({ iat = NOW - 10, exp = NOW - 10 + 86401 })) end },
    { 'issuer', 'another issuer', function()
      return testing.token(KEY, claims({ iss = 'https://evil.example' })) end },
    { 'audience', 'another audience', function()
      return testing.token(KEY, claims({ aud = { 'api', 'web' } })) end },
    { 'scope', 'no smtp.send scope', function()
      return testing.token(KEY, claims({ scope = 'openid email' })) end },
  }
  for _, r in ipairs(refusals) do
    it('refuses ' .. r[2] .. ' as ' .. r[1], function()
      local token = type(r[3]) == 'function' and r[3]() or r[3]
      assert.same({ nil, r[1] }, { verify(token) })
    end)
  end

  it('accepts exp and nbf within the leeway', function()
    assert.is_table(verify(testing.token(KEY, claims({ exp = NOW - 59, iat = NOW - 100 }))))
    assert.is_table(verify(testing.token(KEY, claims({ nbf = NOW + 59 }))))
    assert.same({ nil, 'expired' },
      { verify(testing.token(KEY, claims({ exp = NOW - 11, iat = NOW - 100 })), { leeway = 10 }) })
  end)

  it('finds the scope in scp, as a list or a string', function()
    assert.is_table(verify(testing.token(KEY, claims({ scope = false, scp = { 'smtp.send' } }))))
    assert.is_table(verify(testing.token(KEY, claims({ scope = false, scp = 'a smtp.send' }))))
    assert.same({ nil, 'scope' },
      { verify(testing.token(KEY, claims({ scope = 'smtp.sendx' }))) })
  end)

  it('takes any of the configured audiences, in a string or a list aud', function()
    assert.is_table(verify(testing.token(KEY, claims({ aud = { 'x', 'smtp' } }))))
    assert.is_table(verify(testing.token(KEY, claims({ aud = 'b' })), { audience = { 'a', 'b' } }))
  end)

  it('measures the lifetime from nbf, or from now, without iat', function()
    assert.same({ nil, 'lifetime' }, { verify(testing.token(KEY,
      claims({ iat = false, nbf = NOW - 10, exp = NOW + 86400 }))) })
    assert.is_table(verify(testing.token(KEY, claims({ iat = false, exp = NOW + 86000 }))))
  end)
end)

describe('sluice.jwks', function()
  local h, jwks, json
  before_each(function()
    h = testing.new()
    jwks = h:require('sluice.jwks')
    json = h:require('sluice.json')
  end)

  it('skips keys not for signatures or of a type it does not take, and keeps the rest', function()
    local set = assert(jwks.parse(json.encode({ keys = {
      { kty = 'RSA', use = 'enc', kid = 'e', n = 'AQAB', e = 'AQAB' },
      { kty = 'oct', kid = 's', k = 'c2VjcmV0' },
      testing.jwk('good'),
    } })))
    assert.same({ 1, 2 }, { #set.list, #set.skipped })
    assert.is_table(set.by_kid.good)
  end)

  it('refuses a set with no usable key, saying why', function()
    local set, err = jwks.parse(json.encode({ keys = { { kty = 'RSA', n = 'AQAB', e = 'AQAB' } } }))
    assert.is_nil(set)
    assert.matches('no usable signing key %(key 1: RSA key of 24 bits', err)
    assert.same({ nil, 'not a JWKS (expected {"keys": [...]})' }, { jwks.parse('[]') })
  end)

  it('skips keys whose members are a length off or carry a NUL, as the engine does', function()
    local good = testing.jwk('good')
    local x44 = good.x .. 'A' -- 33 octets: the report's 44-character x
    local set = assert(jwks.parse(json.encode({ keys = {
      { kty = 'OKP', crv = 'Ed25519', kid = 'long', x = x44 },
      { kty = 'OKP', crv = 'Ed25519', kid = 'nul', x = good.x .. '\0' },
      { kty = 'RSA', kid = 'e17', n = string.rep('gICA', 86), e = 'AQAAAAAAAAAAAAAAAAAAAAE' },
      good,
    } })))
    assert.same({ 1, 3 }, { #set.list, #set.skipped })
    assert.same({
      "key 1: member 'x' has the wrong length: 33 octets, not 32",
      "key 2: member 'x' has a NUL in it",
      "key 3: member 'e' is too long: 17 octets, at most 16",
    }, set.skipped)
  end)

  it('marks a set holding a sluice token dev key', function()
    local set = assert(jwks.parse(json.encode({ keys = { testing.jwk('sluice-dev-abc') } })))
    assert.equal('sluice-dev-abc', set.dev)
  end)

  it('reads a file once per state and names it in errors', function()
    local path = testing.jwks_file({ testing.jwk('k') })
    local a = assert(jwks.load_file(path))
    os.remove(path)
    assert.equal(a, jwks.load_file(path))
    local missing, err = jwks.load_file(path .. '.none')
    assert.is_nil(missing)
    assert.matches('No such file', err)
  end)
end)
