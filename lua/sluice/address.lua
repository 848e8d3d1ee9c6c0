-- lua/sluice/address.lua: mail addresses as policies compare them.
-- parse() reads an RFC 5321 path (MAIL FROM / RCPT TO argument) the way a server must:
-- the domain is what follows the LAST '@' outside a quoted local part, never the first
-- ('"a@b"@example.org' is in example.org). from_header() reads the mailboxes of an
-- RFC 5322 From: or Sender: field (display names, comments, groups, obsolete forms) and
-- refuses what it cannot read. Syntax checking of paths is the core's
-- (core/proto/smtp_parse.c); this only takes them apart. Pure Lua, no state.
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

-- ---- RFC 5322 address lists (From:, Sender:) --------------------------------------------
-- A tokenizer and a recursive-descent parser for RFC 5322 3.4 with the obsolete forms of
-- 4.4 that mail readers still accept (CFWS around '.' and '@', empty list elements, a
-- route in angle brackets, a phrase with '.'), and UTF-8 in atoms and quoted strings
-- (RFC 6532). Strict on purpose: a value this cannot read is refused by the policy, never
-- guessed at, since a reader that guesses otherwise would show another address. An RFC
-- 2047 encoded word is an atom ('=?utf-8?q?...?=') and stays undecoded: it is only ever a
-- display name, which says nothing about the address.

local SPECIAL = { [60] = '<', [62] = '>', [64] = '@', [44] = ',', [59] = ';', [58] = ':',
  [46] = '.' }

-- atext (RFC 5322 3.2.3) plus every byte >= 0x80 (RFC 6532 3.2)
local function is_atext(c)
  return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122)
    or c >= 128 or (c ~= 34 and c ~= 40 and c ~= 41 and c ~= 44 and c ~= 46 and c ~= 58
      and c ~= 59 and c ~= 60 and c ~= 62 and c ~= 64 and c ~= 91 and c ~= 92 and c ~= 93
      and c >= 33 and c <= 126)
end

