local testing = require('sluice.testing')

describe('the sluice module', function()
  it('runs under LuaJIT, the engine\'s Lua', function()
    assert.is_table(jit) -- .busted sets lua = 'luajit'
  end)

  it('offers exactly the documented API', function()
    local sluice = testing.new():require('sluice')
    local names = {}
    for k in pairs(sluice) do names[#names + 1] = k end
    table.sort(names)
    assert.same({ 'accept', 'audit', 'crypto', 'domains', 'http', 'json', 'key_part', 'ldap',
      'log', 'now', 'passwd', 'reject', 'shdict', 'sleep', 'tempfail', 'zone' }, names)
    assert.same({ 'get', 'incr', 'set' }, (function()
      local s = {}
      for k in pairs(sluice.shdict) do s[#s + 1] = k end
      table.sort(s)
      return s
    end)())
    assert.is_function(sluice.passwd.verify)
    assert.is_function(sluice.ldap.verify)
  end)

  it('takes its C half from sluice.core', function()
    local h = testing.new()
    assert.equal(h.core.shdict, h:require('sluice').shdict)
    assert.equal(h.core.zone, h:require('sluice').zone)
  end)
end)

describe('sluice.key_part', function()
  local h = testing.new()
  local sluice = h:require('sluice')

  it('keeps a string of up to max octets (default 64) as it is', function()
    assert.equal(('a'):rep(64), sluice.key_part(('a'):rep(64)))
    assert.equal(('a'):rep(128), sluice.key_part(('a'):rep(128), 128))
    assert.equal('', sluice.key_part(''))
  end)

  it('bounds a longer one to its head, ~ and its SHA-256, one octet over max', function()
    local s = ('b'):rep(65)
    assert.equal('~' .. h.core.crypto.sha256(s, 'hex'), sluice.key_part(s))
    local long = ('c'):rep(64) .. ('d'):rep(1000)
    local k = sluice.key_part(long, 128)
    assert.equal(129, #k)
    assert.equal(('c'):rep(64) .. '~' .. h.core.crypto.sha256(long, 'hex'), k)
    assert.are_not.equal(k, sluice.key_part(long .. 'e', 128))
  end)

  it('gives what core/store/zone.c gives for the same string', function()
    -- tests/unit/test_zone.c checks the same key
    assert.equal('~9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9',
      sluice.key_part(('x'):rep(65)))
  end)

  it('raises on a max out of range or a non-string', function()
    assert.has_error(function() sluice.key_part('x', 63) end,
      'sluice.key_part: max must be an integer from 64 to 512')
    assert.has_error(function() sluice.key_part('x', 513) end,
      'sluice.key_part: max must be an integer from 64 to 512')
    assert.has_error(function() sluice.key_part(1) end, 'sluice.key_part: s must be a string')
  end)
end)
