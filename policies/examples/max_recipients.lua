-- policies/examples/max_recipients.lua: a lower recipient cap per message for one
-- domain than limits.max_recipients gives everyone. Past the cap the recipient gets
-- 452 4.5.3 (RFC 5321 4.5.3.1.10: too many recipients, a temporary answer: the client
-- sends the rest in another transaction).
local sluice = require('sluice')
local idna = require('sluice.idna')

local CAP = { ['newsletter.example'] = 10 } -- authenticated domain -> recipients per message
local TEXT = 'Too many recipients for your domain, send the rest separately'

local function on_rcpt(session, tx, recipient)
  local cap = session.domain and CAP[idna.to_ascii(session.domain) or '']
  if cap and #tx.recipients >= cap then
    return sluice.tempfail(452, '4.5.3', TEXT)
  end
  return nil
end

return { on_rcpt = on_rcpt }
