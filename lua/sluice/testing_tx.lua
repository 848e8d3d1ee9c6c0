-- lua/sluice/testing_tx.lua: the test double's transaction (part of sluice.testing).
-- Mirrors what the engine gives a hook as `tx`: envelope fields, sizes, and the message
-- methods (read headers, add and remove headers, read the body) with the same rules
-- and errors as the real one. Built by harness:transaction{...}.
local testing_tx = {}

local methods = {}
local mt = { __index = methods }

local MAX_HEADER_LINE = 998 -- RFC 5322 2.1.1, without CRLF

-- The header block -> { name, value } list, as core/proto/message.c indexes it: a field is a
-- line 'name:' (name printable ASCII but ':'; white space may stand before the ':', RFC
-- 5322 4.5.8 obsolete syntax) and the lines after it that start with SP or HTAB (RFC 5322
-- 2.2.3); any other line is skipped with its continuations. A last line without CRLF
-- counts (BDAT). Values unfolded: CR and LF removed, the folding whitespace kept, the
-- blanks after the ':' dropped even across a fold.
local function parse_headers(block)
  local list, cur, pos = {}, nil, 1
  local function close()
    if cur then
      cur.value = cur.value:gsub('^[ \t]+', '')
      list[#list + 1] = cur
    end
  end
  while pos <= #block do
    local eol = block:find('\r\n', pos, true)
    local line = block:sub(pos, (eol or #block + 1) - 1)
    pos = eol and eol + 2 or #block + 1
    if line:match('^[ \t]') then
      if cur then cur.value = cur.value .. line end
    else
      close()
      local name, value = line:match('^([!-9;-~]+)[ \t]*:(.*)$')
      cur = name and { name = name, value = value } or nil
    end
  end
  close()
  return list
end

local function phase_check(tx, fn, allowed)
  if tx._phase and not allowed[tx._phase] then
    error(('tx:%s is not available in %s'):format(fn, tx._phase), 3)
  end
end

local READ = { on_data = true, on_relayed = true }
local WRITE = { on_data = true }

-- tx:header(name) -> the first value of header `name` (case-insensitive), or nil.
function methods.header(tx, name)
  phase_check(tx, 'header', READ)
  for _, h in ipairs(tx._headers) do
    if h.name:lower() == name:lower() then return h.value end
  end
  return nil
end

-- tx:headers([name]) -> list of values of header `name`, or with no name the list of
-- every header as { name = , value = } in message order.
function methods.headers(tx, name)
  phase_check(tx, 'headers', READ)
  local out = {}
  for _, h in ipairs(tx._headers) do
    if name == nil then out[#out + 1] = { name = h.name, value = h.value }
    elseif h.name:lower() == name:lower() then out[#out + 1] = h.value end
  end
  return out
end

-- tx:add_header(name, value): on top of the message (below sluice's Received:), after
-- headers added earlier. Raises on a bad name, CR/LF in the value, or a line over 998.
function methods.add_header(tx, name, value)
  phase_check(tx, 'add_header', WRITE)
  if type(name) ~= 'string' or not name:match('^[!-9;-~]+$') then
    error('tx:add_header: bad header name', 2)
  end
  if type(value) ~= 'string' or value:find('[\r\n%z]') then
    error('tx:add_header: value must be a string without CR, LF or NUL', 2)
  end
  if #name + 2 + #value > MAX_HEADER_LINE then
    error('tx:add_header: header line longer than 998 octets', 2)
  end
  table.insert(tx._headers, #tx._added + 1, { name = name, value = value })
  tx._added[#tx._added + 1] = name .. ': ' .. value
end

-- tx:remove_header(name) -> number of headers removed (every one with that name).
function methods.remove_header(tx, name)
  phase_check(tx, 'remove_header', WRITE)
  if type(name) ~= 'string' then error('tx:remove_header: name must be a string', 2) end
  local kept, removed = {}, 0
  for _, h in ipairs(tx._headers) do
    if h.name:lower() == name:lower() then removed = removed + 1
    else kept[#kept + 1] = h end
  end
  tx._headers = kept
  return removed
end

-- tx:body([max]) -> the body (after the blank line), at most `max` octets.
function methods.body(tx, max)
  phase_check(tx, 'body', READ)
  return max and tx._body:sub(1, max) or tx._body
end

-- Double only: the message as it would be relayed, for assertions.
function methods.message(tx)
  local lines = {}
  for _, h in ipairs(tx._headers) do lines[#lines + 1] = h.name .. ': ' .. h.value end
  return table.concat(lines, '\r\n') .. '\r\n\r\n' .. tx._body
end

-- fields: id, sender ('' = <>), recipients, declared_size, smtputf8, message (headers,
-- blank line, body; bare LF is turned into CRLF for convenience).
function testing_tx.new(fields)
  fields = fields or {}
  local message = (fields.message or ''):gsub('\r?\n', '\r\n')
  -- the header block ends at the first empty line (core/proto/message.c); without one, the
  -- whole message is header
  local head, body = message, ''
  if message:sub(1, 2) == '\r\n' then
    head, body = '', message:sub(3)
  else
    local blank = message:find('\r\n\r\n', 1, true)
    if blank then head, body = message:sub(1, blank + 1), message:sub(blank + 4) end
  end
  local recipients = {}
  for j, r in ipairs(fields.recipients or {}) do recipients[j] = r end
  -- DSN (RFC 3461) fields as the engine shows them (docs/lua-api.md "The transaction"):
  -- RET and NOTIFY upper case; dsn_notify/dsn_orcpt one entry per recipient, false where
  -- it had none, present only when some recipient had one.
  local function upper(v) return type(v) == 'string' and v:upper() or v end
  local function per_rcpt(list, up)
    if list == nil then return nil end
    local out = {}
    for j = 1, #recipients do
      local v = list[j]
      if v == nil then v = false end
      out[j] = up and upper(v) or v
    end
    return out
  end
  return setmetatable({
    dsn_ret = upper(fields.dsn_ret),
    dsn_envid = fields.dsn_envid,
    dsn_notify = per_rcpt(fields.dsn_notify, true),
    dsn_orcpt = per_rcpt(fields.dsn_orcpt, false),
    rcpt_notify = upper(fields.rcpt_notify),
    rcpt_orcpt = fields.rcpt_orcpt,
    id = fields.id or '00000001.1',
    sender = fields.sender or '',
    recipients = recipients,
    declared_size = fields.declared_size,
    size = fields.message and #message or nil,
    smtputf8 = fields.smtputf8 or false,
    _headers = parse_headers(head),
    _added = {},
    _body = body,
  }, mt)
end

return testing_tx
