-- tests/integration/agreement/run_double.lua: replays one scenario's SMTP steps through
-- the test double (lua/sluice/testing.lua), the way a user's busted spec drives a policy
-- chain, and prints the verdict of every step as JSON on stdout. test_agreement.py sends
-- the same steps to a real sluice and compares the replies step by step. It decides
-- nothing itself: mapping an accept to the core's own reply is the Python side's job.
--
-- Run from the repository root:  luajit tests/integration/agreement/run_double.lua FILE
-- where FILE holds the scenario as JSON:
--   { "policies": [ path, ... ], "domains": { ...the configuration's domains... },
--     "users": { "local@a-label": "password", ... }, "zones": { ...or null... },
--     "connections": [ { "client_address": "127.0.0.9", "steps": [ step, ... ] }, ... ] }
-- A step is { "op": "connect" | "ehlo" | "auth" | "mail" | "rcpt" | "data", ... }:
--   ehlo: name; auth: mechanism, user, password; mail: sender, smtputf8, size (SIZE=);
--   rcpt: recipient; data: message (the raw message, LF or CRLF line ends).
-- A step with "core" set is answered by the core before any hook (530 Authentication
-- required, ...): the double has no model of it, so it is reported as skipped.
-- Output: { "connections": [ [ { op, hook, kind, code, enhanced, text, by }, ... ] ] },
-- kind 'core' for a step that would never reach a hook (no AUTH yet, no transaction),
-- plus policy_errors (the policy.error messages) and audits (the sluice.audit lines);
-- or { "error": "..." } when the scenario could not be run.
package.path = './lua/?.lua;./lua/?/init.lua;' .. package.path

local json = require('sluice.json')
local testing = require('sluice.testing')

local function read_file(path)
  local f = assert(io.open(path, 'rb'))
  local text = f:read('*a')
  f:close()
  return text
end

-- The verdict as plain JSON-able fields, and which policy (1-based, in order) gave it.
local function outcome(op, hook, v, by)
  return { op = op, hook = hook, kind = v.kind, code = v.code, enhanced = v.enhanced,
    text = v.text, by = by }
end

-- A step the core refuses before any hook runs, because an earlier step of the scenario
-- went differently than its author meant: reported, so the comparison shows it.
local function gate(op, why)
  return { op = op, kind = 'core', text = why }
end

-- One client connection: a session, then each step as the core would run its hook.
local function replay(h, policies, conn, n)
  local out, session, tx = {}, nil, nil
  local txs = 0
  for _, step in ipairs(conn.steps) do
    local op = step.op
    if step.core then
      out[#out + 1] = { op = op, skipped = true }
    elseif op == 'connect' then
      session = h:session({ client_address = conn.client_address, client_port = 40000 + n })
      session.helo = nil -- the double's default; the real session has none before EHLO
      local v, by = h:run('on_connect', policies, session)
      out[#out + 1] = outcome(op, 'on_connect', v, by)
    elseif op == 'ehlo' then
      local v, by = h:run('on_helo', policies, session, step.name)
      if v.kind == 'accept' then
        session.helo, tx = step.name, nil -- RFC 5321 4.1.4: EHLO resets the transaction
      end
      out[#out + 1] = outcome(op, 'on_helo', v, by)
    elseif op == 'auth' then
      -- harness:auth runs on_auth, sets the identity on accept, then on_auth_result.
      local v = h:auth(policies, session,
        { mechanism = step.mechanism or 'PLAIN', user = step.user, password = step.password })
      out[#out + 1] = outcome(op, 'on_auth', v, nil)
    elseif op == 'mail' and not session.user then
      out[#out + 1] = gate(op, 'not authenticated: the core answers 530 before on_mail_from')
    elseif (op == 'rcpt' or op == 'data') and not tx then
      out[#out + 1] = gate(op, 'no transaction: the core answers 503 before on_' .. op)
    elseif op == 'mail' then
      txs = txs + 1
      tx = h:transaction({ id = ('%s.%d'):format(session.id, txs), sender = step.sender,
        declared_size = step.size, smtputf8 = step.smtputf8 or false })
      local v, by = h:run('on_mail_from', policies, session, tx, step.sender)
      if v.kind ~= 'accept' then tx = nil end
      out[#out + 1] = outcome(op, 'on_mail_from', v, by)
    elseif op == 'rcpt' then
      local v, by = h:run('on_rcpt', policies, session, tx, step.recipient)
      if v.kind == 'accept' then tx.recipients[#tx.recipients + 1] = step.recipient end
      out[#out + 1] = outcome(op, 'on_rcpt', v, by)
    elseif op == 'data' then
      -- The message arrives only now: a transaction with the same envelope and it.
      local full = h:transaction({ id = tx.id, sender = tx.sender, recipients = tx.recipients,
        declared_size = tx.declared_size, smtputf8 = tx.smtputf8, message = step.message })
      local v, by = h:run('on_data', policies, session, full)
      if v.kind == 'accept' then -- relayed: the sink accepts everything
        h:run('on_relayed', policies, session, full, { success = true, code = 250,
          enhanced = '2.0.0', text = 'Ok: queued as ' .. full.id })
      end
      tx = nil
      out[#out + 1] = outcome(op, 'on_data', v, by)
    else
      error('unknown step ' .. tostring(op))
    end
  end
  if session then h:run('on_disconnect', policies, session, 'client quit') end
  return out
end

local function run(scenario)
  local h = testing.new({ domains = scenario.domains, users = scenario.users,
    zones = scenario.zones ~= json.null and scenario.zones or nil })
  local policies = {}
  for i, path in ipairs(scenario.policies) do policies[i] = h:load_policy(path) end
  local result = {}
  for n, conn in ipairs(scenario.connections) do result[n] = replay(h, policies, conn, n) end
  local errors = {}
  for _, line in ipairs(h:log_events('policy.error')) do
    errors[#errors + 1] = line.fields.error
  end
  return { connections = result, policy_errors = errors, audits = h.audits }
end

local ok, result = pcall(function() return run(json.decode(read_file(assert(arg[1])))) end)
io.write(json.encode(ok and result or { error = tostring(result) }), '\n')
os.exit(ok and 0 or 1)