-- value -> list of { kind = 'atom' | 'quoted' | 'literal' | one of SPECIAL, text }, or
-- nil and the reason. Comments and folding white space are dropped (RFC 5322 3.2.2).
local function tokenize(value)
  local toks, i, n = {}, 1, #value
  while i <= n do
    local c = value:byte(i)
    if c == 32 or c == 9 or c == 13 or c == 10 then
      i = i + 1
    elseif c == 40 then -- '(' comment: nested, with quoted pairs
      local depth = 1
      i = i + 1
      while depth > 0 do
        if i > n then return nil, 'unterminated comment' end
        local d = value:byte(i)
        if d == 92 then i = i + 1
        elseif d == 40 then depth = depth + 1
        elseif d == 41 then depth = depth - 1 end
        i = i + 1
      end
    elseif c == 34 then -- '"' quoted string, kept with its quotes and escapes
      local j = i + 1
      while true do
        if j > n then return nil, 'unterminated quoted string' end
        local d = value:byte(j)
        if d == 92 then j = j + 2
        elseif d == 34 then break
        else j = j + 1 end
      end
      if j > n then return nil, 'unterminated quoted string' end
      toks[#toks + 1] = { kind = 'quoted', text = value:sub(i, j) }
      i = j + 1
    elseif c == 91 then -- '[' domain literal: dtext, no brackets or backslash inside
      local j = value:find('[%[%]\\]', i + 1)
      if not j or value:byte(j) ~= 93 then return nil, 'bad domain literal' end
      toks[#toks + 1] = { kind = 'literal', text = value:sub(i, j):gsub('[ \t\r\n]', '') }
      i = j + 1
    elseif SPECIAL[c] then
      toks[#toks + 1] = { kind = SPECIAL[c], text = SPECIAL[c] }
      i = i + 1
    elseif is_atext(c) then
      local j = i
      while j < n and is_atext(value:byte(j + 1)) do j = j + 1 end
      toks[#toks + 1] = { kind = 'atom', text = value:sub(i, j) }
      i = j + 1
    else
      return nil, ('unexpected character 0x%02x'):format(c)
    end
  end
  return toks
end

local function is_word(t)
  return t and (t.kind == 'atom' or t.kind == 'quoted')
end

-- The content of a quoted string, escapes removed.
local function unquote(q)
  return (q:sub(2, -2):gsub('\\(.)', '%1'))
end

-- local-part = dot-atom / quoted-string / obs-local-part (words joined by '.'), from
-- toks[i]; returns its text (one quoted string when any word was quoted:
-- '"a"."b"' is '"a.b"') and the next index, or nil.
local function local_part(toks, i)
  if not is_word(toks[i]) then return nil end
  local words, quoted = { toks[i] }, toks[i].kind == 'quoted'
  i = i + 1
  while toks[i] and toks[i].kind == '.' and is_word(toks[i + 1]) do
    words[#words + 1] = toks[i + 1]
    quoted = quoted or toks[i + 1].kind == 'quoted'
    i = i + 2
  end
  local parts = {}
  for k, w in ipairs(words) do
    parts[k] = quoted and (w.kind == 'quoted' and unquote(w.text) or w.text) or w.text
  end
  local text = table.concat(parts, '.')
  if quoted then text = '"' .. text:gsub('(["\\])', '\\%1') .. '"' end
  return text, i
end

-- domain = dot-atom / domain-literal / obs-domain, from toks[i].
local function domain_part(toks, i)
  local t = toks[i]
  if t and t.kind == 'literal' then return t.text, i + 1 end
  if not (t and t.kind == 'atom') then return nil end
  local parts = { t.text }
  i = i + 1
  while toks[i] and toks[i].kind == '.' and toks[i + 1] and toks[i + 1].kind == 'atom' do
    parts[#parts + 1] = toks[i + 1].text
    i = i + 2
  end
  return table.concat(parts, '.'), i
end

local function addr_spec(toks, i)
  local lp, j = local_part(toks, i)
  if not lp or not (toks[j] and toks[j].kind == '@') then return nil end
  local dom, k = domain_part(toks, j + 1)
  if not dom then return nil end
  return lp .. '@' .. dom, k
end

-- angle-addr = '<' [obs-route] addr-spec '>', toks[i] being the '<'.
local function angle_addr(toks, i)
  i = i + 1
  if toks[i] and (toks[i].kind == '@' or toks[i].kind == ',') then -- obs-route, ignored
    while toks[i] and (toks[i].kind == '@' or toks[i].kind == ',') do
      if toks[i].kind == '@' then
        local _, j = domain_part(toks, i + 1)
        if not j then return nil end
        i = j
      else
        i = i + 1
      end
    end
    if not (toks[i] and toks[i].kind == ':') then return nil end
    i = i + 1
  end
  local spec, j = addr_spec(toks, i)
  if not spec or not (toks[j] and toks[j].kind == '>') then return nil end
  return spec, j + 1
end

-- phrase = word *(word / '.') (obs-phrase); returns the index after it (i when none).
local function phrase(toks, i)
  if not is_word(toks[i]) then return i end
  i = i + 1
  while is_word(toks[i]) or (toks[i] and toks[i].kind == '.') do i = i + 1 end
  return i
end

-- mailbox = name-addr / addr-spec, from toks[i].
local function mailbox(toks, i)
  local j = phrase(toks, i)
  if toks[j] and toks[j].kind == '<' then return angle_addr(toks, j) end
  return addr_spec(toks, i)
end

-- The forms nearly every message has, without the tokenizer: 'local@domain',
-- '<local@domain>' and 'Name <local@domain>', with a name of ASCII atoms (RFC 2047
-- encoded words included) and dot-atoms of letters, digits and '._+-' around the '@'.
-- The same answer as the parser below (tests/lua/lua/sluice/address_spec.lua holds them
-- to each other), or false for anything else. Short classes: the interpreter's pattern
-- matcher scans a class once per character it tests.
local function from_header_fast(value)
  local lt, spec = value:find('<', 1, true), nil
  if lt then
    spec = value:match('^<([%w._+-]+@[%w.-]+)>[ \t]*$', lt)
    -- the name is what precedes the '<' (which the class leaves out: found at lt at most)
    if not spec or value:find('[^%w \t_=?-]') < lt then return false end
  else
    spec = value:match('^[ \t]*([%w._+-]+@[%w.-]+)[ \t]*$')
    if not spec then return false end
  end
  local first, last = spec:byte(1), spec:byte(-1)
  if first == 46 or last == 46 or spec:find('..', 1, true) or spec:find('.@', 1, true)
      or spec:find('@.', 1, true) then
    return false
  end
  if not address.parse(spec) then return nil, 'bad mailbox ' .. spec end
  return { spec }
end

-- An RFC 5322 From: or Sender: value (unfolded) -> the list of its mailboxes' addresses
-- ('local@domain', the local part as written or re-quoted, the domain as written); or nil
-- and the reason when it is not an address list or holds no mailbox. Group members
-- (RFC 6854 allows groups in From:) count as mailboxes.
function address.from_header(value)
  if type(value) ~= 'string' then return nil, 'not a string' end
  local fast, why = from_header_fast(value)
  if fast ~= false then return fast, why end
  local toks, err = tokenize(value)
  if not toks then return nil, err end
  local list, i, n, in_group = {}, 1, #toks, false
  while i <= n do
    local t = toks[i]
    if t.kind == ',' then -- an empty element (obs-mbox-list)
      i = i + 1
    elseif in_group and t.kind == ';' then
      in_group = false
      i = i + 1
      if toks[i] and toks[i].kind ~= ',' then return nil, 'text after a group' end
    else
      local j = phrase(toks, i)
      if not in_group and j > i and toks[j] and toks[j].kind == ':' then
        in_group = true -- display-name ':' [group-list] ';'
        i = j + 1
      else
        local spec, k = mailbox(toks, i)
        if not spec then return nil, 'not a mailbox' end
        list[#list + 1] = spec
        i = k
        local nt = toks[i]
        if nt and nt.kind ~= ',' and not (in_group and nt.kind == ';') then
          return nil, 'text after a mailbox'
        end
      end
    end
  end
  if in_group then return nil, 'a group without its \';\'' end
  if #list == 0 then return nil, 'no mailbox' end
  for _, spec in ipairs(list) do
    if not address.parse(spec) then return nil, 'bad mailbox ' .. spec end
  end
  return list
end

return address
