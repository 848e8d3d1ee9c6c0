-- lua/sluice/testing_config.lua: the double's `domains` configuration. A spec's domains are
-- checked against lua/sluice/schema.lua, the schema the daemon itself checks with
-- (core/config/config_schema.c, `sluice check --dump-schema`), and refused with the daemon's
-- message without its 'file:line: ' ('domains['example.org'].oauth2.issuer: required'); then
-- built into the table sluice.domains shows (core/policy/lapi_domains.c): defaults filled in,
-- names lowercased, secrets left out. What the schema cannot say (URL and DN syntax, the
-- ldap timeout against hook_timeout) only `sluice check` finds.
local schema = require('sluice.schema')

local config = {}

local INT_MAX = 9007199254740992 -- 2^53, core/config/config_internal.h CFG_INT_MAX
local MAX_SECONDS = 86400

local function fail(path, msg)
  error(path .. ': ' .. msg, 0)
end

-- A key appended to a key path as core/config/config_value.c cfg_push_key writes it.
local function push(path, key)
  if type(key) == 'number' then return path .. '[' .. key .. ']' end
  if key:match('^[%a_][%w_]*$') then
    return path == '' and key or path .. '.' .. key
  end
  local safe = key:sub(1, 127):gsub('[^ -~]', '?'):gsub('\'', '?')
  return path .. '[\'' .. safe .. '\']'
end

local function deep_copy(v)
  if type(v) ~= 'table' then return v end
  local out = {}
  for k, x in pairs(v) do out[deep_copy(k)] = deep_copy(x) end
  return out
end

local function ascii_lower(s)
  return (s:gsub('%u', string.lower))
end

-- cfg_to_string: non-empty, no control characters.
local function check_string(path, v)
  if type(v) ~= 'string' then fail(path, 'expected a string') end
  if #v == 0 then fail(path, 'expected a non-empty string') end
  if v:find('%c') then fail(path, 'must not contain control characters') end
end

-- cfg_check_list: keys exactly 1..#t.
local function check_list(path, t)
  local n, count = #t, 0
  for k in pairs(t) do
    if type(k) ~= 'number' or k < 1 or k > n or k ~= math.floor(k) then
      fail(path, 'expected a list')
    end
    count = count + 1
  end
  if count ~= n then fail(path, 'expected a list') end
end

