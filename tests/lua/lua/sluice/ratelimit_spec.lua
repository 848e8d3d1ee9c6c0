local testing = require('sluice.testing')

describe('sluice.ratelimit counting', function()
  local h, ratelimit
  before_each(function()
    h = testing.new({ now = 6000 }) -- the start of a 60 s window
    ratelimit = h:require('sluice.ratelimit')
  end)

  it('counts hits within one window', function()
    assert.equal(1, ratelimit.incr('k', 60))
    assert.equal(2, ratelimit.incr('k', 60))
    assert.equal(5, ratelimit.incr('k', 60, 3))
    assert.equal(5, ratelimit.count('k', 60))
  end)

  it('keeps separate counts per name and per window length', function()
    ratelimit.incr('a', 60)
    ratelimit.incr('a', 3600)
    ratelimit.incr('a', 3600)
    assert.equal(1, ratelimit.count('a', 60))
    assert.equal(2, ratelimit.count('a', 3600))
    assert.equal(0, ratelimit.count('b', 60))
  end)

  it('weights the previous window by how much of it still overlaps', function()
    for _ = 1, 10 do ratelimit.incr('k', 60) end
    h:advance(60 + 15) -- a quarter into the next window: 3/4 of the old one still counts
    assert.equal(7.5, ratelimit.count('k', 60))
    assert.equal(8.5, ratelimit.incr('k', 60))
  end)

  it('forgets everything after two windows', function()
    for _ = 1, 10 do ratelimit.incr('k', 60) end
    h:advance(120)
    assert.equal(0, ratelimit.count('k', 60))
  end)

  it('keeps counters in the zone limits, where they expire', function()
    ratelimit.incr('k', 60)
    assert.equal(1, h.zones.limits:get('k:60:100'))
    h:advance(121)
    assert.is_nil(h.zones.limits:get('k:60:100'))
  end)

  it('bounds a long name in its keys with sluice.key_part(name, 128)', function()
    local name = 'auth_fail:user_ip:' .. ('u'):rep(500) .. '|192.0.2.1'
    assert.equal(1, ratelimit.incr(name, 60))
    assert.equal(2, ratelimit.incr(name, 60))
    local bounded = name:sub(1, 64) .. '~' .. h.core.crypto.sha256(name, 'hex')
    assert.equal(2, h.zones.limits:get(bounded .. ':60:100'))
    assert.equal(0, ratelimit.count(name .. 'x', 60))
    ratelimit.incr(('n'):rep(128), 60) -- 128 octets: kept as they are
    assert.equal(1, h.zones.limits:get(('n'):rep(128) .. ':60:100'))
  end)

  it('raises on a bad name or window', function()
    assert.has_error(function() ratelimit.incr('', 60) end,
      'sluice.ratelimit.incr: name must be a non-empty string')
    assert.has_error(function() ratelimit.incr('k', 0) end,
      'sluice.ratelimit.incr: window must be a positive integer (seconds)')
    assert.has_error(function() ratelimit.count('k', 1.5) end,
      'sluice.ratelimit.count: window must be a positive integer (seconds)')
  end)
end)

describe('sluice.ratelimit blocks', function()
  local h, ratelimit
  before_each(function()
    h = testing.new()
    ratelimit = h:require('sluice.ratelimit')
  end)

  it('reports the seconds left on a block, then nothing once it ends', function()
    assert.is_nil(ratelimit.blocked('ip'))
    assert.is_true(ratelimit.block('ip', 300))
    assert.equal(300, ratelimit.blocked('ip'))
    h:advance(299)
    assert.equal(1, ratelimit.blocked('ip'))
    h:advance(1)
    assert.is_nil(ratelimit.blocked('ip'))
  end)

  it('keeps a block under NAME:block in the zone blocks for sluice ctl to find', function()
    ratelimit.block('auth_fail:ip:192.0.2.1', 300)
    assert.equal(h.clock + 300, h.zones.blocks:get('auth_fail:ip:192.0.2.1:block'))
    assert.is_nil(h.zones.limits:get('auth_fail:ip:192.0.2.1:block'))
  end)

  it('says full when the zone blocks is, and keeps the block in limits instead', function()
    h = testing.new({ zones = { blocks = { size = '32k' } } })
    ratelimit = h:require('sluice.ratelimit')
    local n = 0
    repeat n = n + 1 until not ratelimit.block('filler:' .. n, 300)
    assert.is_not_nil(ratelimit.blocked('filler:1')) -- nothing was pushed out
    assert.same({ nil, 'full' }, { ratelimit.block('late', 300) })
    assert.equal(300, ratelimit.blocked('late'))
    assert.equal(h.clock + 300, h.zones.limits:get('late:block'))
    h:advance(300)
    assert.is_nil(ratelimit.blocked('late'))
    assert.is_true(ratelimit.block('later', 300)) -- the first ones expired: room again
  end)
end)

describe('sluice.ratelimit.client_key', function()
  local ratelimit = testing.new():require('sluice.ratelimit')

  it('keeps an IPv4 address as it is', function()
    assert.equal('192.0.2.1', ratelimit.client_key('192.0.2.1'))
  end)

  it('counts an IPv4-mapped IPv6 address as its IPv4 address', function()
    assert.equal('192.0.2.1', ratelimit.client_key('::ffff:192.0.2.1'))
  end)

  it('counts an IPv6 address under its /64', function()
    assert.equal('2001:db8:1:2::/64', ratelimit.client_key('2001:db8:1:2:aaaa::1'))
    assert.equal('2001:db8:1:2::/64', ratelimit.client_key('2001:0DB8:0001:0002:1:2:3:4'))
    assert.equal('2001:db8::/64', ratelimit.client_key('2001:db8::1'))
    assert.equal('::/64', ratelimit.client_key('::1'))
    assert.equal('2001:db8:1::/48', ratelimit.client_key('2001:db8:1:2::1', 48))
  end)
end)
