-- tests/integration/agreement/probe.lua: a policy for test_agreement.py that reports what
-- its hooks see, as the text of a refusal, so that the daemon and the test double can be
-- compared on their inputs, not only on the shipped policies' verdicts:
--  * EHLO probe-helo.test is refused with the previous HELO name;
--  * RCPT probe-<what>@probe.test is refused with a description of <what> (session, tx,
--    domain, auth); probe-error@ raises, probe-bogus@ returns a table that is not a verdict;
--  * a message whose Subject is "probe" is refused with a description of the message;
--  * on_auth_result notes each verdict it is given; RCPT probe-auth@probe.test is
--    refused with those notes.
-- Everything else passes (nil). Facts that differ by nature (ids, ports, times, the
-- cipher the client chose) are left out.
local sluice = require('sluice')

local function show(v)
  if type(v) ~= 'table' then return tostring(v) end
  local parts = {}
  if #v > 0 then
    for _, x in ipairs(v) do parts[#parts + 1] = show(x) end
  else
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. '=' .. show(v[k]) end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- A verdict text must be printable ASCII, at most 255 bytes (lua/sluice/verdict.lua).
local function refuse(text)
  text = text:gsub('[^\32-\126]', '?')
  return sluice.reject(550, '5.7.1', 'probe ' .. text:sub(1, 249))
end

local PROBES = {
  session = function(session)
    return ('user=%s domain=%s mech=%s helo=%s listener=%s tls=%s addr=%s rcpts=%s'):format(
      tostring(session.user), tostring(session.domain), tostring(session.auth_mechanism),
      tostring(session.helo), tostring(session.listener), tostring(session.tls_version),
      tostring(session.client_address), show(session.data.rcpts))
  end,
  auth = function(session)
    return table.concat(session.data.probe_auth or {}, ' | ')
  end,
  domain = function(session)
    return show(sluice.domains[session.domain])
  end,
  tx = function(session, tx)
    return ('sender=%s rcpts=%s size=%s declared=%s utf8=%s'):format(tostring(tx.sender),
      show(tx.recipients), tostring(tx.size), tostring(tx.declared_size),
      tostring(tx.smtputf8))
  end,
}

local function on_auth_result(session, auth, verdict)
  local notes = session.data.probe_auth or {}
  notes[#notes + 1] = ('%s %s %s %s'):format(verdict.kind, tostring(verdict.code),
    tostring(verdict.enhanced), tostring(verdict.text))
  session.data.probe_auth = notes
end

local function on_helo(session, name)
  if name == 'probe-helo.test' then return refuse('helo=' .. tostring(session.helo)) end
  return nil
end

local function on_rcpt(session, tx, recipient)
  session.data.rcpts = (session.data.rcpts or 0) + 1
  local what = recipient:match('^probe%-(%a+)@probe%.test$')
  if what == 'error' then
    error('probe raised')
  elseif what == 'bogus' then
    return { kind = 'reject', code = 550, enhanced = '5.7.1', text = 'look-alike' }
  elseif what and PROBES[what] then
    return refuse(PROBES[what](session, tx))
  end
  return nil
end

local function on_data(session, tx)
  if tx:header('Subject') ~= 'probe' then return nil end
  local names = {}
  for _, h in ipairs(tx:headers()) do names[#names + 1] = h.name end
  return refuse(('headers=%s from=%s x=%s folded=%s empty=[%s] rcpts=%d size=%s body=%d:%s')
    :format(table.concat(names, ','), tostring(tx:header('from')),
    table.concat(tx:headers('X-Twice'), '|'), tostring(tx:header('x-folded')),
    tostring(tx:header('X-Empty')), #tx.recipients, tostring(tx.size), #tx:body(),
    tx:body(12)))
end

return { on_helo = on_helo, on_auth_result = on_auth_result, on_rcpt = on_rcpt,
  on_data = on_data }
