-- lua/sluice/ratelimit.lua: counters over a sliding window and timed blocks, kept in
-- zones so every worker sees the same numbers: the counters in 'limits', which may evict
-- (a lost counter starts again), the blocks in 'blocks', which never does (a client
-- cannot push a block out by filling the counters). Pure Lua over the API.
--
-- The window is the sliding-window counter (as Cloudflare and nginx-style limiters use):
-- one counter per fixed window, and the estimate for "the last W seconds" weights the
-- previous window by how much of it still overlaps. Each hit is one zone:incr_peek: the
-- count and the read of the previous window in one atomic step (one script, one round
-- trip, when the zone is in Redis and every node shares it), so neither workers nor nodes
-- ever lose a count; a GCRA would need compare-and-set, which zones do not offer. Error
-- of the estimate: events are assumed evenly spread over the previous window.
--
-- Key layout (this file's alone: `sluice ctl ratelimit` calls ctl_show, ctl_reset and
-- ctl_list below, which reset a name by deleting every key that starts with 'NAME:'):
--   limits: NAME:W:INDEX   hits in window INDEX (= floor(now / W)) of length W; TTL 2W
--   blocks: NAME:block     the time the block ends; TTL = the block's length
-- NAME is the name given, bounded by sluice.key_part(name, NAME_MAX) (names carry user
-- names, which clients choose). A block that 'blocks' refuses (full) goes to 'limits'
-- instead, where blocked() looks too, and block() says nil, 'full' so that a policy can
-- refuse the attempt (fail closed).
local sluice = require('sluice')

local ratelimit = {}

local NAME_MAX = 128 -- octets of a name kept as it is
local limits = sluice.zone('limits')
local blocks = sluice.zone('blocks')

-- Checks the arguments; returns the name as keys hold it.
local function check_args(fn, name, window)
  if type(name) ~= 'string' or name == '' then
    error('sluice.ratelimit.' .. fn .. ': name must be a non-empty string', 3)
  end
  if type(window) ~= 'number' or window <= 0 or window % 1 ~= 0 then
    error('sluice.ratelimit.' .. fn .. ': window must be a positive integer (seconds)', 3)
  end
  return sluice.key_part(name, NAME_MAX)
end

-- Count `by` events (0: none) in the window of name at this moment: the estimate for the
-- last `window` seconds, and the key counted in; or nil and the reason.
local function hit(name, window, by)
  local now = sluice.now()
  local index = math.floor(now / window)
  local key = name .. ':' .. window .. ':' .. index
  local current, previous = limits:incr_peek(key, by, 2 * window,
    name .. ':' .. window .. ':' .. (index - 1))
  if not current then return nil, previous end
  local elapsed = (now - index * window) / window
  return previous * (1 - elapsed) + current, key
end

-- Count `by` (default 1) events now; returns the estimated number of events in the
-- last `window` seconds, this one included; or nil and the reason (zone full).
function ratelimit.incr(name, window, by)
  name = check_args('incr', name, window)
  local n, err = hit(name, window, by or 1)
  if not n then return nil, err end
  return n
end

-- Count one event now, before the work it stands for, so that concurrent callers can
-- never all pass a check made before any of them counted (docs/security.md "Limits"):
-- returns the estimate with this event in it, and a receipt for refund(); or nil and the
-- reason. Compare the estimate with the limit; over it, refund and refuse.
function ratelimit.reserve(name, window)
  name = check_args('reserve', name, window)
  return hit(name, window, 1)
end

-- Take back an event reserve() counted (what it stood for succeeded, or never happened).
-- The window it was counted in may have passed: then there is nothing to take back.
function ratelimit.refund(receipt)
  if type(receipt) ~= 'string' then return end
  local left = limits:get(receipt)
  if type(left) == 'number' and left > 0 then
    local n = limits:incr(receipt, -1)
    if n and n < 0 then limits:incr(receipt, 1) end -- raced with its expiry
  end
end

-- Work in progress for `name` (an AUTH being checked): enter() counts one in and returns
-- how many are in now, this one included (or nil and the reason); leave() counts it out.
-- The count lives INFLIGHT_TTL seconds past its last entry, so that one a crashed worker
-- never left cannot hold a client out for ever.
local INFLIGHT_TTL = 120

function ratelimit.enter(name)
  name = check_args('enter', name, 1)
  return limits:incr(name .. ':inflight', 1, INFLIGHT_TTL)
end

function ratelimit.leave(name)
  name = check_args('leave', name, 1)
  local n = limits:incr(name .. ':inflight', -1, INFLIGHT_TTL)
  if n and n < 0 then limits:incr(name .. ':inflight', 1, INFLIGHT_TTL) end -- expired
end

-- The estimated number of events in the last `window` seconds, counting nothing.
function ratelimit.count(name, window)
  name = check_args('count', name, window)
  return hit(name, window, 0) or 0
end

-- Block `name` for `seconds`. Returns true, or nil and the reason: 'full' when the zone
-- blocks has no room (the block is then kept in 'limits', where blocked() sees it but a
-- flood of counters may evict it: refuse the attempt at hand).
function ratelimit.block(name, seconds)
  local key = check_args('block', name, seconds) .. ':block'
  local ends = sluice.now() + seconds
  local ok, err = blocks:set(key, ends, seconds)
  if not ok then limits:set(key, ends, seconds) end
  return ok, err
end

