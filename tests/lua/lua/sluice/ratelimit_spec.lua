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

describe('sluice.ratelimit for sluice ctl', function()
  local h, ratelimit
  before_each(function()
    h = testing.new({ now = 6000 })
    ratelimit = h:require('sluice.ratelimit')
  end)

  it('shows every key of a name in every zone, sorted, with its block', function()
    ratelimit.incr('auth_fail:ip:192.0.2.7', 60)
    ratelimit.block('auth_fail:ip:192.0.2.7', 300)
    ratelimit.incr('auth_fail:ip:192.0.2.70', 60)
    h.zones.default:set('auth_fail:ip:192.0.2.7:note', 'x', 0)
    local r = ratelimit.ctl_show('auth_fail:ip:192.0.2.7')
    assert.same({ 'auth_fail:ip:192.0.2.7', 300, false }, { r.name, r.blocked, r.truncated })
    assert.same({
      { key = 'auth_fail:ip:192.0.2.7:60:100', zone = 'limits', value = 1, expires = 6120,
        ttl = 120 },
      { key = 'auth_fail:ip:192.0.2.7:block', zone = 'blocks', value = 6300, expires = 6300,
        ttl = 300 },
      { key = 'auth_fail:ip:192.0.2.7:note', zone = 'default', value = 'x', expires = 0 },
    }, r.keys)
  end)

  it('resets every key of a name and only those', function()
    ratelimit.incr('alice', 60)
    ratelimit.block('alice', 60)
    ratelimit.incr('alice2', 60)
    assert.same({ name = 'alice', removed = 2, truncated = false }, ratelimit.ctl_reset('alice'))
    assert.is_nil(ratelimit.blocked('alice'))
    assert.equal(1, ratelimit.count('alice2', 60))
  end)

  it('lists the names blocked now under a prefix, once each', function()
    ratelimit.block('auth_fail:user:bob', 120)
    ratelimit.block('auth_fail:ip:192.0.2.9', 60)
    ratelimit.block('old', 10)
    h.zones.limits:set('auth_fail:user:bob:block', 6120, 120) -- in both zones
    h:advance(20)
    assert.same({ blocked = { { name = 'auth_fail:user:bob', seconds_left = 100 } },
      truncated = false }, ratelimit.ctl_list('auth_fail:user:'))
    assert.equal(2, #ratelimit.ctl_list('').blocked)
  end)

  it('refuses an empty or overlong name as the control socket says', function()
    assert.same({ nil, 'a rate-limit name must not be empty' }, { ratelimit.ctl_show('') })
    assert.same({ nil, 'rate-limit name too long' }, { ratelimit.ctl_reset(('x'):rep(1020)) })
  end)

  it('takes a long name or its bounded form', function()
    local long = 'auth_fail:user:' .. ('u'):rep(300)
    ratelimit.incr(long, 60)
    local bounded = ratelimit.ctl_show(long).name
    assert.equal(129, #bounded)
    assert.equal(1, #ratelimit.ctl_show(bounded).keys)
  end)
end)