local function one_of_text(values)
  local quoted = {}
  for i, v in ipairs(values) do quoted[i] = '\'' .. v .. '\'' end
  if #quoted == 1 then return quoted[1] end
  return table.concat(quoted, ', ', 1, #quoted - 1) .. ' or ' .. quoted[#quoted]
end

local function check_strings(path, key, v)
  if type(v) == 'table' then
    if key.may_be_empty and next(v) == nil then return {} end
    check_list(path, v)
  elseif not (key.single and type(v) == 'string') then
    fail(path, key.single and 'expected a string or a list of strings'
      or 'expected a list of strings')
  end
  local list = type(v) == 'table' and v or { v }
  if #list == 0 then fail(path, 'expected a non-empty list') end
  for i, s in ipairs(list) do check_string(push(path, i), s) end
  for i, s in ipairs(list) do
    local known = not key.values
    for _, allowed in ipairs(key.values or {}) do known = known or s == allowed end
    if not known then
      fail(push(path, i), 'expected ' .. one_of_text(key.values) .. ', not \'' .. s .. '\'')
    end
  end
  return deep_copy(list)
end

-- cfg_check_integer's three messages.
local function check_integer(path, key, v)
  if type(v) == 'number' and v >= key.min and v <= key.max and v == math.floor(v) then
    return v
  end
  if key.min == 1 and key.max == INT_MAX then fail(path, 'expected a positive integer') end
  if key.min == 0 and key.max == INT_MAX then fail(path, 'expected an integer >= 0') end
  fail(path, ('expected an integer from %d to %d'):format(key.min, key.max))
end

local function check_seconds(path, v)
  if not (type(v) == 'number' and v > 0) then
    fail(path, 'expected a positive number of seconds')
  end
  if v > MAX_SECONDS then fail(path, ('expected at most %d seconds'):format(MAX_SECONDS)) end
  return v
end

-- A file the engine reads at load (relative to the working directory here).
local function check_path(path, v)
  check_string(path, v)
  local f, err = io.open(v, 'rb')
  if not f then
    fail(path, 'cannot read \'' .. v .. '\': ' .. (err:match(': ([^:]+)$') or err))
  end
  f:close()
  return v
end

-- A domain name or user address as a key (cfg_is_name_key).
local function is_name_key(s)
  return type(s) == 'string' and #s > 0 and #s <= 255 and not s:find('[%z\1- \127]')
end

local check_table

local function check_senders(path, v)
  if type(v) ~= 'table' then fail(path, 'expected a table') end
  for user in pairs(v) do
    if type(user) ~= 'string' then
      fail(path, 'expected { [\'user@domain\'] = { \'address\', ... }, ... }')
    end
  end
  local out = {}
  for user, list in pairs(v) do
    local where = push(path, user)
    if not is_name_key(user) or not user:find('@', 1, true) then
      fail(where, 'expected a user\'s address as the key')
    end
    if out[ascii_lower(user)] then fail(where, 'the same user appears twice') end
    out[ascii_lower(user)] = check_strings(where, { name = user }, list)
  end
  return out
end

local function check_value(path, key, v)
  local t = key.type
  if t == 'boolean' then
    if type(v) ~= 'boolean' then fail(path, 'expected true or false') end
    return v
  elseif t == 'string' then
    check_string(path, v)
    return v
  elseif t == 'path' then
    return check_path(path, v)
  elseif t == 'strings' then
    return check_strings(path, key, v)
  elseif t == 'integer' then
    return check_integer(path, key, v)
  elseif t == 'seconds' then
    return check_seconds(path, v)
  elseif t == 'senders' then
    return check_senders(path, v)
  elseif t == 'table' then
    return check_table(path, key.table, v)
  elseif t == 'tables' then -- one table, or a list of them (config_dkim.c)
    if type(v) ~= 'table' or v[1] == nil then return { check_table(path, key.table, v) } end
    check_list(path, v)
    local out = {}
    for i, x in ipairs(v) do out[i] = check_table(push(path, i), key.table, x) end
    return out
  end
  error('sluice.schema: unknown type ' .. tostring(t))
end

local function all_present(t, keys)
  for _, k in ipairs(keys or {}) do
    if t[k] == nil then return false end
  end
  return true
end

local function first_present(t, keys)
  for _, k in ipairs(keys) do
    if t[k] ~= nil then return k end
  end
end

local function lists(list, value)
  for _, v in ipairs(type(list) == 'table' and list or {}) do
    if v == value then return true end
  end
  return false
end

-- The rules between keys (config_schema.h), in order; t is the spec's table.
local function check_rules(path, tbl, t, out)
  for _, r in ipairs(tbl.rules) do
    local broken = false
    if r.kind == 'exclusive' then
      local n = 0
      for _, k in ipairs(r.keys) do if t[k] ~= nil then n = n + 1 end end
      broken = n > 1
    elseif r.kind == 'requires' then
      broken = all_present(t, r.when) and first_present(t, r.keys) == nil
    elseif r.kind == 'only_with' then
      broken = first_present(t, r.keys) ~= nil and not all_present(t, r.when)
    elseif r.kind == 'listed' then
      broken = lists(out[r.key], r.value) and t[r.keys[1]] == nil
    end
    if broken then fail(push(path, r.key or first_present(t, r.keys)), r.message) end
  end
end

-- One table of the schema: unknown keys first (cfg_check_keys), then each key in the
-- schema's order, then the rules. Returns the table as sluice.domains shows it.
function check_table(path, tbl, t)
  if type(t) ~= 'table' then fail(path, 'expected a table') end
  local by_name = {}
  for _, key in ipairs(tbl.keys) do by_name[key.name] = key end
  for k in pairs(t) do
    if type(k) == 'number' then
      fail(path, ('unexpected list entry [%g] (expected named keys)'):format(k))
    elseif type(k) ~= 'string' then
      fail(path, 'unexpected ' .. type(k) .. ' key')
    elseif not by_name[k] then
      fail(push(path, k), 'unknown key')
    end
  end
  local out = {}
  for _, key in ipairs(tbl.keys) do
    local v = t[key.name]
    if v == nil and key.required then fail(push(path, key.name), 'required') end
    if v ~= nil then
      v = check_value(push(path, key.name), key, v)
    else
      v = deep_copy(key.default)
    end
    if not key.secret then out[key.name] = v end
  end
  check_rules(path, tbl, t, out)
  return out
end

-- The JWKS file's text, read with the configuration as the engine reads it.
local function add_jwks_text(o)
  local f = o and o.jwks_file and io.open(o.jwks_file, 'rb')
  if f then
    o.jwks_text = f:read('*a')
    f:close()
  end
end

-- `domains` (the configuration's table, or nil) as sluice.domains: raises the daemon's
-- message for what `sluice check` refuses.
function config.domains(domains)
  local out = {}
  if domains == nil then return out end
  if type(domains) ~= 'table' then fail('domains', 'expected a table') end
  for name in pairs(domains) do
    if type(name) ~= 'string' then
      fail('domains', 'expected { [\'example.org\'] = { ... }, ... }')
    end
  end
  for name, settings in pairs(domains) do
    local path = push('domains', name)
    if not is_name_key(name) or name:find('@', 1, true) then
      fail(path, 'expected a domain name as the key')
    end
    local key = ascii_lower(name)
    if out[key] then fail(path, 'the same domain appears twice') end
    if type(settings) ~= 'table' then fail(path, 'expected a table of settings') end
    out[key] = check_table(path, schema.domain, settings)
    add_jwks_text(out[key].oauth2)
  end
  return out
end

return config
