-- lua/sluice/client_key.lua: what one client is, as core/net/iplimit.c counts it and policies
-- see it as session.client: an IPv4 address as it is, an IPv4-mapped IPv6 address as its
-- IPv4 address, any other IPv6 address as its network of `prefix` bits (default 64,
-- limits.client_ipv6_prefix) in RFC 5952 text ('2001:db8:1:2::/64'); anything else
-- unchanged. Pure Lua: the test double and sluice.ratelimit.client_key use it.

-- The eight 16-bit groups of IPv6 text ('::' and a dotted IPv4 tail allowed), or nil.
local function ipv6_groups(addr)
  local function groups(text, out)
    if text == '' then return out end
    local parts = {}
    for p in (text .. ':'):gmatch('([^:]*):') do parts[#parts + 1] = p end
    for i, p in ipairs(parts) do
      local a, b, c, d = p:match('^(%d+)%.(%d+)%.(%d+)%.(%d+)$')
      if a and i == #parts then
        a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
        if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
        out[#out + 1], out[#out + 2] = a * 256 + b, c * 256 + d
      elseif p:match('^%x%x?%x?%x?$') then
        out[#out + 1] = tonumber(p, 16)
      else
        return nil
      end
    end
    return out
  end
  local head, tail = addr:match('^(.-)::(.*)$')
  if not head then
    local w = groups(addr, {})
    return w and #w == 8 and w or nil
  end
  local h, t = groups(head, {}), groups(tail, {})
  if not h or not t or #h + #t > 7 then return nil end
  for _ = 1, 8 - #h - #t do h[#h + 1] = 0 end
  for _, x in ipairs(t) do h[#h + 1] = x end
  return h
end

-- session.client as core/net/iplimit.c names it: an IPv4 address as it is, an IPv4-mapped
-- IPv6 address as its IPv4 address, any other IPv6 address as its first `prefix` bits in
-- RFC 5952 text with '/prefix' ('2001:db8:1:2::/64'); anything else unchanged.
local function client_key(addr, prefix)
  local w = type(addr) == 'string' and addr:find(':', 1, true) and ipv6_groups(addr)
  if not w then return addr end
  if w[1] + w[2] + w[3] + w[4] + w[5] == 0 and w[6] == 0xffff then
    return ('%d.%d.%d.%d'):format(math.floor(w[7] / 256), w[7] % 256,
      math.floor(w[8] / 256), w[8] % 256)
  end
  prefix = math.min(math.max(prefix or 64, 1), 128)
  for i = 1, 8 do
    local keep = math.min(math.max(prefix - 16 * (i - 1), 0), 16)
    w[i] = w[i] - w[i] % 2 ^ (16 - keep)
  end
  local best, best_len, run = nil, 1, nil
  for i = 1, 9 do
    if i <= 8 and w[i] == 0 then
      run = run or i
    else
      if run and i - run > best_len then best, best_len = run, i - run end
      run = nil
    end
  end
  local out, i = '', 1
  while i <= 8 do
    if i == best then
      out, i = out .. '::', i + best_len
    else
      out = out .. ((out ~= '' and out:sub(-1) ~= ':') and ':' or '') .. ('%x'):format(w[i])
      i = i + 1
    end
  end
  return out .. '/' .. prefix
end

return client_key
