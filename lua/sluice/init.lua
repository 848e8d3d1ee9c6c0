-- lua/sluice/init.lua: the `sluice` module every policy requires. It joins the C half,
-- `sluice.core` (registered by the engine in each Lua state, core/lapi_*.c; replaced by
-- the double in lua/sluice/testing.lua under busted), with the Lua half (verdicts,
-- JSON). The helpers sluice.ratelimit, sluice.idna, sluice.address and sluice.domains
-- are separate modules: require('sluice.ratelimit').
local core = require('sluice.core')
local verdict = require('sluice.verdict')

return {
  accept = verdict.accept,
  reject = verdict.reject,
  tempfail = verdict.tempfail,
  log = core.log,
  audit = core.audit,
  now = core.now,
  sleep = core.sleep,
  shdict = core.shdict,
  passwd = core.passwd,
  domains = core.domains,
  crypto = core.crypto,
  ldap = core.ldap,
  http = core.http,
  json = require('sluice.json'),
}
