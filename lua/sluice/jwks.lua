-- lua/sluice/jwks.lua: JSON Web Key Sets (RFC 7517 section 5) -> public keys by kid,
-- made by sluice.crypto.jwk (OpenSSL in the daemon, the double under busted). Keys come
-- from a domain's oauth2.jwks_file, read once per Lua state (each worker, each policy
-- generation: a reload reads the file again), or from its oauth2.jwks_url, fetched with
-- sluice.http (so only inside a hook, which yields) and kept as text in the zone jwks,
-- shared by every worker:
--   oauth2:jwks:H          the document, kept jwks_refresh + JWKS_STALE seconds
--   oauth2:jwks_fresh:H    set for jwks_refresh seconds after each fetch: when it is gone,
--                          the next use refetches (one worker at a time, see below)
--   oauth2:jwks_lock:H     incr'd by a worker that refetches while an older document is
--                          there: the others keep using that one meanwhile
--   oauth2:jwks_kid:H      incr'd by a refetch for an unknown kid: at most one per
--                          JWKS_KID_INTERVAL seconds, so bogus kids cannot hammer the IdP
--   oauth2:jwks_fail:H     set for JWKS_FAIL_BACKOFF seconds after a failed fetch
-- (H is the base64url SHA-256 of the URL.) A failed refetch keeps serving the stale
-- document (stale-if-error); with none at all, for_domain() says 'unavailable', which
-- policies/oauth2.lua answers with 454 4.7.0.
local sluice = require('sluice')
local cjson = require('cjson.safe')

local jwks = {}

-- `sluice token --init` names its keys 'sluice-dev-...': a configuration that trusts one
-- trusts a key that sits next to the daemon, which policies/oauth2.lua says loudly.
jwks.DEV_KID_PREFIX = 'sluice-dev-'

local FILE_MAX = 1024 * 1024 -- octets of a JWKS file; real ones are a few KiB

local zone = sluice.zone('jwks')
local cache = {} -- path -> set; per Lua state, so fresh after a reload
local parsed = {} -- url -> { text = document, set = its set }: parse each document once

local JWKS_STALE = 86400      -- seconds a document outlives its refresh, for outages
local JWKS_KID_INTERVAL = 60  -- seconds between refetches for unknown kids, per URL
local JWKS_FAIL_BACKOFF = 5   -- seconds without fetching after a failure, per URL
local JWKS_MAX = 64 * 1024    -- octets: a zone's largest value

