-- policies/oauth2.lua: decides AUTH for bearer tokens (XOAUTH2, OAUTHBEARER); passwords
-- are policies/auth.lua's. sluice is the resource server: it checks a JWT access token
-- locally (lua/sluice/jwt.lua) against the keys of the issuer the token's domain trusts
-- (domains[...].oauth2, docs/authentication.md: a jwks_file, or a jwks_url fetched and
-- refreshed by lua/sluice/jwks.lua, refetched once on an unknown kid), or an opaque token
-- (not three base64url parts) at the RFC 7662 introspection endpoint of the SASL
-- identity's domain, with the answers cached in the zone auth_cache under a hash of the
-- token (never past its exp; "inactive" for INACTIVE_TTL seconds). The same claim checks then
-- apply to both (exp, iss when present, aud, scope), then who may use it:
--  * the domain comes from the token (its `domain` claim, else its email's domain) and
--    must be declared, list 'oauth2' in its `auth`, and be enabled;
--  * the token's `email` (or an address-shaped `sub`) must be the SASL identity; with
--    OAUTHBEARER's a= left empty, the token names the user;
--  * its client (azp / client_id) must be one of the domain's `clients`, if it lists any;
--  * its jti, sub and client must not be on the deny-list in the zone denylist, written
--    by `sluice ctl token deny` (lua/sluice/denylist.lua, which owns its keys, is what
--    both this policy and the control socket call). That zone is never
--    evicted; when it could not take a deny (full), a miss cannot be trusted, and every
--    token gets 454 4.7.0 until a deny succeeds again (fail closed, docs/security.md).
-- A refusal is 535 5.7.8, which the core sends after the RFC 7628 error challenge; a
-- good token for a disabled domain is 525 5.7.13, as a good password is (auth.lua). Keys
-- or an introspection endpoint that cannot be reached give 454 4.7.0.
-- Every decision raises the token_validation audit event (docs/audit.md).
local sluice = require('sluice')
local address = require('sluice.address')
local domains = require('sluice.domains')
local idna = require('sluice.idna')
local jwks = require('sluice.jwks')
local jwt = require('sluice.jwt')
local cjson = require('cjson.safe')

local INVALID = 'Authentication credentials invalid'
local DISABLED = 'Accounts of this domain are disabled, ask your administrator'
local denylist = require('sluice.denylist')
local cache = sluice.zone('auth_cache')
local INTROSPECT_PREFIX = 'oauth2:introspect:'
local INACTIVE_TTL = 30 -- seconds an "active": false answer is remembered
-- The fields of an introspection answer that the checks read (and that the cache keeps).
local FIELDS = { 'active', 'exp', 'iat', 'nbf', 'iss', 'aud', 'scope', 'scp', 'client_id',
  'azp', 'sub', 'email', 'username', 'jti', 'domain' }

local function has(list, wanted)
  for _, v in ipairs(list or {}) do if v == wanted then return true end end
  return false
end

local function uses_oauth2(cfg)
  return cfg and cfg.oauth2 and has(cfg.auth, 'oauth2')
end

-- At load: read every key set a domain trusts, so that a missing or broken JWKS file
-- fails `sluice check`, the start or the reload (the old generation stays), and say it
-- loudly when one of them is the per-install dev key of `sluice token`: once per start,
-- reload or check. Each of those loads the policies first in a state that only checks
-- them, without the shared zones (their methods raise there: daemon_setup.c), then once
-- in every worker; only the check says it.
local in_config_check = not pcall(denylist.get, 'jti', 'load')
for name, cfg in pairs(sluice.domains) do
  if uses_oauth2(cfg) and cfg.oauth2.jwks_file then -- a jwks_url is fetched on first use
    local set, err = jwks.for_domain(cfg.oauth2)
    if not set then
      error(('policies/oauth2.lua: domains[\'%s\'].oauth2.jwks_file: %s'):format(name, err), 0)
    end
    if set.dev and in_config_check then
      sluice.log('warning', 'oauth2.dev_key', { domain = name, kid = set.dev,
        jwks_file = cfg.oauth2.jwks_file,
        message = 'this domain accepts tokens minted by `sluice token`: for trying out only' })
    end
  end
end

-- The address a token is for: `email`, else `sub` when it is an address (Google and
-- Entra ID put an opaque id in `sub`; Keycloak can be set to either).
local function token_identity(claims)
  for _, name in ipairs({ 'email', 'sub', 'username' }) do -- username: RFC 7662 2.2
    local v = claims[name]
    if type(v) == 'string' and v:find('@', 1, true) then
      local n = address.normalize(v)
      if n then return n end
    end
  end
  return nil
end

local function client_of(claims)
  local c = claims.azp or claims.client_id
  return type(c) == 'string' and c or nil
end

-- What an operator denied this token by ('jti', 'sub' or 'client'), or nil; or nil and
-- why the deny-list cannot answer ('full': a deny could not be written).
local function denied(claims)
  local why
  for _, kv in ipairs({ { 'jti', claims.jti }, { 'sub', claims.sub },
                        { 'client', client_of(claims) } }) do
    local v = kv[2]
    if type(v) == 'string' and v ~= '' then
      local found, err = denylist.get(kv[1], v)
      if found ~= nil then return kv[1] end
      why = why or err
    end
  end
  return nil, why
end

local function audit(session, auth, fields)
  fields.ip_address = session.client_address
  fields.method = auth.mechanism
  fields.session_id = session.id
  sluice.audit('token_validation', fields)
end

local function refuse(session, auth, reason, facts)
  facts = facts or {}
  local claims = facts.claims or {}
  audit(session, auth, { email = facts.email or (auth.user ~= '' and auth.user or nil),
    domain = facts.domain, success = false, reason = reason,
    client_id = client_of(claims), jti = type(claims.jti) == 'string' and claims.jti or nil })
  sluice.log('info', 'oauth2.refuse', { reason = reason, user = auth.user,
    domain = facts.domain, denied_by = facts.denied_by })
  if reason == 'disabled' then
    return sluice.reject(525, '5.7.13', DISABLED) -- RFC 5248: User Account Disabled
  end
  return sluice.reject(535, '5.7.8', INVALID)
end

local function unavailable()
  return sluice.tempfail(454, '4.7.0', 'Temporary authentication failure, try again later')
end

local function check_opts(o, extra)
  local opts = { issuer = o.issuer, audience = o.audience, scope = o.scope, leeway = o.leeway,
    max_lifetime = o.max_token_lifetime }
  for k, v in pairs(extra) do opts[k] = v end
  return opts
end

-- A JWS: verified against the domain's keys (a jwks_url's set refetched once, rate
-- limited, when the kid is unknown). claims, or nil and a verdict.
local function verify_jwt(session, auth, t, o, facts)
  local keys, err = jwks.for_domain(o)
  if not keys then
    sluice.log('warning', 'oauth2.keys_unavailable', { domain = facts.domain, error = err })
    return nil, unavailable()
  end
  local claims, why = jwt.verify(t, check_opts(o, { keys = keys }))
  if why == 'unknown_key' and o.jwks_url then
    local fresh = jwks.refetch(o)
    if fresh then claims, why = jwt.verify(t, check_opts(o, { keys = fresh })) end
  end
  if not claims then return nil, refuse(session, auth, why, facts) end
  return claims