-- Seconds left on the block of `name`, or nil when it is not blocked.
function ratelimit.blocked(name)
  local key = check_args('blocked', name, 1) .. ':block'
  local ends = blocks:get(key)
  if ends == nil then ends = limits:get(key) end
  local left = type(ends) == 'number' and ends - sluice.now()
  return left and left > 0 and left or nil
end

-- ---- sluice ctl ratelimit show | reset | list -----------------------------------------
-- Called by core/daemon/control_cmd.c in the control plane's own state
-- (core/daemon/control_lua.c), whose sluice.ctl walks and deletes keys of any zone; the
-- reply's JSON is the C side's (docs/ctl.md). A runtime failure returns nil, 'reason'.
local CTL_MAX_ENTRIES = 10000 -- keys in one reply, then truncated (CONTROL_MAX_ENTRIES)
local CTL_RESET_PASSES = 64   -- walks of CTL_MAX_ENTRIES keys one reset may make
local BLOCK_SUFFIX = ':block'
local KEY_MAX = 1024          -- octets of a zone key

-- A name as ctl takes it: as a policy gave it, or already bounded as ctl_list shows a
-- long one (its first NAME_MAX - 64 octets, '~', 64 hex digits); nil and why otherwise.
local function ctl_name(name)
  if type(name) ~= 'string' or name == '' then
    return nil, 'a rate-limit name must not be empty'
  end
  if #name + #BLOCK_SUFFIX > KEY_MAX then return nil, 'rate-limit name too long' end
  if #name == NAME_MAX + 1 and name:sub(NAME_MAX - 63, NAME_MAX - 63) == '~'
      and name:sub(NAME_MAX - 62):match('^[0-9a-f]+$') then
    return name
  end
  return sluice.key_part(name, NAME_MAX)
end

-- Entries sorted by key, then zone.
local function by_key(a, b)
  if a.key ~= b.key then return a.key < b.key end
  return a.zone < b.zone
end

-- Every key under prefix in the zones named (every zone when nil), at most
-- CTL_MAX_ENTRIES: the entries sorted, and whether there were more.
local function ctl_walk(ctl, zones, prefix, now, opts)
  local out, truncated = {}, false
  for _, zone in ipairs(zones or ctl.zones()) do
    local got, more = ctl.keys(zone, prefix, now, CTL_MAX_ENTRIES - #out, opts)
    for _, e in ipairs(got) do
      e.zone = zone
      out[#out + 1] = e
    end
    truncated = more
    if truncated then break end
  end
  table.sort(out, by_key)
  return out, truncated
end

-- Seconds left on the block of a bounded name, 0 when not blocked (as blocked() says).
local function block_left(name, now)
  local left = 0
  for _, zone in ipairs({ blocks, limits }) do
    local ends = zone:get(name .. BLOCK_SUFFIX)
    if type(ends) == 'number' and ends - now > left then left = ends - now end
  end
  return left
end

-- `ratelimit show NAME`: { name, blocked = seconds or false, keys = { { key, zone, value,
-- value_cut, ttl }, ... }, truncated }, every key of NAME in every zone.
function ratelimit.ctl_show(name)
  local ctl = require('sluice.ctl')
  local bounded, err = ctl_name(name)
  if not bounded then return nil, err end
  local now = sluice.now()
  local keys, truncated = ctl_walk(ctl, nil, bounded .. ':', now, {})
  for _, e in ipairs(keys) do
    e.ttl = e.expires > 0 and e.expires - now or nil
  end
  local left = block_left(bounded, now)
  return { name = bounded, blocked = left > 0 and left or false, keys = keys,
    truncated = truncated }
end

-- `ratelimit reset NAME`: { name, removed, truncated }. Batches of keys, zone by zone,
-- so that memory stays bounded however many keys the name has.
function ratelimit.ctl_reset(name)
  local ctl = require('sluice.ctl')
  local bounded, err = ctl_name(name)
  if not bounded then return nil, err end
  local now, removed, pass = sluice.now(), 0, 0
  for _, zone in ipairs(ctl.zones()) do
    while pass < CTL_RESET_PASSES do
      local got, more = ctl.keys(zone, bounded .. ':', now, CTL_MAX_ENTRIES,
        { keys_only = true })
      for _, e in ipairs(got) do
        if ctl.delete(zone, e.key, now) then removed = removed + 1 end
      end
      if not more then break end
      pass = pass + 1
    end
  end
  return { name = bounded, removed = removed, truncated = pass == CTL_RESET_PASSES }
end

-- `ratelimit list [PREFIX]`: { blocked = { { name, seconds_left }, ... }, truncated }, the
-- names blocked now whose name starts with prefix, each once.
function ratelimit.ctl_list(prefix)
  local ctl = require('sluice.ctl')
  local now = sluice.now()
  local found, truncated = ctl_walk(ctl, { 'blocks', 'limits' }, prefix or '', now,
    { suffix = BLOCK_SUFFIX, numbers_only = true })
  local blocked = {}
  for i, e in ipairs(found) do
    local prev = found[i - 1]
    -- an ended block whose key lives on is no block; one in both zones shows once
    if e.value > now and not (prev and prev.key == e.key and prev.value > now) then
      blocked[#blocked + 1] = { name = e.key:sub(1, -#BLOCK_SUFFIX - 1),
        seconds_left = e.value - now }
    end
  end
  return { blocked = blocked, truncated = truncated }
end

-- The key a client address is counted under: session.client's (lua/sluice/client_key.lua),
-- with the default /64 unless prefix is given.
ratelimit.client_key = require('sluice.client_key')

return ratelimit
