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

-- The domain part of a SASL identity or address (after the last '@'), or nil.
function domains.of(identity)
  return type(identity) == 'string' and identity:match('@([^@]+)$') or nil
end

return domains
