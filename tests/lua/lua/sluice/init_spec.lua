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
    assert.same({ 'accept', 'audit', 'crypto', 'domains', 'http', 'json', 'ldap', 'log', 'now',
      'passwd', 'reject', 'shdict', 'sleep', 'tempfail' }, names)
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
  end)
end)