end

-- Form encoding (RFC 6749 appendix B) for the introspection request body.
local function form(s)
  return (s:gsub('[^%w%-%._~]', function(c) return ('%%%02X'):format(c:byte()) end))
end

-- RFC 7662 answer for token at domain's endpoint, from the cache or the endpoint: the
-- answer's fields, or nil and why (the endpoint down, slow, 5xx or not making sense).
local function introspect(o, domain, token)
  local key = INTROSPECT_PREFIX .. sluice.crypto.b64url_encode(
    sluice.crypto.sha256(o.introspection_url .. '\0' .. token))
  local cached = cache:get(key)
  local doc = type(cached) == 'string' and cjson.decode(cached)
  if type(doc) == 'table' then return doc end
  local status, body = sluice.http.request({ method = 'POST', url = o.introspection_url,
    body = 'token=' .. form(token) .. '&token_type_hint=access_token',
    headers = { Accept = 'application/json' }, timeout = o.timeout, ca_file = o.ca_file,
    oauth2_client_auth = domain })
  if not status then return nil, body end
  if status ~= 200 then return nil, 'HTTP status ' .. status end
  local answer = cjson.decode(body)
  if type(answer) ~= 'table' or type(answer.active) ~= 'boolean' then
    return nil, 'not an RFC 7662 answer'
  end
  doc = {}
  for _, f in ipairs(FIELDS) do doc[f] = answer[f] end
  local ttl = math.min(o.introspection_cache or 300, INACTIVE_TTL)
  if doc.active then
    local left = type(doc.exp) == 'number' and doc.exp - sluice.now() or 0
    ttl = math.min(o.introspection_cache or 300, left) -- never outlives the token
  end
  if ttl >= 1 then cache:set(key, cjson.encode(doc), math.floor(ttl)) end
  return doc