-- Set, or nil and why. A set is { by_kid = { [kid] = entry }, list = { entry... },
-- dev = true when a key is a dev key }, entry = { kid, key, alg }. Keys that are not for
-- signatures (use ~= 'sig') or of a type sluice.crypto does not take are skipped, as RFC
-- 7517 5 asks; a set with no usable key is an error.
function jwks.parse(text)
  local doc = type(text) == 'string' and cjson.decode(text)
  if type(doc) ~= 'table' or type(doc.keys) ~= 'table' then
    return nil, 'not a JWKS (expected {"keys": [...]})'
  end
  local set, skipped = { by_kid = {}, list = {}, dev = false }, {}
  for i, k in ipairs(doc.keys) do
    local kid = type(k) == 'table' and type(k.kid) == 'string' and k.kid or nil
    local key, err
    if type(k) ~= 'table' then
      err = 'not an object'
    elseif k.use ~= nil and k.use ~= 'sig' then
      err = 'use is not sig'
    elseif kid and set.by_kid[kid] then
      err = 'kid ' .. kid .. ' appears twice'
    else
      local ok, r, why = pcall(sluice.crypto.jwk, k)
      key, err = ok and r, ok and why or tostring(r)
    end
    if key then
      local entry = { kid = kid, key = key, alg = key:alg() }
      set.list[#set.list + 1] = entry
      if kid then set.by_kid[kid] = entry end
      if kid and kid:sub(1, #jwks.DEV_KID_PREFIX) == jwks.DEV_KID_PREFIX then set.dev = kid end
    else
      skipped[#skipped + 1] = ('key %d: %s'):format(i, err or '?')
    end
  end
  if #set.list == 0 then
    return nil, 'no usable signing key' .. (#skipped > 0 and ' (' .. table.concat(skipped, '; ')
      .. ')' or '')
  end
  set.skipped = skipped
  return set
end

-- Set, or nil and 'PATH: why'. Read once per Lua state and kept. The daemon gives the
-- text it read with the configuration (oauth2.jwks_text: the service user may not be
-- allowed to open the file, core/util/privfile.h); without it the file is read here.
function jwks.load_file(path, text)
  if cache[path] then return cache[path] end
  if not text then
    local f, err = io.open(path, 'rb')
    if not f then return nil, err end
    text = f:read(FILE_MAX + 1)
    f:close()
  end
  if text and #text > FILE_MAX then return nil, path .. ': larger than 1 MiB' end
  local set, why = jwks.parse(text or '')
  if not set then return nil, path .. ': ' .. why end
  cache[path] = set
  return set
end

local function url_key(kind, url)
  return 'oauth2:' .. kind .. ':' .. sluice.crypto.b64url_encode(sluice.crypto.sha256(url))
end

-- The set of a document (memoized per URL while the document stays the same).
local function parse_cached(url, text)
  local p = parsed[url]
  if p and p.text == text then return p.set end
  local set, why = jwks.parse(text)
  if not set then return nil, why end
  parsed[url] = { text = text, set = set }
  return set
end

-- GET the document; on success keep it and return its set, else nil and why.
local function fetch(oauth2)
  local url = oauth2.jwks_url
  if zone:get(url_key('jwks_fail', url)) then return nil, 'recent fetch failed' end
  local status, body = sluice.http.request({ method = 'GET', url = url,
    timeout = oauth2.timeout, ca_file = oauth2.ca_file,
    headers = { Accept = 'application/json, application/jwk-set+json' } })
  local set, why
  if not status then
    why = body
  elseif status ~= 200 then
    why = 'HTTP status ' .. status
  elseif #body > JWKS_MAX then
    why = 'larger than 64 KiB'
  else
    set, why = parse_cached(url, body)
  end
  if not set then
    zone:set(url_key('jwks_fail', url), true, JWKS_FAIL_BACKOFF)
    sluice.log('warning', 'oauth2.jwks_fetch_failed', { url = url, error = why })
    return nil, why
  end
  local refresh = oauth2.jwks_refresh or 3600
  zone:set(url_key('jwks', url), body, refresh + JWKS_STALE)
  zone:set(url_key('jwks_fresh', url), true, refresh)
  sluice.log('info', 'oauth2.jwks_fetched', { url = url, keys = #set.list })
  return set
end

-- The set for a jwks_url: the shared document, refetched when it is due; or nil and
-- 'unavailable: why'.
local function for_url(oauth2)
  local url = oauth2.jwks_url
  local text = zone:get(url_key('jwks', url))
  local stale = text and parse_cached(url, text)
  if stale and zone:get(url_key('jwks_fresh', url)) then return stale end
  if stale and (zone:incr(url_key('jwks_lock', url), 1,
      (oauth2.timeout or 5) + 1) or 2) > 1 then
    return stale -- another worker is refetching it
  end
  local set, why = fetch(oauth2)
  if set then return set end
  if stale then return stale end
  return nil, 'unavailable: ' .. tostring(why)
end

-- The key set of a domain's oauth2 settings, or nil and why. A jwks_url is fetched (this
-- yields: call it from a hook).
function jwks.for_domain(oauth2)
  if oauth2.jwks_url then return for_url(oauth2) end
  if not oauth2.jwks_file then return nil, 'no key set (introspection only)' end
  return jwks.load_file(oauth2.jwks_file, oauth2.jwks_text)
end

-- After an unknown kid: the URL's set fetched again, at most once per JWKS_KID_INTERVAL
-- per URL (for all workers); nil when not allowed now or when the fetch fails.
function jwks.refetch(oauth2)
  if not oauth2.jwks_url then return nil end
  if (zone:incr(url_key('jwks_kid', oauth2.jwks_url), 1, JWKS_KID_INTERVAL) or 2)
      > 1 then
    return nil
  end
  return fetch(oauth2)
end

-- The entry for a token's header: by kid; without a kid, the set's only key. Nil and
-- 'unknown_key' when there is none (policies/oauth2.lua then asks jwks.refetch).
function jwks.find(set, kid)
  if type(kid) == 'string' then
    local e = set.by_kid[kid]
    if e then return e end
    return nil, 'unknown_key'
  end
  if kid == nil and #set.list == 1 then return set.list[1] end
  return nil, 'unknown_key'
end

return jwks
