-- lua/sluice/init.lua: the `sluice` module every policy requires. It joins the C half,
-- `sluice.core` (registered by the engine in each Lua state, core/lapi_*.c; replaced by
-- the double in lua/sluice/testing.lua under busted), with the Lua half (verdicts,
-- JSON, key_part). The helpers sluice.ratelimit, sluice.idna, sluice.address and
-- sluice.domains are separate modules: require('sluice.ratelimit').
local core = require('sluice.core')
local verdict = require('sluice.verdict')

-- A string a client chose (a user name, a token id), bounded for use in a zone key: s
-- itself when it is at most max octets (default 64, at most 512); otherwise its first
-- max - 64 octets, '~' and the 64 hex digits of its SHA-256: max + 1 octets, which no
-- string that was kept can equal. core/store/zone.c's zone_key_part() is the same, so keys
-- built here and by `sluice ctl` agree.
local function key_part(s, max)
  max = max or 64
  if type(s) ~= 'string' then error('sluice.key_part: s must be a string', 2) end
  if type(max) ~= 'number' or max % 1 ~= 0 or max < 64 or max > 512 then
    error('sluice.key_part: max must be an integer from 64 to 512', 2)
  end
  if #s <= max then return s end
  return s:sub(1, max - 64) .. '~' .. core.crypto.sha256(s, 'hex')
end

return {
  accept = verdict.accept,
  reject = verdict.reject,
  tempfail = verdict.tempfail,
  log = core.log,
  audit = core.audit,
  now = core.now,
  sleep = core.sleep,
  zone = core.zone,
  shdict = core.shdict,
  key_part = key_part,
  passwd = core.passwd,
  domains = core.domains,
  crypto = core.crypto,
  ldap = core.ldap,
  http = core.http,
  json = require('sluice.json'),
}