end

-- The domain whose endpoint is asked: the SASL identity's; with OAUTHBEARER's a= left
-- empty, the one domain that has an introspection endpoint, if there is exactly one.
local function introspection_domain(auth)
  if auth.user ~= '' then return domains.of(address.normalize(auth.user) or auth.user) end
  local only
  for name, cfg in pairs(sluice.domains) do
    if uses_oauth2(cfg) and cfg.oauth2.introspection_url then
      if only then return nil end
      only = name
    end
  end
  return only
end

-- An opaque token. claims (with the domain asked, for the checks below), or nil and a
-- verdict.
local function verify_opaque(session, auth, facts)
  local claimed = introspection_domain(auth)
  local cfg, domain = domains.get(claimed)
  facts.domain = domain or (claimed and claimed:lower())
  if not (uses_oauth2(cfg) and cfg.oauth2.introspection_url) then
    return nil, refuse(session, auth, 'malformed', facts) -- neither a JWS nor introspected
  end
  local o = cfg.oauth2
  local doc, err = introspect(o, domain, auth.token)
  if not doc then
    sluice.log('warning', 'oauth2.introspection_unavailable', { domain = domain, error = err })
    return nil, unavailable()
  end
  facts.email = token_identity(doc)
  if not doc.active then return nil, refuse(session, auth, 'inactive', facts) end
  local claims, why = jwt.check_claims(doc, check_opts(o, { issuer_optional = true }))
  if not claims then return nil, refuse(session, auth, why, facts) end
  if type(claims.domain) == 'string' and not idna.equal(claims.domain, domain) then
    return nil, refuse(session, auth, 'user_mismatch', facts)
  end
  return claims, cfg, domain
end

local function is_jws(token)
  return token:match('^[%w_%-]+%.[%w_%-]+%.[%w_%-]+$') ~= nil
end

local function on_auth(session, auth)
  if auth.token == nil then return nil end -- a password: policies/auth.lua's
  local claims, cfg, domain, facts
  if is_jws(auth.token) then
    local t = jwt.decode(auth.token)
    if not t then return refuse(session, auth, 'malformed') end
    local email = token_identity(t.claims)
    local claimed = type(t.claims.domain) == 'string' and t.claims.domain
      or domains.of(email)
    cfg, domain = domains.get(claimed)
    facts = { domain = domain or (claimed and claimed:lower()), email = email }
    if not cfg then return refuse(session, auth, 'unknown_domain', facts) end
    if not uses_oauth2(cfg) then return refuse(session, auth, 'not_allowed', facts) end
    local verdict
    claims, verdict = verify_jwt(session, auth, t, cfg.oauth2, facts)
    if not claims then return verdict end
  else
    facts = {}
    local r1, r2, r3 = verify_opaque(session, auth, facts)
    if not r1 then return r2 end
    claims, cfg, domain = r1, r2, r3
  end
  local o = cfg.oauth2
  local email = facts.email
  facts.claims = claims
  -- From here on the claims are the issuer's word.
  if not email or not idna.equal(domains.of(email), domain) then
    return refuse(session, auth, email and 'user_mismatch' or 'no_identity', facts)
  end
  if auth.user ~= '' and address.normalize(auth.user) ~= email then
    return refuse(session, auth, 'user_mismatch', facts)
  end
  if #(o.clients or {}) > 0 and not has(o.clients, client_of(claims)) then
    return refuse(session, auth, 'client', facts)
  end
  local deny_err
  facts.denied_by, deny_err = denied(claims)
  if facts.denied_by then return refuse(session, auth, 'revoked', facts) end
  if deny_err then
    sluice.log('warning', 'oauth2.denylist_unavailable', { error = deny_err, user = auth.user })
    return unavailable()
  end
  if cfg.enabled == false then return refuse(session, auth, 'disabled', facts) end
  audit(session, auth, { email = email, domain = domain, success = true,
    client_id = client_of(claims), jti = type(claims.jti) == 'string' and claims.jti or nil })
  -- OAUTHBEARER without a=: the token names the user, and the session takes its address.
  return sluice.accept(auth.user == '' and email or nil)
end

return { on_auth = on_auth }
