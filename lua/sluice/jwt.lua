-- lua/sluice/jwt.lua: JWT access tokens (RFC 7519, RFC 9068) checked by a resource
-- server: the compact JWS split and decoded, the key chosen from a key set by kid, the
-- signature verified (sluice.crypto: RS256, ES256, EdDSA; never "none" or HS*), then the
-- claims: exp, nbf and iat with a leeway, a maximum lifetime, iss, aud and the scope.
-- Which issuer a domain trusts is the caller's to say (policies/oauth2.lua).
--
-- Refusals return nil and a short reason, the `reason` of the token_validation audit
-- event (docs/audit.md): malformed, unsupported_alg, unknown_key, signature, no_expiry,
-- expired, not_yet_valid, lifetime, issuer, audience, scope.
local sluice = require('sluice')
local jwks = require('sluice.jwks')
local cjson = require('cjson.safe')

local jwt = {}

local TOKEN_MAX = 9216 -- octets: the largest secret SASL hands over (core/proto/sasl.h)
local ALGS = { RS256 = true, ES256 = true, EdDSA = true }
-- RFC 9068 2.1 wants "at+jwt"; most providers still send "JWT" or nothing.
local TYPES = { jwt = true, ['at+jwt'] = true, ['application/at+jwt'] = true }

local function json_part(b64)
  local text = sluice.crypto.b64url_decode(b64)
  local v = text and cjson.decode(text)
  if type(v) ~= 'table' or v[1] ~= nil then return nil end -- an object, not a list
  return v
end

-- The token decoded, nothing verified: { header, claims, signing_input, signature },
-- or nil, 'malformed'. policies/oauth2.lua reads the unverified claims only to find which
-- domain's keys must verify them.
function jwt.decode(token)
  if type(token) ~= 'string' or #token > TOKEN_MAX then return nil, 'malformed' end
  local h, p, s = token:match('^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$')
  if not h then return nil, 'malformed' end
  local header, claims = json_part(h), json_part(p)
  local signature = sluice.crypto.b64url_decode(s)
  if not header or not claims or not signature then return nil, 'malformed' end
  return { header = header, claims = claims, signing_input = h .. '.' .. p,
    signature = signature }
end

local function number(v)
  return type(v) == 'number' and v == v and v > -math.huge and v < math.huge
end

local function contains(list_or_string, wanted)
  if type(list_or_string) == 'string' then
    for _, w in ipairs(wanted) do if list_or_string == w then return true end end
    return false
  end
  if type(list_or_string) ~= 'table' then return false end
  for _, v in ipairs(list_or_string) do
    for _, w in ipairs(wanted) do if v == w then return true end end
  end
  return false
end

-- `scope` (RFC 8693 4.2: space-separated) or `scp` (a list, or Entra ID's string).
local function has_scope(claims, scope)
  for _, name in ipairs({ 'scope', 'scp' }) do
    local field = claims[name]
    if type(field) == 'string' then
      for s in field:gmatch('%S+') do if s == scope then return true end end
    elseif type(field) == 'table' then
      for _, s in ipairs(field) do if s == scope then return true end end
    end
  end
  return false
end

-- Signature and header: true, or nil and the reason.
local function check_signature(t, keys)
  local header = t.header
  if type(header.alg) ~= 'string' or not ALGS[header.alg] then return nil, 'unsupported_alg' end
  if header.crit ~= nil then return nil, 'malformed' end -- RFC 7515 4.1.11: we know none
  if header.typ ~= nil and not (type(header.typ) == 'string' and TYPES[header.typ:lower()]) then
    return nil, 'malformed'
  end
  local entry, why = jwks.find(keys, header.kid)
  if not entry then return nil, why end
  if entry.alg ~= header.alg then return nil, 'unsupported_alg' end
  if entry.key:verify(header.alg, t.signing_input, t.signature) ~= true then
    return nil, 'signature'
  end
  return true
end

-- Time claims (RFC 7519 4.1.4, 4.1.5, 4.1.6): true, or nil and the reason.
local function check_times(c, now, leeway, max_lifetime)
  if c.exp == nil then return nil, 'no_expiry' end
  for _, k in ipairs({ 'exp', 'nbf', 'iat' }) do
    if c[k] ~= nil and not number(c[k]) then return nil, 'malformed' end
  end
  if now > c.exp + leeway then return nil, 'expired' end
  if c.nbf and now + leeway < c.nbf then return nil, 'not_yet_valid' end
  if c.iat and now + leeway < c.iat then return nil, 'not_yet_valid' end
  if c.exp - (c.iat or c.nbf or now) > max_lifetime then return nil, 'lifetime' end
  return true
end

-- claims, or nil and the reason. opts: keys (a jwks set), issuer, audience (a string or
-- a list: `aud` must hold one of them), scope (required, nil: none), leeway (seconds,
-- default 60), max_lifetime (seconds, default 86400), now (default sluice.now()).
-- t is a token string or what jwt.decode returned.
function jwt.verify(t, opts)
  if type(t) ~= 'table' then
    local why
    t, why = jwt.decode(t)
    if not t then return nil, why end
  end
  local ok, why = check_signature(t, opts.keys)
  if not ok then return nil, why end
  return jwt.check_claims(t.claims, opts)
end

-- The claim checks of jwt.verify alone, for claims whose origin is already trusted (a
-- verified signature, or an RFC 7662 introspection answer, policies/oauth2.lua): c, or
-- nil and the reason. opts as jwt.verify's (keys unused), plus issuer_optional: an
-- absent `iss` passes (RFC 7662 2.2 makes every field but `active` optional; the answer
-- came from the configured endpoint over TLS).
function jwt.check_claims(c, opts)
  local ok, why = check_times(c, opts.now or sluice.now(), opts.leeway or 60,
    opts.max_lifetime or 86400)
  if not ok then return nil, why end
  if c.iss ~= opts.issuer and not (opts.issuer_optional and c.iss == nil) then
    return nil, 'issuer'
  end
  local audience = type(opts.audience) == 'table' and opts.audience or { opts.audience }
  if not contains(c.aud, audience) then return nil, 'audience' end
  if opts.scope and not has_scope(c, opts.scope) then return nil, 'scope' end
  return c
end

return jwt
