-- policies/ratelimit.lua: failed authentications and messages per hour, counted in
-- the zones limits and blocks (all workers) via sluice.ratelimit. docs/policies.md: why.
--  * a client address, and a (user, client address) pair, that fails 5 times in a
--    minute or 20 in an hour is blocked for 5 minutes (the Python design's numbers):
--    421 4.7.0 at connect, 454 4.7.0 at AUTH (RFC 4954 6: temporary failure);
--  * a user, or a whole domain, failing from many addresses is never blocked, which
--    would let a stranger lock them out: above its (higher) thresholds each AUTH for
--    it waits SLOW_DOWN seconds first, and a rate_limit audit event is raised;
--  * messages per user and per domain per hour: 451 4.7.1 at MAIL FROM.
-- Every limit holds however many sessions arrive at once (docs/security.md "Limits"):
-- AUTHs being checked count against a client's failure limit until they end; a message
-- is reserved at MAIL FROM and given back if it never relays.
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

-- Count one failed AUTH against every subject; block a client subject that reached its
-- limit (once: the audit event says so), slow down a user or domain that crossed it.
local function count_failure(session, user)
  for _, s in ipairs(subjects(session, user)) do
    for _, l in ipairs(s.limits) do
      local n = ratelimit.incr(s.name, l[2]) or 0
      if s.block and n >= l[1] and not ratelimit.blocked(s.name) then
        ratelimit.block(s.name, BLOCK_SECONDS)
        raise(session, user, s, 'block', n, l)
      elseif not s.block and n >= l[1] and n - 1 < l[1] then -- crossing: once, not per try
        raise(session, user, s, 'slow_down', n, l)
      end
    end
  end
end

local function leave_all(held)
  for _, name in ipairs(held or {}) do ratelimit.leave(name) end
end

local TOO_MANY = 'Too many failed logins, try again later'

local ADMIT_WAIT = 1    -- seconds an attempt may wait for others from its client to end
local ADMIT_STEP = 0.02 -- seconds between two looks

-- Admit one attempt for a client subject: true once its failures in the window plus the
-- attempts being checked (this one included: taken first, atomically) are within every
-- limit; false when it is blocked or waited ADMIT_WAIT in vain. Right passwords end
-- quickly and leave, so a burst from one address waits a hash or two; wrong ones fail,
-- block, and those waiting behind them are refused unchecked.
local function admit(s)
  local waited = 0
  while true do
    local inflight = ratelimit.enter(s.name) or 1
    local within = true
    for _, l in ipairs(s.limits) do
      within = within and ratelimit.count(s.name, l[2]) + inflight <= l[1]
    end
    if within then return true end
    ratelimit.leave(s.name)
    if ratelimit.blocked(s.name) or waited >= ADMIT_WAIT
        or not pcall(sluice.sleep, ADMIT_STEP) then -- pcall: the hook's budget may be short
      return false
    end
    waited = waited + ADMIT_STEP
  end
end

-- However many AUTHs arrive at once, no more than a client's limit can be checked and
-- fail (docs/security.md "Limits"): an attempt goes to the password check only when
-- admit() says so. One refused is not counted and does not block: it may have been right,
-- and it cost nothing.
local function on_auth(session, auth)
  local user = (auth.user or ''):lower()
  local held, slow = {}, false
  for _, s in ipairs(subjects(session, user)) do
    if s.block and (ratelimit.blocked(s.name) or not admit(s)) then
      leave_all(held)
      return sluice.tempfail(454, '4.7.0', TOO_MANY)
    elseif s.block then
      held[#held + 1] = s.name
    else
      for _, l in ipairs(s.limits) do
        slow = slow or ratelimit.count(s.name, l[2]) >= l[1]
      end
    end
  end
  session.data.ratelimit_held = held
  session.data.ratelimit_user = user
  if slow then sluice.sleep(SLOW_DOWN) end
  return nil
end

-- The attempt is over: it leaves the in-flight counts, and anything but a success (235,
-- or 525: the password was right) counts as a failure: 535, and 454 or 451 too (a flood
-- of them must not be free), and an AUTH that failed before on_auth (a cancel, bad
-- base64, a broken line).
local function on_auth_result(session, auth, result)
  leave_all(session.data.ratelimit_held)
  session.data.ratelimit_held = nil
  if result.kind == 'accept' or result.code == 525 then return end
  count_failure(session, (auth.user or ''):lower())
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

-- The connection ended: a message that never relayed is given back; an AUTH still being
-- checked (the client left) counts as failed.
local function on_disconnect(session)
  give_back_message(session)
  if session.data.ratelimit_held then
    leave_all(session.data.ratelimit_held)
    session.data.ratelimit_held = nil
    count_failure(session, session.data.ratelimit_user or '')
  end
end

return {
  on_connect = on_connect, on_auth = on_auth, on_auth_result = on_auth_result,
  on_mail_from = on_mail_from, on_relayed = on_relayed, on_disconnect = on_disconnect,
}
