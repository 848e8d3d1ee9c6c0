-- policies/audit.lua: the audit trail of logins and relayed messages, one JSON object
-- per line through sluice.audit (the core adds `timestamp` and `event_type` and writes
-- the line off the loop). Event names and fields follow the Python design; the schema,
-- with the events other policies raise (rate_limit, domain_mismatch, token_validation),
-- is docs/audit.md. Observes only: returns no verdicts.
local sluice = require('sluice')
local domains = require('sluice.domains')

local function on_auth_result(session, auth, result)
  local domain = domains.of(auth.user)
  sluice.audit('auth_attempt', {
    email = auth.user, domain = domain and domain:lower(), ip_address = session.client_address,
    method = auth.mechanism, success = result.kind == 'accept', code = result.code,
    session_id = session.id,
  })
end

local function on_relayed(session, tx, reply)
  sluice.audit('message_relayed', {
    session_id = session.id, message_id = tx.id, email = session.user,
    ip_address = session.client_address, sender = tx.sender, recipients = tx.recipients,
    size = tx.size, success = reply.success,
    upstream_reply = { code = reply.code, enhanced = reply.enhanced, text = reply.text },
    queue_id = reply.queue_id, upstream = reply.upstream,
    tls_version = session.tls_version, tls_cipher = session.tls_cipher,
    tls_sni = session.tls_sni,
  })
end

return { on_auth_result = on_auth_result, on_relayed = on_relayed }
