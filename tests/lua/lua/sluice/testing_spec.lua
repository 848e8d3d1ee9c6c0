local testing = require('sluice.testing')

local function whole(v)
  return { v.kind, v.code, v.enhanced }
end

describe('sluice.testing run: the engine\'s chain rules', function()
  local h, a, b
  before_each(function()
    h = testing.new()
    a = h:load_policy('tests/lua/fixtures/opinions.lua')
    b = h:load_policy('tests/lua/fixtures/opinions.lua')
  end)

  it('gives the documented default when no policy decides', function()
    local s = h:session()
    local tx = h:transaction()
    assert.same({ 'accept' }, whole(h:run('on_connect', { a, b }, s)))
    assert.same({ 'accept' }, whole(h:run('on_helo', { a, b }, s, 'client.example')))
    assert.same({ 'accept' }, whole(h:run('on_mail_from', { a, b }, s, tx, 'a@b.test')))
    assert.same({ 'accept' }, whole(h:run('on_rcpt', { a, b }, s, tx, 'c@d.test')))
    assert.same({ 'accept' }, whole(h:run('on_data', { a, b }, s, tx)))
    assert.same({ 'reject', 535, '5.7.8' },
      whole(h:run('on_auth', { a, b }, s, { mechanism = 'PLAIN', user = 'u@x', password = 'p' })))
    assert.equal(12, s.data.seen) -- every policy was asked each time
  end)

  it('stops at the first verdict and says which policy gave it', function()
    local s = h:session({ data = { want = 'reject' } })
    local v, by = h:run('on_connect', { a, b }, s)
    assert.same({ 'reject', 550, '5.7.1' }, whole(v))
    assert.equal(1, by)
  end)

  it('runs every policy\'s notification hook and returns nothing', function()
    local s = h:session()
    assert.is_nil(h:run('on_relayed', { a, b }, s, h:transaction(), { success = true }))
    assert.is_true(s.data.relayed)
  end)
end)

