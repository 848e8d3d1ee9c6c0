-- policies/sender_domain.lua: a user sends only as addresses of their own domain.
-- MAIL FROM's domain (parsed from the RFC 5321 path: after the last '@' outside a quoted
-- local part) must equal the authenticated domain, case-insensitively and with U-labels
-- and A-labels equal; subdomains count when the domain sets allow_subdomains; the null
-- sender <> only with allow_null_sender; `senders` lists extra addresses per user.
-- on_data holds the header From: (every mailbox of it) and Sender: to the same rule, for
-- every domain that does not opt out with check_header_from = false (docs/policies.md).
-- A user's address that is not theirs is 550 5.7.1 (RFC 3463: delivery not authorized)
-- plus a domain_mismatch audit event; a header that breaks RFC 5322 3.6 (not exactly one
-- From:, two Sender:, an unreadable one, several From: mailboxes without a Sender:) is
-- 550 5.6.0 (media error): nothing can be checked in it.
local sluice = require('sluice')
local address = require('sluice.address')
local domains = require('sluice.domains')
local idna = require('sluice.idna')

local NO_SETTINGS = {} -- an undeclared domain (a site's own auth policy let it in): defaults

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

local function malformed(text)
  return sluice.reject(550, '5.6.0', text)
end

-- Longer From: or Sender: values are refused before they are parsed: a reader's From: is
-- a few hundred octets, and the parser's tables grow with the value (folding makes a
-- field as long as the message).
local MAX_ADDRESS_LIST = 8192

-- The header From: and Sender: (RFC 5322 3.6.2), as tx:headers lists them: the mailboxes
-- they name, or nil and the reply. Exactly one From: (3.6); at most one Sender:, of one
-- mailbox; a From: of several mailboxes needs a Sender: (3.6.2).
local function originators(froms, senders)
  if #froms == 0 then return nil, malformed('The message has no From: header') end
  if #froms > 1 then return nil, malformed('The message has more than one From: header') end
  if #froms[1] > MAX_ADDRESS_LIST or (senders[1] and #senders[1] > MAX_ADDRESS_LIST) then
    return nil, malformed('The From: or Sender: header is too long')
  end
  local from = address.from_header(froms[1])
  if not from then return nil, malformed('The From: header is not a valid address list') end
  if #senders > 1 then return nil, malformed('The message has more than one Sender: header') end
  local sender = senders[1] and address.from_header(senders[1])
  if senders[1] and not (sender and #sender == 1) then
    return nil, malformed('The Sender: header must hold exactly one address')
  end
  if #from > 1 and not sender then
    return nil, malformed('A From: header with several addresses needs a Sender: header')
  end
  return from, nil, sender and sender[1]
end

-- The last pair of header values this Lua state let through, and for whom. A user's next
-- message nearly always has the same From:, and the answer is a function of these four
-- and the settings, which are constant in a state (a reload makes a new one); strings
-- compare by reference in LuaJIT. One entry, like sluice.idna's: not state that matters.
local passed = {}

local function on_data(session, tx)
  local cfg, own = own_domain(session)
  if cfg.check_header_from == false then return nil end
  local froms, senders = tx:headers('From'), tx:headers('Sender')
  if froms[1] == passed.from and senders[1] == passed.sender and #froms == 1
      and #senders <= 1 and session.user == passed.user and session.domain == passed.domain then
    return nil
  end
  local from, refusal, sender = originators(froms, senders)
  if not from then return refusal end
  for _, a in ipairs(from) do
    if not may_send_as(session, cfg, own, a) then
      mismatch(session, a, 'header_from')
      return sluice.reject(550, '5.7.1', 'Header From: address is not in your domain')
    end
  end
  if sender and not may_send_as(session, cfg, own, sender) then
    mismatch(session, sender, 'header_sender')
    return sluice.reject(550, '5.7.1', 'Header Sender: address is not in your domain')
  end
  passed.from, passed.sender, passed.user, passed.domain =
    froms[1], senders[1], session.user, session.domain
  return nil
end

-- The header check is on unless a domain opts out; on_data is left out only when every
-- declared domain does (then the engine skips the hook, and the tx table it would build,
-- on every message). A session of an undeclared domain gets the defaults: checked.
local hooks = { on_mail_from = on_mail_from }
local all_opt_out = next(sluice.domains) ~= nil
for _, cfg in pairs(sluice.domains) do
  if cfg.check_header_from ~= false then all_opt_out = false end
end
if not all_opt_out then hooks.on_data = on_data end
return hooks
