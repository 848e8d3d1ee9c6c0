-- policies/examples/recipient_domains.lua: a sending domain that may only write to
-- listed recipient domains (say, a billing system that mails customers of two brands).
-- Domains not in ALLOWED are unaffected. Recipient domains compare as sender_domain.lua
-- compares senders: parsed from the path, case-insensitive, U-label = A-label.
local sluice = require('sluice')
local address = require('sluice.address')
local idna = require('sluice.idna')

-- sending domain -> recipient domains it may write to (any spelling; normalised below)
local ALLOWED = {
  ['billing.example'] = { 'example.com', 'bücher.example' },
}

-- The same table keyed by A-label, each list turned into a set. Built once at load:
-- file-level state stays constant.
local allowed = {}
for sending, list in pairs(ALLOWED) do
  local set = {}
  for _, d in ipairs(list) do set[assert(idna.to_ascii(d))] = true end
  allowed[assert(idna.to_ascii(sending))] = set
end

local function on_rcpt(session, tx, recipient)
  local set = session.domain and allowed[idna.to_ascii(session.domain) or '']
  if not set then return nil end
  if set[address.domain(recipient) or ''] then return nil end
  return sluice.reject(550, '5.7.1', 'Your domain may not send to this recipient domain')
end

return { on_rcpt = on_rcpt }
