-- policies/sender_domain.lua: a user sends only as addresses of their own domain.
-- MAIL FROM's domain (parsed from the RFC 5321 path: after the last '@' outside a quoted
-- local part) must equal the authenticated domain, case-insensitively and with U-labels
-- and A-labels equal; subdomains count when the domain sets allow_subdomains; the null
-- sender <> only with allow_null_sender; `senders` lists extra addresses per user.
-- With check_header_from, on_data holds the header From: to the same rule.
-- Refusals are 550 5.7.1 (RFC 3463: delivery not authorized) plus a domain_mismatch
-- audit event; a missing or unreadable From: is 550 5.6.0.
local sluice = require('sluice')
local address = require('sluice.address')
local domains = require('sluice.domains')
local idna = require('sluice.idna')

local NO_SETTINGS = {}

-- Extra addresses this user may send as, normalised, as a set.
local function aliases(cfg, user)
  local set = {}
  local list = cfg.senders and user and cfg.senders[user:lower()]
  for _, a in ipairs(list or {}) do
    local n = address.normalize(a)
    if n then set[n] = true end
  end
  return set
end

-- The session's domain settings (NO_SETTINGS when not declared) and its A-label form.
local function own_domain(session)
  local cfg, own = domains.get(session.domain)
  if cfg then return cfg, own end
  return NO_SETTINGS, session.domain and idna.to_ascii(session.domain)
end

-- May this session (authenticated in domain `own`, A-label) send as `addr` (a path or an
-- addr-spec)?
local function may_send_as(session, cfg, own, addr)
  local m = address.parse(addr)
  if not own or not m then return false end
  if m.domain == own then return true end
  if cfg.allow_subdomains and not m.literal
      and m.domain:sub(-(#own + 1)) == '.' .. own then
    return true
  end
  return aliases(cfg, session.user)[m.local_part .. '@' .. m.domain] == true
end

local function mismatch(session, sender, where)
  sluice.audit('domain_mismatch', {
    email = session.user, domain = session.domain, sender = sender,
    sender_domain = address.domain(sender), ip_address = session.client_address,
    session_id = session.id, source = where,
  })
end

local function on_mail_from(session, tx, sender)
  local cfg, own = own_domain(session)
  if address.is_null(sender) then
    if cfg.allow_null_sender then return nil end
    mismatch(session, '', 'mail_from')
    return sluice.reject(550, '5.7.1', 'The null sender <> is not allowed for your domain')
  end
  if may_send_as(session, cfg, own, sender) then return nil end
  mismatch(session, sender, 'mail_from')
  return sluice.reject(550, '5.7.1', 'Sender address is not in your domain')
end

local function on_data(session, tx)
  local cfg, own = own_domain(session)
  if not cfg.check_header_from then return nil end
  local froms = tx:headers('From')
  local list = #froms == 1 and address.from_header(froms[1])
  if not list then
    return sluice.reject(550, '5.6.0', 'The message needs exactly one valid From: header')
  end
  for _, a in ipairs(list) do
    if not may_send_as(session, cfg, own, a) then
      mismatch(session, a, 'header_from')
      return sluice.reject(550, '5.7.1', 'Header From: address is not in your domain')
    end
  end
  return nil
end

-- on_data has an opinion only for domains with check_header_from; without one, leaving it
-- out lets the engine skip the hook, and the tx table it would build, on every message.
local hooks = { on_mail_from = on_mail_from }
for _, cfg in pairs(sluice.domains) do
  if cfg.check_header_from then hooks.on_data = on_data end
end
return hooks
