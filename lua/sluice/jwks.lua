-- lua/sluice/jwks.lua: JSON Web Key Sets (RFC 7517 section 5) -> public keys by kid,
-- made by sluice.crypto.jwk (OpenSSL in the daemon, the double under busted). Keys come
-- from a domain's oauth2.jwks_file, read once per Lua state (each worker, each policy
-- generation: a reload reads the file again). A jwks_url, fetched and refreshed on a
-- schedule and on an unknown kid, is for a later version: jwks.for_domain() is the one
-- entry point, so policies do not change when it comes.
local sluice = require('sluice')
local cjson = require('cjson.safe')

local jwks = {}

-- `sluice token --init` names its keys 'sluice-dev-...': a configuration that trusts one
-- trusts a key that sits next to the daemon, which policies/oauth2.lua says loudly.
jwks.DEV_KID_PREFIX = 'sluice-dev-'

local FILE_MAX = 1024 * 1024 -- octets of a JWKS file; real ones are a few KiB

local cache = {} -- path -> set; per Lua state, so fresh after a reload

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

-- Set, or nil and 'PATH: why'. Read once per Lua state and kept.
function jwks.load_file(path)
  if cache[path] then return cache[path] end
  local f, err = io.open(path, 'rb')
  if not f then return nil, err end
  local text = f:read(FILE_MAX + 1)
  f:close()
  if text and #text > FILE_MAX then return nil, path .. ': larger than 1 MiB' end
  local set, why = jwks.parse(text or '')
  if not set then return nil, path .. ': ' .. why end
  cache[path] = set
  return set
end

-- The key set of a domain's oauth2 settings, or nil and why.
function jwks.for_domain(oauth2)
  return jwks.load_file(oauth2.jwks_file)
end

-- The entry for a token's header: by kid; without a kid, the set's only key. Nil and
-- 'unknown_key' when there is none (a later version refetches a URL's set first).
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
