local testing = require('sluice.testing')

describe('sluice.domains.get', function()
  local domains = testing.new({ domains = {
    ['example.org'] = { enabled = true },
    ['bücher.example'] = { enabled = false },
    ['xn--mnchen-3ya.de'] = { enabled = true },
  } }):require('sluice.domains')

  it('finds a declared domain whatever its case, with its A-label name', function()
    local cfg, name = domains.get('Example.ORG')
    assert.same({ true, 'example.org' }, { cfg.enabled, name })
  end)

  it('finds a domain declared by U-label when asked by A-label, and the reverse', function()
    assert.is_false(domains.get('XN--BCHER-KVA.example').enabled)
    assert.is_true(domains.get('MÜNCHEN.de').enabled)
  end)

  it('returns nil for a domain that is not declared, or for no domain', function()
    assert.is_nil(domains.get('example.net'))
    assert.is_nil(domains.get(nil))
    assert.is_nil(domains.get('a..b'))
  end)
end)

describe('sluice.domains.of', function()
  local domains = testing.new():require('sluice.domains')

  it('takes what follows the last @', function()
    assert.equal('example.org', domains.of('"a@b"@example.org'))
    assert.is_nil(domains.of('alice'))
    assert.is_nil(domains.of(nil))
  end)
end)
