-- lua/sluice/domains.lua: find a served domain's settings in sluice.domains whatever
-- the spelling: case-insensitive, and a U-label and its A-label name the same domain.
-- The configuration's keys are lowercase (the loader lowercases them) in either form.
local sluice = require('sluice')
local idna = require('sluice.idna')

local domains = {}

-- The settings table of a declared domain and its lowercase A-label name, or nil
-- when the domain is not declared (and so not served).
function domains.get(name)
  if type(name) ~= 'string' or name == '' then return nil end
  local all = sluice.domains
  local ascii = idna.to_ascii(name)
  if not ascii then return nil end
  local cfg = all[ascii] or all[name:lower()] or all[idna.to_unicode(ascii)]
  if cfg then return cfg, ascii end
  return nil
end

-- Backend names that check passwords (policies/auth.lua's); 'oauth2' does not.
local PASSWORD_BACKENDS = { file = true, ldap = true }

-- cfg's password backends in order, as one string ('file', 'ldap,file'); '' for none.
local function password_chain(cfg)
  local names = {}
  for _, b in ipairs(cfg.auth or { 'file' }) do
    if PASSWORD_BACKENDS[b] then names[#names + 1] = b end
  end
  return table.concat(names, ',')
end

local stand_in_of, stand_in_name -- the last answer, and the sluice.domains it is for

-- The declared domain whose backends a password AUTH runs when no backend of its own
-- would check it (a domain not declared, or one that checks no passwords), so that
-- it costs what an unknown user of a declared domain does (docs/security.md "User
-- enumeration by timing"): of the domains that check passwords, the first by name of
-- those with the list of password backends most of them have (ties: the list that
-- sorts first). Its name (a key of sluice.domains) and settings, or nil when no
-- domain checks passwords. Worked out once per sluice.domains, which stays the same
-- for a Lua state's life (a reload makes new states).
function domains.stand_in()
  local all = sluice.domains
  if stand_in_of ~= all then
    local names, count, first, best = {}, {}, {}, nil
    for name in pairs(all) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      local chain = password_chain(all[name])
      if chain ~= '' then
        count[chain] = (count[chain] or 0) + 1
        first[chain] = first[chain] or name
      end
    end
    for chain, n in pairs(count) do
      if not best or n > count[best] or (n == count[best] and chain < best) then
        best = chain
      end
    end
    stand_in_of, stand_in_name = all, best and first[best]
  end
  if stand_in_name then return stand_in_name, all[stand_in_name] end
  return nil
end

-- The domain part of a SASL identity or address (after the last '@'), or nil.
function domains.of(identity)
  return type(identity) == 'string' and identity:match('@([^@]+)$') or nil
end

return domains
