-- lua/sluice/address.lua: mail addresses as policies compare them.
-- parse() reads an RFC 5321 path (MAIL FROM / RCPT TO argument) the way a server must:
-- the domain is what follows the LAST '@' outside a quoted local part, never the first
-- ('"a@b"@example.org' is in example.org). from_header() reads the mailboxes of an
-- RFC 5322 From: field (display names, comments, groups). Syntax checking proper is the
-- core's (core/smtp_parse.c); this only takes addresses apart. Pure Lua, no state.
local idna = require('sluice.idna')

local address = {}

-- Position of the '@' that ends the local part, or nil. A quoted local part (quoted: s
-- starts with '"') may hold '@' and backslash escapes (RFC 5321 4.1.2 Quoted-string).
local function split_at(s, quoted)
  if not quoted then -- the last '@' (plain finds: cheaper than a backtracking pattern)
    local at = s:find('@', 1, true)
    while at do
      local next_at = s:find('@', at + 1, true)
      if not next_at then return at end
      at = next_at
    end
    return nil
  end
  local i = 2
  while i <= #s do
    local c = s:sub(i, i)
    if c == '\\' then i = i + 2
    elseif c == '"' then return s:sub(i + 1, i + 1) == '@' and i + 1 or nil
    else i = i + 1 end
  end
  return nil
end

local ATEXT = '^[%w!#$%%&\'*+/=?^_`{|}~%-]+$' -- RFC 5321 atext, ASCII

local function is_dot_string(s)
  for atom in (s .. '.'):gmatch('([^.]*)%.') do
    if not atom:match(ATEXT) then return false end
  end
  return true
end

-- '"john.doe"' and 'john.doe' are the same local part (RFC 5321 4.1.2): unquote when
-- the content is a plain dot-string, so both compare equal.
local function canonical_local(lp, quoted)
  local inner = quoted and lp:match('^"(.*)"$')
  if inner and is_dot_string(inner) then
    lp = inner
  end
  return lp:lower() -- ASCII only in LuaJIT (A-Z): UTF-8 bytes are left alone
end

-- True for the null reverse-path: '' or '<>'.
function address.is_null(path)
  return path == '' or path == '<>'
end

-- An RFC 5321 path ('a@b', '<a@b>', '<@relay:a@b>') -> { local_part, domain, literal },
-- the domain lowercase and in A-label form (an address literal such as '[192.0.2.1]'
-- is kept as written, lowercased, with literal = true); or nil and the reason.
function address.parse(path)
  if type(path) ~= 'string' then return nil, 'not a string' end
  -- The common case in one match: one '@', no quotes, brackets or source route, not an
  -- address literal. What the general path below would make of it.
  local lp, dom = path:match('^([^@"<]+)@([^@%[]+)$')
  if lp then
    local a, err = idna.to_ascii(dom)
    if not a then return nil, 'bad domain: ' .. err end
    return { local_part = lp:lower(), domain = a, literal = false }
  end
  local s, c = path, path:byte(1)
  if c == 60 then -- '<'
    s = path:match('^<(.*)>$') or path
    c = s:byte(1)
  end
  if c == 64 then -- '@'
    s = s:gsub('^@[^:]*:', '') -- RFC 5321 4.1.2: a source route is accepted and ignored
    c = s:byte(1)
  end
  if s == '' then return nil, 'null path' end
  local quoted = c == 34 -- '"'
  local at = split_at(s, quoted)
  if not at or at == 1 or at == #s then return nil, 'not local@domain' end
  lp, dom = s:sub(1, at - 1), s:sub(at + 1)
  if s:byte(at + 1) == 91 then -- '['
    if not dom:match('^%[[^%[%]]+%]$') then return nil, 'bad address literal' end
    return { local_part = canonical_local(lp, quoted), domain = dom:lower(), literal = true }
  end
  -- Without quotes the '@' is the last one already.
  if quoted and dom:find('@', 1, true) then
    return nil, 'more than one @ after the local part'
  end
  local a, err = idna.to_ascii(dom)
  if not a then return nil, 'bad domain: ' .. err end
  return { local_part = canonical_local(lp, quoted), domain = a, literal = false }
end

-- The domain of a path, lowercase A-label; nil and the reason when there is none.
function address.domain(path)
  local m, err = address.parse(path)
  return m and m.domain, err
end

-- The comparable form of an address: canonical local part (ASCII lowercased) '@'
-- A-label domain. Two spellings of one mailbox give the same string.
function address.normalize(path)
  local m, err = address.parse(path)
  if not m then return nil, err end
  return m.local_part .. '@' .. m.domain
end

-- Drop comments (nested, RFC 5322 3.2.2) and split a header's address-list into its
-- mailboxes. Group names ('team: a@x, b@y;') are dropped, their members kept.
local function mailbox_texts(value)
  local parts, cur = {}, {}
  local i, quoted, depth, angle, literal = 1, false, 0, false, false
  local function cut()
    parts[#parts + 1] = table.concat(cur)
    cur = {}
  end
  while i <= #value do
    local c = value:sub(i, i)
    if c == '\\' and (quoted or depth > 0) then
      if depth == 0 then cur[#cur + 1] = value:sub(i, i + 1) end
      i = i + 1
    elseif depth > 0 then
      depth = depth + (c == '(' and 1 or c == ')' and -1 or 0)
      if depth == 0 then cur[#cur + 1] = ' ' end
    elseif quoted then
      cur[#cur + 1] = c
      quoted = c ~= '"'
    elseif c == '"' then cur[#cur + 1] = c; quoted = true
    elseif c == '(' then depth = 1
    elseif literal then cur[#cur + 1] = c; literal = c ~= ']'
    elseif c == '[' then cur[#cur + 1] = c; literal = true
    elseif angle then cur[#cur + 1] = c; angle = c ~= '>'
    elseif c == '<' then cur[#cur + 1] = c; angle = true
    elseif c == ',' or c == ';' then cut()
    elseif c == ':' then cur = {} -- the end of a group's display name
    else cur[#cur + 1] = c end
    i = i + 1
  end
  if quoted or depth > 0 or angle or literal then return nil end
  cut()
  return parts
end

-- Remove folding whitespace outside quoted strings ('john . doe @ example.org').
local function squeeze(s)
  local out, quoted = {}, false
  for j = 1, #s do
    local c = s:sub(j, j)
    if c == '"' and s:sub(j - 1, j - 1) ~= '\\' then quoted = not quoted end
    if quoted or not c:match('%s') then out[#out + 1] = c end
  end
  return table.concat(out)
end

-- An RFC 5322 From: value -> list of addresses ('local@domain', as written), or nil
-- and the reason when it holds none or is malformed.
function address.from_header(value)
  if type(value) ~= 'string' then return nil, 'not a string' end
  local texts = mailbox_texts(value)
  if not texts then return nil, 'unbalanced quote, comment or bracket' end
  local list = {}
  for _, t in ipairs(texts) do
    local spec = t:match('<([^<>]*)>%s*$') or t
    spec = squeeze(spec)
    if spec ~= '' then
      if not address.parse(spec) then return nil, 'bad mailbox ' .. spec end
      list[#list + 1] = spec
    end
  end
  if #list == 0 then return nil, 'no mailbox' end
  return list
end

return address
