local testing = require('sluice.testing')

local DOMAINS = {
  ['example.org'] = {},
  ['small.example'] = { limits = { messages_per_hour = 3, user_messages_per_hour = 2,
    user_auth_failures_per_hour = 12 } },
}

local function whole(v)
  return { v.kind, v.code, v.enhanced }
end

-- The clock starts at the top of an hour, so the spec's hours are the counters' windows
-- (ratelimit_spec.lua for lua/sluice has the sliding estimate itself).
local HOUR = 1699999200

local function setup()
  local h = testing.new({ domains = DOMAINS, users = { ['alice@example.org'] = 'right' },
    now = HOUR })
  local policies = { h:load_policy('policies/ratelimit.lua'), h:load_policy('policies/auth.lua') }
  return h, policies
end

-- One AUTH attempt from `ip` as the core runs it (on_auth, then on_auth_result).
local function login(h, policies, ip, user, pw)
  return h:auth(policies, h:session({ client_address = ip }),
    { mechanism = 'PLAIN', user = user, password = pw })
end

describe('policies/ratelimit per client address', function()
  local h, policies
  before_each(function() h, policies = setup() end)

  it('lets a client fail four times in a minute and still log in', function()
    for _ = 1, 4 do login(h, policies, '192.0.2.1', 'alice@example.org', 'wrong') end
    assert.same({ 'accept' }, whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
  end)

  it('blocks AUTH from an address with 454 4.7.0 after 5 failures in a minute', function()
    for i = 1, 5 do login(h, policies, '192.0.2.1', 'user' .. i .. '@example.org', 'x') end
    local v = login(h, policies, '192.0.2.1', 'alice@example.org', 'right')
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
  end)

  it('refuses new connections from a blocked address with 421 4.7.0', function()
    for i = 1, 5 do login(h, policies, '192.0.2.1', 'user' .. i .. '@example.org', 'x') end
    local v = h:run('on_connect', policies, h:session({ client_address = '192.0.2.1' }))
    assert.same({ 'tempfail', 421, '4.7.0' }, whole(v))
    assert.same({ 'accept' },
      whole(h:run('on_connect', policies, h:session({ client_address = '192.0.2.2' }))))
  end)

  it('lifts the block after 5 minutes', function()
    for i = 1, 5 do login(h, policies, '192.0.2.1', 'user' .. i .. '@example.org', 'x') end
    h:advance(300)
    assert.same({ 'accept' }, whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
  end)

  it('blocks after 20 failures in an hour spread below the per-minute limit', function()
    for i = 1, 19 do
      login(h, policies, '192.0.2.1', 'user' .. i .. '@example.org', 'x')
      h:advance(150) -- 2.5 minutes apart: never 5 in a minute
    end
    assert.same({ 'accept' }, whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
    login(h, policies, '192.0.2.1', 'user20@example.org', 'x')
    local v = login(h, policies, '192.0.2.1', 'alice@example.org', 'right')
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
  end)

  it('counts an IPv6 client under its /64', function()
    for i = 1, 5 do login(h, policies, '2001:db8:1:2::' .. i, 'u' .. i .. '@example.org', 'x') end
    local v = login(h, policies, '2001:db8:1:2:ffff::9', 'alice@example.org', 'right')
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
    assert.same({ 'accept' },
      whole(login(h, policies, '2001:db8:1:3::1', 'alice@example.org', 'right')))
  end)

  it('counts a client by session.client, the network the core names', function()
    -- limits.client_ipv6_prefix = 48: two /64s of one site are one client
    local function login48(ip, user, pw)
      return h:auth(policies, h:session({ client_address = ip, client = '2001:db8:1::/48' }),
        { mechanism = 'PLAIN', user = user, password = pw })
    end
    for i = 1, 5 do login48('2001:db8:1:' .. i .. '::1', 'u' .. i .. '@example.org', 'x') end
    assert.same({ 'tempfail', 454, '4.7.0' },
      whole(login48('2001:db8:1:ff::1', 'alice@example.org', 'right')))
    local v = h:run('on_connect', policies,
      h:session({ client_address = '2001:db8:1:9::1', client = '2001:db8:1::/48' }))
    assert.same({ 'tempfail', 421, '4.7.0' }, whole(v))
  end)

  it('counts an IPv4-mapped client as its IPv4 address', function()
    for i = 1, 5 do login(h, policies, '::ffff:192.0.2.1', 'u' .. i .. '@example.org', 'x') end
    assert.same({ 'tempfail', 454, '4.7.0' },
      whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
  end)

  it('raises one rate_limit audit event when it blocks', function()
    for i = 1, 5 do login(h, policies, '192.0.2.1', 'user' .. i .. '@example.org', 'x') end
    local e = h:audit_events('rate_limit')
    assert.equal(1, #e)
    assert.same({ 'ip', 'block', '192.0.2.1', 5, 60, 300 },
      { e[1].scope, e[1].action, e[1].ip_address, e[1].limit, e[1].window, e[1].block_seconds })
  end)

  it('answers a 512-byte user name like any other', function()
    local v = login(h, policies, '192.0.2.1', ('u'):rep(500) .. '@example.org', 'x')
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('counts tempfails like failures, so that a flood of them is not free', function()
    h.passwd_error = 'down'
    for _ = 1, 5 do
      assert.same({ 'tempfail', 454, '4.7.0' },
        whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
    end
    h.passwd_error = nil
    assert.same({ 'tempfail', 454, '4.7.0' },
      whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
    assert.same({ 'accept' }, whole(login(h, policies, '192.0.2.2', 'alice@example.org', 'right')))
  end)

  it('lets no more than 5 attempts through to the password check however many arrive at once',
    function()
      -- ten AUTHs whose on_auth all run before any of their results is known
      local passed, refused = {}, 0
      for i = 1, 10 do
        local session = h:session({ client_address = '192.0.2.1' })
        local auth = { mechanism = 'PLAIN', user = 'u' .. i .. '@example.org', password = 'x' }
        local v = h:run('on_auth', { policies[1] }, session, auth)
        if v.kind == 'tempfail' and v.code == 454 then
          refused = refused + 1
        else
          passed[#passed + 1] = { session, auth }
        end
      end
      assert.same({ 5, 5 }, { #passed, refused })
      -- the five fail: now the address is blocked, at connect too
      for _, p in ipairs(passed) do
        h:run('on_auth_result', policies, p[1], { mechanism = 'PLAIN', user = p[2].user },
          { kind = 'reject', code = 535, enhanced = '5.7.8', text = 'no' })
      end
      assert.same({ 'tempfail', 421, '4.7.0' },
        whole(h:run('on_connect', policies, h:session({ client_address = '192.0.2.1' }))))
    end)

  it('never blocks an address for many right passwords at once', function()
    local passed = {}
    for _ = 1, 10 do
      local session = h:session({ client_address = '192.0.2.1' })
      local auth = { mechanism = 'PLAIN', user = 'alice@example.org', password = 'right' }
      if h:run('on_auth', { policies[1] }, session, auth).kind ~= 'tempfail' then
        passed[#passed + 1] = { session, auth }
      end
    end
    assert.equal(5, #passed) -- the other five are asked to come back, not counted
    for _, p in ipairs(passed) do
      h:run('on_auth_result', policies, p[1], { mechanism = 'PLAIN', user = p[2].user },
        { kind = 'accept', code = 235, enhanced = '2.7.0', text = 'ok' })
    end
    assert.same({ 'accept' },
      whole(h:run('on_connect', policies, h:session({ client_address = '192.0.2.1' }))))
    assert.same({ 'accept' }, whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
  end)

  it('counts an AUTH whose client left during the check as failed', function()
    for i = 1, 5 do
      local session = h:session({ client_address = '192.0.2.1' })
      h:run('on_auth', { policies[1] }, session,
        { mechanism = 'PLAIN', user = 'u' .. i .. '@example.org', password = 'x' })
      h:run('on_disconnect', policies, session)
    end
    assert.same({ 'tempfail', 454, '4.7.0' },
      whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
  end)

  it('gives the reservation back when the password was right', function()
    for _ = 1, 12 do
      assert.same({ 'accept' }, whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
    end
  end)

  it('counts an AUTH that failed before any policy decided (a cancel, bad base64)', function()
    for _ = 1, 5 do
      h:run('on_auth_result', policies, h:session({ client_address = '192.0.2.1' }),
        { mechanism = 'PLAIN', user = '' },
        { kind = 'reject', code = 501, enhanced = '5.0.0', text = 'Authentication cancelled' })
    end
    assert.same({ 'tempfail', 454, '4.7.0' },
      whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
  end)
end)

describe('policies/ratelimit per user', function()
  local h, policies
  before_each(function() h, policies = setup() end)

  it('blocks a (user, address) pair without blocking the user elsewhere', function()
    -- 5 failures for alice from one address, interleaved with successes elsewhere
    for _ = 1, 5 do login(h, policies, '198.51.100.7', 'alice@example.org', 'x') end
    assert.same({ 'tempfail', 454, '4.7.0' },
      whole(login(h, policies, '198.51.100.7', 'alice@example.org', 'right')))
    assert.same({ 'accept' }, whole(login(h, policies, '192.0.2.1', 'alice@example.org', 'right')))
  end)

  it('never locks a user out when strangers fail from many addresses', function()
    for i = 1, 60 do login(h, policies, '203.0.113.' .. i, 'alice@example.org', 'x') end
    local v = login(h, policies, '192.0.2.1', 'alice@example.org', 'right')
    assert.same({ 'accept' }, whole(v))
  end)

  it('slows every AUTH for a user down once strangers cross its threshold', function()
    for i = 1, 9 do login(h, policies, '203.0.113.' .. i, 'alice@example.org', 'x') end
    assert.same({}, h.sleeps)
    login(h, policies, '203.0.113.10', 'alice@example.org', 'x')
    login(h, policies, '192.0.2.1', 'alice@example.org', 'right')
    assert.same({ 2 }, h.sleeps)
    local e = h:audit_events('rate_limit')
    assert.same({ 'user', 'slow_down', 'alice@example.org', 10, 60 },
      { e[1].scope, e[1].action, e[1].email, e[1].limit, e[1].window })
  end)

  it('takes a domain\'s own hourly threshold for its users', function()
    for i = 1, 12 do
      login(h, policies, '203.0.113.' .. i, 'ann@small.example', 'x')
      h:advance(4 * 60) -- one every 4 minutes: far under 10 a minute, 12 within the hour
    end
    local e = h:audit_events('rate_limit')
    assert.same({ 'user', 'slow_down', 12, 3600 }, { e[1].scope, e[1].action, e[1].limit,
      e[1].window })
  end)

  it('keeps no per-user or per-domain counters for undeclared domains', function()
    for i = 1, 20 do login(h, policies, '203.0.113.' .. i, 'x@nowhere.example', 'x') end
    assert.is_not_nil(next(h.stores.limits))
    for key in pairs(h.stores.limits) do
      assert.is_nil(key:match('^auth_fail:user:') or key:match('^auth_fail:domain:'), key)
    end
  end)
end)

describe('policies/ratelimit messages per hour', function()
  local h, policy
  before_each(function()
    h = testing.new({ domains = DOMAINS, now = HOUR })
    policy = h:load_policy('policies/ratelimit.lua')
  end)

  local function send(session)
    local tx = h:transaction({ sender = session.user })
    local v = h:run('on_mail_from', { policy }, session, tx, session.user)
    if v.kind == 'accept' then
      h:run('on_relayed', { policy }, session, tx, { success = true, code = 250 })
    end
    return v
  end

  it('lets a user send up to the hourly limit', function()
    local ann = h:session({ user = 'ann@small.example' })
    assert.same({ 'accept' }, whole(send(ann)))
    assert.same({ 'accept' }, whole(send(ann)))
  end)

  it('tempfails the next message with 451 4.7.1 and raises a rate_limit event', function()
    local ann = h:session({ user = 'ann@small.example' })
    send(ann)
    send(ann)
    assert.same({ 'tempfail', 451, '4.7.1' }, whole(send(ann)))
    assert.equal('user_messages', h:audit_events('rate_limit')[1].scope)
  end)

  it('limits the whole domain across its users', function()
    send(h:session({ user = 'ann@small.example' }))
    send(h:session({ user = 'bea@small.example' }))
    send(h:session({ user = 'cat@small.example' }))
    local dan = h:session({ user = 'dan@small.example' })
    assert.same({ 'tempfail', 451, '4.7.1' }, whole(send(dan)))
  end)

  it('counts only messages the upstream accepted', function()
    local ann = h:session({ user = 'ann@small.example' })
    for _ = 1, 5 do
      h:run('on_relayed', { policy }, ann, h:transaction(), { success = false, code = 451 })
    end
    assert.same({ 'accept' }, whole(send(ann)))
  end)

  it('lets the user send again as the hour slides on', function()
    local ann = h:session({ user = 'ann@small.example' })
    send(ann)
    send(ann)
    h:advance(2 * 3600)
    assert.same({ 'accept' }, whole(send(ann)))
  end)
end)

describe('policies/ratelimit messages in parallel', function()
  local h, policy
  before_each(function()
    h = testing.new({ domains = DOMAINS, now = HOUR })
    policy = h:load_policy('policies/ratelimit.lua')
  end)

  local function start(session)
    return h:run('on_mail_from', { policy }, session, h:transaction({ sender = session.user }),
      session.user)
  end

  it('lets no more than the hourly limit start however many sessions ask at once', function()
    local accepted = 0
    for _ = 1, 5 do -- five sessions of ann at MAIL FROM before any message is relayed
      if start(h:session({ user = 'ann@small.example' })).kind == 'accept' then
        accepted = accepted + 1
      end
    end
    assert.equal(2, accepted)
  end)

  it('gives a message back when its transaction ends without a relay', function()
    local ann = h:session({ user = 'ann@small.example' })
    assert.equal('accept', start(ann).kind)
    h:run('on_disconnect', { policy }, ann) -- the client left before DATA
    local again = h:session({ user = 'ann@small.example' })
    assert.equal('accept', start(again).kind)
    assert.equal('accept', start(again).kind) -- a second MAIL gives the first one back
    assert.equal('accept', start(h:session({ user = 'ann@small.example' })).kind) -- 2 of 2
    assert.equal('tempfail', start(h:session({ user = 'ann@small.example' })).kind)
  end)

  it('gives a message back when the upstream refused it', function()
    local ann = h:session({ user = 'ann@small.example' })
    for _ = 1, 3 do
      local tx = h:transaction({ sender = ann.user })
      assert.equal('accept', h:run('on_mail_from', { policy }, ann, tx, ann.user).kind)
      h:run('on_relayed', { policy }, ann, tx, { success = false, code = 550 })
    end
  end)
end)
