-- lua/sluice/json.lua: sluice.json, lua-cjson with sluice's error convention: encoding
-- something JSON cannot hold (a function, a cycle) is misuse and raises; decoding text
-- that is not JSON is a runtime failure and returns nil, 'reason'. Own cjson instances,
-- so a policy changing settings elsewhere cannot change these.
local cjson = require('cjson').new()
local cjson_safe = require('cjson.safe').new()

local json = {}

-- The value JSON null decodes to, and encodes from (cjson.null, a light userdata).
json.null = cjson.null

-- sluice.json.encode(value) -> string; raises on a value JSON cannot hold.
function json.encode(value)
  local ok, text = pcall(cjson.encode, value)
  if not ok then
    error('sluice.json.encode: ' .. tostring(text), 2)
  end
  return text
end

-- sluice.json.decode(text) -> value, or nil and the reason.
function json.decode(text)
  if type(text) ~= 'string' then
    error('sluice.json.decode: expected a string, got ' .. type(text), 2)
  end
  local value, err = cjson_safe.decode(text)
  if value == nil then
    return nil, err
  end
  return value
end

return json
