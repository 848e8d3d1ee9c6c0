-- policies/ratelimit.lua: failed authentications and messages per hour, counted in
-- the zones limits and blocks (all workers) via sluice.ratelimit. docs/policies.md: why.
--  * a client address, and a (user, client address) pair, that fails 5 times in a
--    minute or 20 in an hour is blocked for 5 minutes (the Python design's numbers):
--    421 4.7.0 at connect, 454 4.7.0 at AUTH (RFC 4954 6: temporary failure);
--  * a user, or a whole domain, failing from many addresses is never blocked, which
--    would let a stranger lock them out: above its (higher) thresholds each AUTH for
--    it waits SLOW_DOWN seconds first, and a rate_limit audit event is raised;
--  * messages per user and per domain per hour: 451 4.7.1 at MAIL FROM.
-- Every count is reserved before the work it stands for and settled after it, so the
-- limits hold however many sessions arrive at once (docs/security.md "Limits").
-- Must come before policies/auth.lua in the configuration (its on_auth runs first).
local sluice = require('sluice')
local domains = require('sluice.domains')
local ratelimit = require('sluice.ratelimit')

local BLOCK_SECONDS = 300
local CLIENT_LIMITS = { { 5, 60 }, { 20, 3600 } }   -- { failures, window seconds }
local USER_LIMITS = { { 10, 60 }, { 50, 3600 } }    -- hourly: limits.user_auth_failures_per_hour
local DOMAIN_LIMITS = { { 50, 60 }, { 500, 3600 } } -- limits.domain_auth_failures_per_hour
local SLOW_DOWN = 2                                 -- seconds, well under the hook budget
local USER_MESSAGES_PER_HOUR = 1000                 -- limits.user_messages_per_hour
local DOMAIN_MESSAGES_PER_HOUR = 10000              -- limits.messages_per_hour

-- The thresholds for one subject, the hourly one overridden by the domain's limits.
local function limits(base, cfg, key)
  local hourly = cfg and cfg.limits and cfg.limits[key]
  return hourly and { base[1], { hourly, 3600 } } or base
end

-- What one AUTH attempt counts against. A user of a declared domain is named with the
-- domain's A-label, so 'ann@bücher.example' and 'ann@xn--bcher-kva.example' are one user.
local function subjects(session, user)
  local ip = session.client -- the core's client network (limits.client_ipv6_prefix)
  local cfg, canonical = domains.get(domains.of(user))
  if cfg then user = user:match('^(.*)@') .. '@' .. canonical end
  local list = {
    { scope = 'ip', name = 'auth_fail:ip:' .. ip, limits = CLIENT_LIMITS, block = true },
    { scope = 'user_ip', name = 'auth_fail:user_ip:' .. user .. '|' .. ip,
      limits = CLIENT_LIMITS, block = true },
  }
  if cfg then -- undeclared domains get no per-user or per-domain counters at all
    list[3] = { scope = 'user', name = 'auth_fail:user:' .. user,
      limits = limits(USER_LIMITS, cfg, 'user_auth_failures_per_hour') }
    list[4] = { scope = 'domain', name = 'auth_fail:domain:' .. canonical,
      limits = limits(DOMAIN_LIMITS, cfg, 'domain_auth_failures_per_hour') }
  end
  return list
end

local function raise(session, user, subject, action, count, limit)
  sluice.audit('rate_limit', {
    scope = subject.scope, action = action, email = user, domain = domains.of(user),
    ip_address = session.client_address, count = math.floor(count), limit = limit[1],
    window = limit[2], block_seconds = action == 'block' and BLOCK_SECONDS or nil,
    session_id = session.id,
  })
end

local function on_connect(session)
  if ratelimit.blocked('auth_fail:ip:' .. session.client) then
    return sluice.tempfail(421, '4.7.0', 'Too many failed logins from your address, try later')
  end
  return nil
end

local function refund_all(held)
  for _, r in ipairs(held or {}) do ratelimit.refund(r.receipt) end
end

-- Block a subject whose count reached its limit (once: the audit event says so).
local function block_if_reached(session, user, r)
  if r.subject.block and r.count >= r.limit[1] and not ratelimit.blocked(r.subject.name) then
    ratelimit.block(r.subject.name, BLOCK_SECONDS)
    raise(session, user, r.subject, 'block', r.count, r.limit)
  elseif not r.subject.block and r.count >= r.limit[1] and r.count - 1 < r.limit[1] then
    raise(session, user, r.subject, 'slow_down', r.count, r.limit) -- crossing: once
  end
end

-- Each attempt is counted as a failure before the password is checked (reserved), and
-- given back when it succeeds: however many arrive at once, no more than the limit are
-- ever checked for one client (docs/security.md "Limits"). The attempt over a blocking
-- limit is refused unchecked, and blocks.
local function on_auth(session, auth)
  local user = (auth.user or ''):lower()
  local held, slow = {}, false
  for _, s in ipairs(subjects(session, user)) do
    if s.block and ratelimit.blocked(s.name) then
      refund_all(held)
      return sluice.tempfail(454, '4.7.0', 'Too many failed logins, try again later')
    end
    for _, l in ipairs(s.limits) do
      local n, receipt = ratelimit.reserve(s.name, l[2])
      held[#held + 1] = { subject = s, limit = l, count = n or 0, receipt = receipt }
      if n and n > l[1] and s.block then
        refund_all(held)
        ratelimit.block(s.name, BLOCK_SECONDS)
        raise(session, user, s, 'block', n, l)
        return sluice.tempfail(454, '4.7.0', 'Too many failed logins, try again later')
      end
      slow = slow or (n or 0) > l[1]
    end
  end
  session.data.ratelimit_held = held
  if slow then sluice.sleep(SLOW_DOWN) end
  return nil
end

-- Settles what on_auth reserved: a success (235, or 525: the password was right) gives
-- it back; anything else stays counted (535, and 454 or 451 too: a flood of them must not
-- be free). An attempt that failed before on_auth (a cancel, bad base64, a broken line)
-- is counted now.
local function on_auth_result(session, auth, result)
  local user = (auth.user or ''):lower()
  local held = session.data.ratelimit_held
  session.data.ratelimit_held = nil
  if result.kind == 'accept' or result.code == 525 then
    refund_all(held)
    return
  end
  if not held then
    held = {}
    for _, s in ipairs(subjects(session, user)) do
      for _, l in ipairs(s.limits) do
        held[#held + 1] = { subject = s, limit = l, count = ratelimit.incr(s.name, l[2]) or 0 }
      end
    end
  end
  for _, r in ipairs(held) do block_if_reached(session, user, r) end
end

local function message_subjects(session)
  local cfg, canonical = domains.get(session.domain)
  local lim = cfg and cfg.limits or {}
  local list = {
    { scope = 'user_messages', name = 'messages:user:' .. (session.user or '?'),
      limit = { lim.user_messages_per_hour or USER_MESSAGES_PER_HOUR, 3600 } },
  }
  if canonical then -- another auth policy may serve undeclared domains: no shared counter
    list[2] = { scope = 'domain_messages', name = 'messages:domain:' .. canonical,
      limit = { lim.messages_per_hour or DOMAIN_MESSAGES_PER_HOUR, 3600 } }
  end
  return list
end

-- A message is counted when its transaction starts (reserved) and given back when the
-- upstream did not take it, or when the transaction ends without a relay (RSET, QUIT, a
-- later MAIL, the connection lost): parallel sessions cannot all pass the check.
local function give_back_message(session)
  refund_all(session.data.ratelimit_message)
  session.data.ratelimit_message = nil
end

local function on_mail_from(session, tx, sender)
  give_back_message(session) -- a transaction before this one that never relayed
  local held = {}
  for _, s in ipairs(message_subjects(session)) do
    local n, receipt = ratelimit.reserve(s.name, 3600)
    held[#held + 1] = { receipt = receipt }
    if n and n > s.limit[1] then
      refund_all(held)
      raise(session, session.user, s, 'refuse', n - 1, s.limit)
      return sluice.tempfail(451, '4.7.1', 'Message rate limit reached, try again later')
    end
  end
  session.data.ratelimit_message = held
  return nil
end

-- Only messages the upstream accepted stay counted against the hourly limits.
local function on_relayed(session, tx, reply)
  if reply.success then
    session.data.ratelimit_message = nil
  else
    give_back_message(session)
  end
end

local function on_disconnect(session)
  give_back_message(session)
end

return {
  on_connect = on_connect, on_auth = on_auth, on_auth_result = on_auth_result,
  on_mail_from = on_mail_from, on_relayed = on_relayed, on_disconnect = on_disconnect,
}
