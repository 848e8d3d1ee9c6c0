-- lua/sluice/denylist.lua: the bearer-token deny-list in the zone denylist, which is never
-- evicted (docs/security.md): what `sluice ctl token deny|allow` writes (through deny and
-- allow, called by core/daemon/control_token.c in the control plane's own state) and what
-- policies/oauth2.lua reads (get). The key layout is this file's alone:
--   oauth2:deny:jti:VALUE   oauth2:deny:sub:VALUE   oauth2:deny:client:VALUE
-- each holding the time it was written, with a TTL: by default the longest token lifetime
-- policies accept (a day), after which any token it could match has expired anyway. VALUE
-- is bounded by sluice.key_part (64 octets), so any token can be denied.
local sluice = require('sluice')

local denylist = {}

local PREFIX = 'oauth2:deny:'
local VALUE_MAX = 64
local TTL = 86400 -- max_token_lifetime's default
local zone = sluice.zone('denylist')

-- The key of kind ('jti', 'sub' or 'client') and value.
function denylist.key(kind, value)
  return PREFIX .. kind .. ':' .. sluice.key_part(value, VALUE_MAX)
end

-- Whether value is denied as kind: the entry, or nil; or nil, 'full' when a deny could
-- not be written since the last good one (a miss cannot be trusted: fail closed).
function denylist.get(kind, value)
  return zone:get(denylist.key(kind, value))
end

-- Deny value as kind for ttl seconds (default a day): the key and the ttl, or nil and
-- the reason ('full': nothing was denied).
function denylist.deny(kind, value, ttl)
  local key = denylist.key(kind, value)
  ttl = ttl or TTL
  local ok, err = zone:set(key, sluice.now(), ttl)
  if not ok then return nil, err end
  return key, ttl
end

-- Take value off the list: the key, and whether it was there; or the key, nil and why it
-- could not be done ('unavailable': the zone is in Redis, which did not answer).
function denylist.allow(kind, value)
  local key = denylist.key(kind, value)
  local removed, err = zone:delete(key)
  return key, removed, err
end

return denylist
