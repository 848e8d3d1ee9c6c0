-- tests/integration/agreement/fill_zone.lua: EHLO fill-blocks.test fills the zone blocks
-- until it refuses a write, so that test_agreement.py can compare what the shipped
-- policies do with a full zone in the double and in the daemon. Test-only.
local sluice = require('sluice')

local blocks = sluice.zone('blocks')

local function on_helo(session, name)
  if name ~= 'fill-blocks.test' then return nil end
  for n = 1, 100000 do
    if not blocks:set('fill:' .. n, n) then return nil end
  end
  return sluice.tempfail(451, '4.3.0', 'The zone blocks did not fill')
end

return { on_helo = on_helo }
