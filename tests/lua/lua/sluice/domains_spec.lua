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

describe('sluice.domains.stand_in', function()
  local LDAP = { uris = { 'ldaps://ldap.example' }, bind_dn = 'uid=%u,ou=people,dc=example' }
  local OAUTH2 = { issuer = 'https://idp.example', audience = 'smtp://relay.test',
    jwks_file = testing.jwks_file({ testing.jwk('k') }) }
  local function stand_in(decl)
    local name, cfg = testing.new({ domains = decl }):require('sluice.domains').stand_in()
    return name, cfg
  end

  it('is the first by name of the domains with the most common password backends', function()
    local name, cfg = stand_in({
      ['z.example'] = {}, ['m.example'] = { auth = { 'file' } },
      ['a.example'] = { auth = { 'ldap' }, ldap = LDAP },
    })
    assert.same({ 'm.example', { 'file' } }, { name, cfg.auth })
  end)

  it('counts only backends that check passwords', function()
    local name = stand_in({
      ['a.example'] = { auth = { 'oauth2' }, oauth2 = OAUTH2 },
      ['b.example'] = { auth = { 'oauth2' }, oauth2 = OAUTH2 },
      ['c.example'] = { auth = { 'oauth2', 'ldap' }, oauth2 = OAUTH2, ldap = LDAP },
    })
    assert.equal('c.example', name)
  end)

  it('breaks a tie by the list that sorts first', function()
    local name = stand_in({
      ['a.example'] = { auth = { 'ldap' }, ldap = LDAP },
      ['b.example'] = { auth = { 'ldap', 'file' }, ldap = LDAP },
      ['c.example'] = { auth = { 'file' } },
    })
    assert.equal('c.example', name) -- 'file' < 'ldap' < 'ldap,file'
  end)

  it('is nil when no domain checks passwords', function()
    assert.is_nil(stand_in({}))
    assert.is_nil(stand_in({ ['a.example'] = { auth = { 'oauth2' }, oauth2 = OAUTH2 } }))
  end)
end)
