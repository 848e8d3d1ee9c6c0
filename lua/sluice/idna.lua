-- lua/sluice/idna.lua: domain names in their ASCII (A-label) and Unicode (U-label)
-- forms, so that 'bücher.example' and 'xn--bcher-kva.example' compare equal.
-- Punycode is RFC 3492; labels are IDNA2008 (RFC 5890/5891) after the UTS #46 lowercase
-- mapping for Latin, Greek and Cyrillic letters. What this leaves out, on purpose:
-- Unicode normalisation (RFC 5891 requires U-labels in NFC already; a non-NFC name
-- simply compares unequal) and the validity tables (this compares names, it does not
-- register them). Pure Lua, no state.
local idna = {}

local BASE, TMIN, TMAX, SKEW, DAMP = 36, 1, 26, 38, 700
local INITIAL_BIAS, INITIAL_N = 72, 128
local MAXINT = 0x7FFFFFFF
local floor = math.floor

-- UTF-8 <-> code points (strict: no overlongs, no surrogates, nothing past U+10FFFF).
local function utf8_decode(s)
  local cps, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local cp, len, min
    if c < 0x80 then cp, len, min = c, 1, 0
    elseif c >= 0xC2 and c < 0xE0 then cp, len, min = c - 0xC0, 2, 0x80
    elseif c >= 0xE0 and c < 0xF0 then cp, len, min = c - 0xE0, 3, 0x800
    elseif c >= 0xF0 and c < 0xF5 then cp, len, min = c - 0xF0, 4, 0x10000
    else return nil end
    for j = i + 1, i + len - 1 do
      local b = s:byte(j)
      if not b or b < 0x80 or b > 0xBF then return nil end
      cp = cp * 64 + (b - 0x80)
    end
    if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil end
    cps[#cps + 1] = cp
    i = i + len
  end
  return cps
end

local function utf8_encode(cps)
  local out = {}
  for i, cp in ipairs(cps) do
    if cp < 0x80 then out[i] = string.char(cp)
    elseif cp < 0x800 then
      out[i] = string.char(0xC0 + floor(cp / 64), 0x80 + cp % 64)
    elseif cp < 0x10000 then
      out[i] = string.char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
    else
      out[i] = string.char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
        0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
    end
  end
  return table.concat(out)
end

-- UTS #46 lowercase mapping, for the scripts most mail domains use.
local function lower_cp(c)
  if c >= 0x41 and c <= 0x5A then return c + 32 end
  if c < 0xC0 then return c end
  if c <= 0xDE then return c == 0xD7 and c or c + 32 end            -- Latin-1
  if c >= 0x100 and c <= 0x17F then                                 -- Latin Extended-A
    if c == 0x130 then return 0x69 end                              -- İ -> i
    if c == 0x178 then return 0xFF end                              -- Ÿ -> ÿ
    if c == 0x17F then return 0x73 end                              -- ſ -> s
    if (c >= 0x139 and c <= 0x148) or (c >= 0x179 and c <= 0x17E) then
      return c % 2 == 1 and c + 1 or c
    end
    if c ~= 0x138 and c ~= 0x149 then return c % 2 == 0 and c + 1 or c end
    return c
  end
  if c >= 0x391 and c <= 0x3A9 and c ~= 0x3A2 then return c + 32 end -- Greek
  if c == 0x386 then return 0x3AC end                               -- Greek with tonos
  if c >= 0x388 and c <= 0x38A then return c + 37 end
  if c == 0x38C then return 0x3CC end
  if c == 0x38E or c == 0x38F then return c + 63 end
  if c >= 0x410 and c <= 0x42F then return c + 32 end               -- Cyrillic
  if c >= 0x400 and c <= 0x40F then return c + 80 end
  return c
end

local function adapt(delta, numpoints, first)
  delta = first and floor(delta / DAMP) or floor(delta / 2)
  delta = delta + floor(delta / numpoints)
  local k = 0
  while delta > floor(((BASE - TMIN) * TMAX) / 2) do
    delta = floor(delta / (BASE - TMIN))
    k = k + BASE
  end
  return k + floor(((BASE - TMIN + 1) * delta) / (delta + SKEW))
end

local function threshold(k, bias)
  if k <= bias then return TMIN end
  if k >= bias + TMAX then return TMAX end
  return k - bias
end

local function digit_char(d) -- 0..25 -> a..z, 26..35 -> 0..9
  return string.char(d < 26 and d + 97 or d + 22)
end

local function char_digit(b)
  if b >= 48 and b <= 57 then return b - 22 end
  if b >= 65 and b <= 90 then return b - 65 end
  if b >= 97 and b <= 122 then return b - 97 end
  return nil
end

-- RFC 3492 6.3: a UTF-8 string -> its Punycode (no 'xn--'), or nil and the reason.
function idna.punycode_encode(s)
  local input = utf8_decode(s)
  if not input then return nil, 'invalid UTF-8' end
  local out = {}
  for _, c in ipairs(input) do
    if c < 0x80 then out[#out + 1] = string.char(c) end
  end
  local b = #out
  local h = b
  if b > 0 then out[#out + 1] = '-' end
  local n, delta, bias = INITIAL_N, 0, INITIAL_BIAS
  while h < #input do
    local m = MAXINT
    for _, c in ipairs(input) do
      if c >= n and c < m then m = c end
    end
    delta = delta + (m - n) * (h + 1)
    if delta > MAXINT then return nil, 'overflow' end
    n = m
    for _, c in ipairs(input) do
      if c < n then delta = delta + 1 end
      if c == n then
        local q, k = delta, BASE
        while true do
          local t = threshold(k, bias)
          if q < t then break end
          out[#out + 1] = digit_char(t + (q - t) % (BASE - t))
          q = floor((q - t) / (BASE - t))
          k = k + BASE
        end
        out[#out + 1] = digit_char(q)
        bias = adapt(delta, h + 1, h == b)
        delta = 0
        h = h + 1
      end
    end
    delta = delta + 1
    n = n + 1
  end
  return table.concat(out)
end

-- RFC 3492 6.2: Punycode (no 'xn--') -> a UTF-8 string, or nil and the reason.
function idna.punycode_decode(s)
  local out = {}
  local last = s:match('^.*()%-') -- position of the last delimiter, if any
  local start = 1
  if last then
    for j = 1, last - 1 do
      local c = s:byte(j)
      if c >= 0x80 then return nil, 'non-ASCII before the delimiter' end
      out[#out + 1] = c
    end
    start = last + 1
  end
  local n, i, bias = INITIAL_N, 0, INITIAL_BIAS
  local pos = start
  while pos <= #s do
    local oldi, w, k = i, 1, BASE
    while true do
      local d = char_digit(s:byte(pos) or 0)
      if pos > #s or not d then return nil, 'bad Punycode digit' end
      pos = pos + 1
      i = i + d * w
      if i > MAXINT then return nil, 'overflow' end
      local t = threshold(k, bias)
      if d < t then break end
      w = w * (BASE - t)
      k = k + BASE
    end
    bias = adapt(i - oldi, #out + 1, oldi == 0)
    n = n + floor(i / (#out + 1))
    i = i % (#out + 1)
    if n > 0x10FFFF or n < 0x80 or (n >= 0xD800 and n <= 0xDFFF) then
      return nil, 'decodes to an invalid code point'
    end
    table.insert(out, i + 1, n)
    i = i + 1
  end
  return utf8_encode(out)
end

-- One label -> lowercase A-label (or plain lowercase ASCII), or nil and the reason.
local function label_to_ascii(label)
  local cps = utf8_decode(label)
  if not cps then return nil, 'invalid UTF-8' end
  local ascii = true
  for j, c in ipairs(cps) do
    cps[j] = lower_cp(c)
    if c >= 0x80 then ascii = false end
  end
  local out
  if ascii then
    out = utf8_encode(cps)
    if out:sub(1, 4) == 'xn--' then -- an A-label: canonical when decode+lower+encode agree
      local u, err = idna.punycode_decode(out:sub(5))
      if not u then return nil, 'bad A-label ' .. out .. ': ' .. err end
      if not u:find('[\128-\255]') then return nil, 'A-label of a plain ASCII name' end
      return label_to_ascii(u)
    end
  else
    local p, err = idna.punycode_encode(utf8_encode(cps))
    if not p then return nil, err end
    out = 'xn--' .. p
  end
  if #out == 0 or #out > 63 then return nil, 'label length must be 1..63' end
  return out
end

-- IDNA label separators (UTS #46 maps these to '.'): 。 ． ｡
local function split_labels(domain)
  local d = domain:gsub('\227\128\130', '.'):gsub('\239\188\142', '.'):gsub('\239\189\161', '.')
  local labels = {}
  for label in (d .. '.'):gmatch('([^.]*)%.') do labels[#labels + 1] = label end
  return labels
end

-- 64 label characters in a row: a label over 63 octets (RFC 1035 2.3.4).
local LONG_LABEL = string.rep('[^.]', 64)

-- The common case, letters, digits, '-' and '.' without an A-label: just the lowercase
-- name, which is what the general path below gives for it (lower_cp maps only A-Z below
-- 0x80, and LuaJIT's string.lower likewise maps only A-Z). nil sends everything else,
-- errors included, to the general path: any other byte, any 'xn--' (an A-label to
-- check), an empty or overlong label, a name over 253 octets.
local function ascii_to_ascii(domain)
  if not domain:find('^[%w%-][%w%-%.]*$') then return nil end -- no leading '.' either
  local s = domain:lower()
  if #s > 253 or s:byte(-1) == 46 or s:find('..', 1, true) or s:find('xn--', 1, true)
      or (#s > 63 and s:find(LONG_LABEL)) then
    return nil
  end
  return s
end

local function general_to_ascii(domain)
  local fast = ascii_to_ascii(domain)
  if fast then return fast end
  local out = {}
  for j, label in ipairs(split_labels(domain)) do
    local a, err = label_to_ascii(label)
    if not a then return nil, err end
    out[j] = a
  end
  local s = table.concat(out, '.')
  if #s > 253 then return nil, 'domain longer than 253 octets' end
  return s
end

-- The last name converted and its result: policies ask about the same one or two names
-- over and over (the session's domain, the sender's), and the answer depends on the
-- name alone. Per Lua state, so per worker; nothing a caller can see.
local last_in, last_out, last_err

-- A domain in either form -> lowercase ASCII form, or nil and the reason.
function idna.to_ascii(domain)
  if type(domain) ~= 'string' or domain == '' then return nil, 'empty domain' end
  if domain ~= last_in then
    last_out, last_err = general_to_ascii(domain)
    last_in = domain
  end
  return last_out, last_err
end

-- A domain in either form -> lowercase Unicode form, or nil and the reason.
function idna.to_unicode(domain)
  local a, err = idna.to_ascii(domain)
  if not a then return nil, err end
  local out = {}
  for label in (a .. '.'):gmatch('([^.]*)%.') do
    out[#out + 1] = label:sub(1, 4) == 'xn--' and assert(idna.punycode_decode(label:sub(5)))
      or label
  end
  return table.concat(out, '.')
end

-- True when both name the same domain (case-insensitive, U-label = A-label).
function idna.equal(a, b)
  local x, y = idna.to_ascii(a), idna.to_ascii(b)
  return x ~= nil and x == y
end

return idna