describe('sluice.testing run: a misbehaving hook', function()
  local h, bad, later
  before_each(function()
    h = testing.new({ domains = { ['example.org'] = { enabled = true } } })
    bad = h:load_policy('tests/lua/fixtures/misbehaving.lua')
    later = h:load_policy('tests/lua/fixtures/opinions.lua')
  end)

  local function policy_error()
    local lines = h:log_events('policy.error')
    return lines[#lines].fields
  end

  it('answers 451 4.3.0 for a hook that raises, and logs the policy file and line', function()
    local s = h:session({ data = { want = 'accept' } })
    assert.same({ 'tempfail', 451, '4.3.0' }, whole(h:run('on_connect', { bad, later }, s)))
    local f = policy_error()
    assert.same({ 'tests/lua/fixtures/misbehaving.lua', 7, 'on_connect' },
      { f.policy, f.line, f.hook })
  end)

  it('answers 451 4.3.0 for a return value that is not a verdict', function()
    assert.same({ 'tempfail', 451, '4.3.0' }, whole(h:run('on_helo', { bad }, h:session(), 'x')))
    assert.equal(9, policy_error().line) -- where the hook is defined
  end)

  it('answers 451 4.3.0 for a hook that sleeps past its budget', function()
    local v = h:run('on_mail_from', { bad }, h:session(), h:transaction(), 'a@example.org')
    assert.same({ 'tempfail', 451, '4.3.0' }, whole(v))
  end)

  it('answers 451 4.3.0 for a verdict altered into an invalid one', function()
    local v = h:run('on_rcpt', { bad }, h:session(), h:transaction(), 'a@example.org')
    assert.same({ 'tempfail', 451, '4.3.0' }, whole(v))
  end)

  it('fails the spec when a policy writes to sluice.domains', function()
    assert.has_error(function() h:run('on_data', { bad }, h:session(), h:transaction()) end,
      'tests/lua/fixtures/misbehaving.lua changed sluice.domains')
  end)

  it('lets on_disconnect wait, as the engine does', function()
    local s = h:session()
    local sleeper = { on_disconnect = function(session)
      require('sluice').sleep(1)
      session.data.after_sleep = true
    end }
    h:run('on_disconnect', { sleeper }, s, 'quit')
    assert.same({ 1 }, h.sleeps)
    assert.is_true(s.data.after_sleep)
  end)

  it('logs an error in a notification hook and still runs the next policy', function()
    local s = h:session()
    assert.is_nil(h:run('on_disconnect', { bad, later }, s, 'quit'))
    assert.equal('on_disconnect', policy_error().hook)
    assert.is_true(s.data.disconnected)
  end)
end)

describe('sluice.testing auth', function()
  it('gives the session its identity on accept and hides the secret afterwards', function()
    local h = testing.new()
    local seen
    local accepting = { on_auth = function() return require('sluice').accept() end }
    local watcher = { on_auth_result = function(_, auth, v) seen = { auth, v.kind } end }
    h:load_policy('tests/lua/fixtures/opinions.lua')
    local s = h:session()
    local v = h:auth({ accepting, watcher }, s,
      { mechanism = 'LOGIN', user = 'Ann@Example.ORG', password = 'pw' })
    assert.same({ 'accept' }, whole(v))
    assert.same({ 'ann@example.org', 'example.org', 'LOGIN' },
      { s.user, s.domain, s.auth_mechanism })
    assert.same({ { mechanism = 'LOGIN', user = 'Ann@Example.ORG' }, 'accept' }, seen)
  end)
end)

describe('sluice.testing fake core', function()
  local h, sluice
  before_each(function()
    h = testing.new({ users = { ['Ann@example.org'] = 'secret' } })
    sluice = h:require('sluice')
  end)

  it('keeps shared dictionary values until their TTL passes', function()
    assert.is_true(sluice.shdict.set('k', 'v', 10))
    h:advance(9)
    assert.equal('v', sluice.shdict.get('k'))
    h:advance(1)
    assert.is_nil(sluice.shdict.get('k'))
  end)

  it('increments atomically from zero and keeps the first TTL', function()
    assert.equal(1, sluice.shdict.incr('n', 1, 10))
    h:advance(5)
    assert.equal(3, sluice.shdict.incr('n', 2, 10))
    h:advance(5)
    assert.equal(4, sluice.shdict.incr('n', 4, 10)) -- expired: starts again
    sluice.shdict.set('s', 'text')
    assert.same({ nil, 'not a number' }, { sluice.shdict.incr('s', 1) })
  end)

  it('deletes a key set to nil, and raises on a bad key or value', function()
    sluice.shdict.set('k', 1)
    sluice.shdict.set('k', nil)
    assert.is_nil(sluice.shdict.get('k'))
    assert.has_error(function() sluice.shdict.set('', 1) end,
      'sluice.zone:set: key must be a string of 1..1024 bytes')
    assert.has_error(function() sluice.shdict.set('k', {}) end,
      'sluice.zone:set: value must be a string, number, boolean or nil')
    assert.has_error(function() sluice.shdict.get(('k'):rep(1025)) end,
      'sluice.zone:get: key must be a string of 1..1024 bytes')
  end)

  it('offers the built-in zones, and the configuration\'s own, with their methods', function()
    for _, name in ipairs({ 'default', 'limits', 'blocks', 'denylist', 'auth_cache', 'jwks' }) do
      local z = sluice.zone(name)
      for _, m in ipairs({ 'get', 'set', 'add', 'incr', 'delete', 'ttl' }) do
        assert.is_function(z[m])
      end
    end
    assert.has_error(function() sluice.zone('nosuch') end,
      "sluice.zone: no zone named 'nosuch' (zones in the configuration, docs/configuration.md)")
    local own = testing.new({ zones = { greylist = { size = '64k' } } }):require('sluice')
    assert.is_true(own.zone('greylist'):set('k', 1))
  end)

  it('serves sluice.shdict from the zone default', function()
    sluice.shdict.set('k', 'v')
    assert.equal('v', sluice.zone('default'):get('k'))
    assert.is_nil(sluice.zone('limits'):get('k'))
  end)

  it('adds only absent keys, deletes, and says the seconds left', function()
    local z = sluice.zone('limits')
    assert.is_true(z:add('k', 1, 10))
    assert.same({ nil, 'exists' }, { z:add('k', 2, 10) })
    h:advance(4)
    assert.equal(6, z:ttl('k'))
    assert.is_nil(z:ttl('absent'))
    z:set('forever', true)
    assert.equal(0, z:ttl('forever'))
    assert.is_true(z:delete('k'))
    assert.is_false(z:delete('k'))
    h:advance(6)
    assert.is_true(z:add('k', 3)) -- gone: may be added again
  end)

  it('refuses writes to a full zone that does not evict, and keeps every entry', function()
    h = testing.new({ zones = { denylist = { size = '32k' } } })
    local z = h:require('sluice').zone('denylist')
    local n = 0
    repeat n = n + 1 until not z:set('entry:' .. n, n)
    assert.is_true(n > 100, n)
    assert.same({ nil, 'full' }, { z:set('entry:' .. n, n) })
    assert.same({ nil, 'full' }, { z:incr('counter', 1) })
    for i = 1, n - 1 do assert.equal(i, z:get('entry:' .. i)) end
    assert.same({ nil, 'full' }, { z:get('absent') }) -- absent, or never written?
    assert.is_true(z:set('entry:1', 0)) -- a value of the same size still fits
    assert.same({ nil }, { z:get('absent') })
  end)

  it('makes room in a full zone from expired entries only', function()
    h = testing.new({ zones = { blocks = { size = '32k' } } })
    local z = h:require('sluice').zone('blocks')
    assert.is_true(z:set('short', 1, 10))
    local n = 0
    repeat n = n + 1 until not z:set('long:' .. n, n, 3600)
    h:advance(10)
    assert.is_true(z:set('new', 1))
    assert.equal(1, z:get('long:1'))
  end)

  it('checks zones as the configuration loader does', function()
    assert.has_error(function() testing.new({ zones = { blocks = { evict = true } } }) end,
      'zones.blocks.evict: this zone holds security state, which is never evicted: '
      .. 'leave evict out, or false')
    assert.has_error(function() testing.new({ zones = { mine = { evict = false } } }) end,
      'zones.mine.size: required')
    assert.has_error(function() testing.new({ zones = { limits = { size = '16k' } } }) end,
      "zones.limits.size: expected octets, or a size like '512k', '8m' or '1g', from 32k to 64g")
    assert.has_error(function() testing.new({ zones = { limits = { size = '1.5m' } } }) end,
      "zones.limits.size: expected octets, or a size like '512k', '8m' or '1g', from 32k to 64g")
    assert.has_error(function() testing.new({ zones = { Bad = { size = '1m' } } }) end,
      'zones: expected a zone name: a lowercase letter, then lowercase letters, digits or _')
    assert.has_error(function()
      testing.new({ shdict_size = 1048576, zones = { default = { size = '1m' } } })
    end, 'zones.default: shdict_size is the size of this zone: give only one of them')
  end)

  it('verifies passwords case-insensitively on the user and reports failures', function()
    assert.is_true(sluice.passwd.verify('ann@EXAMPLE.org', 'secret'))
    assert.is_false(sluice.passwd.verify('ann@example.org', 'Secret'))
    assert.is_false(sluice.passwd.verify('bob@example.org', 'secret'))
    h.passwd_error = 'users file unreadable'
    assert.same({ nil, 'users file unreadable' },
      { sluice.passwd.verify('ann@example.org', 'secret') })
  end)

  it('advances the clock when sleeping', function()
    local t = sluice.now()
    assert.is_true(sluice.sleep(2.5))
    assert.equal(t + 2.5, sluice.now())
    assert.same({ 2.5 }, h.sleeps)
  end)

  it('captures audit lines with timestamp and event_type added', function()
    sluice.audit('custom_event', { n = 1 })
    assert.same({ { n = 1, event_type = 'custom_event',
      timestamp = '2023-11-14T22:13:20.000000Z' } }, h.audits)
    assert.has_error(function() sluice.audit('x', { timestamp = 'mine' }) end,
      'sluice.audit: timestamp and event_type are set by the core')
    assert.has_error(function() sluice.audit('Bad Name', {}) end,
      'sluice.audit: event must be a lowercase name like auth_attempt')
  end)

  it('captures log lines and refuses an unknown level or a badly named event', function()
    sluice.log('info', 'custom.event', { a = 1 })
    assert.same({ { level = 'info', event = 'custom.event', fields = { a = 1 } } }, h.logs)
    assert.has_error(function() sluice.log('loud', 'custom.event') end,
      'sluice.log: level must be debug, info, notice, warning or err')
    assert.has_error(function() sluice.log('info', 'NoDot') end,
      'sluice.log: event must be noun.verb in lowercase')
    assert.has_error(function() sluice.log('info', 'a.b', { sid = 'mine' }) end,
      'sluice.log: field names are strings other than ts, level, event, sid and policy')
    assert.has_error(function() sluice.log('info', 'a.b', { t = {} }) end,
      'sluice.log: field values are strings, numbers or booleans')
  end)
end)

describe('sluice.testing load_policy', function()
  it('refuses a policy whose table has a key that is not a hook', function()
    local path = os.tmpname()
    local f = assert(io.open(path, 'w'))
    f:write('return { on_mailfrom = function() end }\n')
    f:close()
    local ok, err = pcall(function() return testing.new():load_policy(path) end)
    os.remove(path)
    assert.is_false(ok)
    assert.matches('on_mailfrom is not a hook', err)
  end)
end)

describe('sluice.testing session.client', function()
  it('names the client network as core/net/iplimit.c does', function()
    local cases = {
      { '192.0.2.7', '192.0.2.7' },
      { '::ffff:192.0.2.7', '192.0.2.7' },
      { '::FFFF:c000:0207', '192.0.2.7' },
      { '2001:db8:1:2::7', '2001:db8:1:2::/64' },
      { '2001:0DB8:0001:0002:1:2:3:4', '2001:db8:1:2::/64' },
      { '2001:db8::1', '2001:db8::/64' },
      { '2001:db8:0:1::5', '2001:db8:0:1::/64' },
      { '2001:0:0:1::5', '2001:0:0:1::/64' },
      { '::1', '::/64' },
      { 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff::/64' },
      { 'not-an-address', 'not-an-address' },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], testing.client_of(c[1], 64), c[1])
    end
    assert.equal('2001:db8:1::/48', testing.client_of('2001:db8:1:2::7', 48))
    assert.equal('2001:db8:1:200::/56', testing.client_of('2001:db8:1:2ff::7', 56))
    assert.equal('2001:db8:a000::/36', testing.client_of('2001:db8:abcd::', 36))
    assert.equal('1::2:0:0:3:4/128', testing.client_of('1:0:0:2:0:0:3:4', 128))
    assert.equal('::a00:1/128', testing.client_of('::10.0.0.1', 128))
  end)

  it('follows client_address unless given, with the harness\'s prefix', function()
    local h = testing.new()
    assert.equal('192.0.2.10', h:session().client)
    assert.equal('2001:db8:1:2::/64', h:session({ client_address = '2001:db8:1:2::9' }).client)
    assert.equal('x', h:session({ client_address = '2001:db8::1', client = 'x' }).client)
    h = testing.new({ client_ipv6_prefix = 48 })
    assert.equal('2001:db8:1::/48', h:session({ client_address = '2001:db8:1:2::9' }).client)
  end)
end)
