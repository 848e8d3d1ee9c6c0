local testing = require('sluice.testing')

local DOMAINS = {
  ['example.org'] = { enabled = true, auth = { 'file' } },
  ['example.net'] = { enabled = false },
  ['bücher.example'] = {},
  ['ldap-only.example'] = {
    auth = { 'ldap' },
    ldap = { uris = { 'ldaps://ldap.example:636' }, bind_dn = 'uid=%u,ou=people,dc=example' },
  },
  ['both.example'] = { -- the directory first, then the users file
    auth = { 'ldap', 'file' },
    ldap = { uris = 'ldaps://ldap.example', base_dn = 'ou=people,dc=example',
      bind_dn = 'cn=sluice,dc=example', bind_password = 'service-secret',
      filter = '(mail=%s)' },
  },
}
local LDAP_USERS = {
  ['lara@ldap-only.example'] = 'lara-secret',
  ['bea@both.example'] = 'bea-directory-secret',
}
local USERS = {
  ['alice@example.org'] = 'alice-secret',
  ['carol@example.net'] = 'carol-secret',
  ['dora@xn--bcher-kva.example'] = 'dora-secret', -- users files are named by A-label
  ['eve@other.example'] = 'eve-secret',
  ['bea@both.example'] = 'bea-file-secret',
  ['finn@both.example'] = 'finn-secret', -- in the users file only
}

local function whole(v)
  return { v.kind, v.code, v.enhanced }
end

local function password(user, pw)
  return { mechanism = 'PLAIN', user = user, password = pw }
end

describe('policies/auth on_auth', function()
  local h, policy
  before_each(function()
    h = testing.new({ domains = DOMAINS, users = USERS })
    policy = h:load_policy('policies/auth.lua')
  end)

  it('accepts the right password of a user in an enabled domain', function()
    local v = policy.on_auth(h:session(), password('alice@example.org', 'alice-secret'))
    assert.same({ 'accept' }, whole(v))
  end)

  it('accepts a user whatever the case of the identity', function()
    local v = policy.on_auth(h:session(), password('Alice@EXAMPLE.org', 'alice-secret'))
    assert.same({ 'accept' }, whole(v))
  end)

  it('accepts a user of a domain declared by its U-label', function()
    local v = policy.on_auth(h:session(), password('dora@bücher.example', 'dora-secret'))
    assert.same({ 'accept' }, whole(v))
  end)

  it('rejects a wrong password with 535 5.7.8', function()
    local v = policy.on_auth(h:session(), password('alice@example.org', 'guess'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('rejects an unknown user exactly like a wrong password', function()
    local unknown = policy.on_auth(h:session(), password('mallory@example.org', 'x'))
    local wrong = policy.on_auth(h:session(), password('alice@example.org', 'x'))
    assert.same({ 'reject', 535, '5.7.8', wrong.text }, { unknown.kind, unknown.code,
      unknown.enhanced, unknown.text })
    assert.equal(2, h.verifications) -- both cost a hash
  end)

  it('does not serve a domain that is not declared, after the hash a user costs', function()
    local v = policy.on_auth(h:session(), password('eve@other.example', 'eve-secret'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
    assert.same({ 1, 0 }, { h.verifications, h.ldap_verifications })
  end)

  it('rejects an identity without a domain, after the hash a user costs', function()
    local v = policy.on_auth(h:session(), password('alice', 'x'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
    assert.equal(1, h.verifications)
  end)

  it('tells the right password of a disabled domain 525 5.7.13', function()
    local v = policy.on_auth(h:session(), password('carol@example.net', 'carol-secret'))
    assert.same({ 'reject', 525, '5.7.13' }, whole(v))
    assert.matches('disabled', v.text)
  end)

  it('tells a wrong password of a disabled domain only 535 5.7.8', function()
    local v = policy.on_auth(h:session(), password('carol@example.net', 'guess'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('tempfails with 454 4.7.0 when the users file cannot be checked', function()
    h.passwd_error = 'offload queue full'
    local v = policy.on_auth(h:session(), password('alice@example.org', 'alice-secret'))
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
    assert.equal('auth.backend_error', h.logs[1].event)
  end)

  it('leaves a bearer token to the next policy', function()
    local token = { mechanism = 'XOAUTH2', user = 'alice@example.org', token = 'eyJ...' }
    assert.is_nil(policy.on_auth(h:session(), token))
  end)

end)

describe('policies/auth with an LDAP directory', function()
  local h, policy
  before_each(function()
    h = testing.new({ domains = DOMAINS, users = USERS, ldap_users = LDAP_USERS })
    policy = h:load_policy('policies/auth.lua')
  end)

  it('accepts the password the directory knows, without the users file', function()
    local v = policy.on_auth(h:session(), password('lara@ldap-only.example', 'lara-secret'))
    assert.same({ 'accept' }, whole(v))
    assert.same({ 1, 0 }, { h.ldap_verifications, h.verifications })
  end)

  it('rejects a wrong password with 535 5.7.8', function()
    local v = policy.on_auth(h:session(), password('lara@ldap-only.example', 'guess'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('rejects a user the directory does not know exactly like a wrong password', function()
    local unknown = policy.on_auth(h:session(), password('x@ldap-only.example', 'guess'))
    local wrong = policy.on_auth(h:session(), password('lara@ldap-only.example', 'guess'))
    assert.same({ 'reject', 535, '5.7.8', wrong.text }, { unknown.kind, unknown.code,
      unknown.enhanced, unknown.text })
  end)

  it('tempfails with 454 4.7.0, not 535, when the directory cannot be asked', function()
    h.ldap_error = 'no answer within 5 s (user bind)'
    local v = policy.on_auth(h:session(), password('lara@ldap-only.example', 'lara-secret'))
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
    assert.same({ user = 'lara@ldap-only.example', error = h.ldap_error },
      h:log_events('auth.backend_error')[1].fields)
  end)

  it('tempfails a wrong password too while the directory is down', function()
    h.ldap_error = 'connect: Connection refused'
    local v = policy.on_auth(h:session(), password('lara@ldap-only.example', 'guess'))
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
  end)

  it('asks the directory first and accepts without the users file', function()
    local v = policy.on_auth(h:session(), password('bea@both.example', 'bea-directory-secret'))
    assert.same({ 'accept' }, whole(v))
    assert.same({ 1, 0 }, { h.ldap_verifications, h.verifications })
  end)

  it('falls back to the users file when the directory says no', function()
    local v = policy.on_auth(h:session(), password('finn@both.example', 'finn-secret'))
    assert.same({ 'accept' }, whole(v))
    assert.same({ 1, 1 }, { h.ldap_verifications, h.verifications })
  end)

  it('accepts from the users file while the directory is down', function()
    h.ldap_error = 'connect: Connection refused'
    local v = policy.on_auth(h:session(), password('bea@both.example', 'bea-file-secret'))
    assert.same({ 'accept' }, whole(v))
  end)

  it('tempfails when the directory is down and the users file says no', function()
    h.ldap_error = 'connect: Connection refused'
    local v = policy.on_auth(h:session(), password('bea@both.example', 'guess'))
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
  end)

  it('rejects with 535 when neither the directory nor the users file knows it', function()
    local v = policy.on_auth(h:session(), password('nobody@both.example', 'guess'))
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
    assert.same({ 1, 1 }, { h.ldap_verifications, h.verifications })
  end)

  it('does not ask the directory for a domain whose auth list leaves it out', function()
    local v = policy.on_auth(h:session(), password('alice@example.org', 'alice-secret'))
    assert.same({ 'accept' }, whole(v))
    assert.equal(0, h.ldap_verifications)
  end)

  it('shows the directory settings to policies without the service password', function()
    local ldap = h:require('sluice').domains['both.example'].ldap
    assert.same({ { 'ldaps://ldap.example' }, '(mail=%s)', 5, 4, true },
      { ldap.uris, ldap.filter, ldap.timeout, ldap.max_connections, ldap.starttls })
    assert.is_nil(ldap.bind_password)
  end)
end)

describe('policies/auth in the chain', function()
  it('leaves a bearer token to the engine\'s default: 535 5.7.8', function()
    local h = testing.new({ domains = DOMAINS, users = USERS })
    local policy = h:load_policy('policies/auth.lua')
    local v = h:auth({ policy }, h:session(),
      { mechanism = 'OAUTHBEARER', user = 'alice@example.org', token = 't' })
    assert.same({ 'reject', 535, '5.7.8' }, whole(v))
  end)

  it('fixes the session\'s identity on accept', function()
    local h = testing.new({ domains = DOMAINS, users = USERS })
    local s = h:session()
    h:auth({ h:load_policy('policies/auth.lua') }, s, password('Alice@Example.org', 'alice-secret'))
    assert.same({ 'alice@example.org', 'example.org' }, { s.user, s.domain })
  end)
end)

describe('policies/auth: the refusals look alike and cost alike', function()
  local ANSWER = { 'reject', 535, '5.7.8', 'Authentication credentials invalid' }
  local function reply(v) return { v.kind, v.code, v.enhanced, v.text } end

  it('gives a wrong password, an unknown user, an unknown domain and no domain the same '
    .. 'reply and one hash each, and the log line each its own reason', function()
    local cases = {
      { 'alice@example.org', 'file: wrong password' },
      { 'mallory@example.org', 'file: unknown user' },
      { 'eve@other.example', 'domain not declared' },
      { 'alice', 'no domain in the user name' },
    }
    for _, case in ipairs(cases) do
      local h = testing.new({ domains = DOMAINS, users = USERS, ldap_users = LDAP_USERS })
      local v = h:load_policy('policies/auth.lua').on_auth(h:session(),
        password(case[1], 'guess'))
      assert.same(ANSWER, reply(v))
      assert.same({ case[2], 1, 0 }, { v.reason, h.verifications, h.ldap_verifications })
    end
  end)

  it('names every backend that said no in the reason', function()
    local h = testing.new({ domains = DOMAINS, users = USERS, ldap_users = LDAP_USERS })
    local v = h:load_policy('policies/auth.lua').on_auth(h:session(),
      password('nobody@both.example', 'guess'))
    assert.same(ANSWER, reply(v))
    assert.equal('ldap: no such user; file: unknown user', v.reason)
  end)

  it('asks the directory of the stand-in domain, for nobody, when most domains use one',
    function()
    local ldap = { uris = { 'ldaps://ldap.example' }, bind_dn = 'uid=%u,ou=people,dc=example' }
    local h = testing.new({ domains = {
      ['a.example'] = { auth = { 'ldap' }, ldap = ldap },
      ['b.example'] = { auth = { 'ldap' }, ldap = ldap },
      ['c.example'] = {},
    }, users = USERS, ldap_users = { ['sluice-no-such-user@a.example'] = 'guess' } })
    local v = h:load_policy('policies/auth.lua').on_auth(h:session(),
      password('eve@other.example', 'guess'))
    assert.same(ANSWER, reply(v)) -- whatever the stand-in's directory says
    assert.same({ 0, 1, 'domain not declared' },
      { h.verifications, h.ldap_verifications, v.reason })
  end)

  it('costs a domain that checks no passwords the stand-in\'s checks too', function()
    local h = testing.new({ domains = {
      ['example.org'] = {},
      ['tokens.example'] = { auth = { 'oauth2' }, oauth2 = { issuer = 'https://idp.example',
        audience = 'smtp://relay.test', jwks_file = testing.jwks_file({ testing.jwk('k') }) } },
    }, users = USERS })
    local v = h:load_policy('policies/auth.lua').on_auth(h:session(),
      password('tom@tokens.example', 'guess'))
    assert.same(ANSWER, reply(v))
    assert.same({ 1, 'no password backend for the domain' }, { h.verifications, v.reason })
  end)

  it('answers at once when no domain checks passwords at all', function()
    local h = testing.new({ domains = {}, users = USERS })
    local v = h:load_policy('policies/auth.lua').on_auth(h:session(),
      password('eve@other.example', 'guess'))
    assert.same(ANSWER, reply(v))
    assert.equal(0, h.verifications)
  end)

  it('keeps control bytes of a backend\'s words out of the log reason', function()
    local h = testing.new({ domains = DOMAINS, users = USERS, ldap_users = LDAP_USERS })
    h.ldap_error = 'bind as \'uid=a\1b\': \r\nBusy'
    local v = h:load_policy('policies/auth.lua').on_auth(h:session(),
      password('lara@ldap-only.example', 'guess'))
    assert.same({ 'tempfail', 454, '4.7.0' }, whole(v))
    assert.equal('ldap: bind as \'uid=a?b\': ??Busy', v.reason)
  end)

  it('cuts a long reason to what a verdict holds', function()
    local h = testing.new({ domains = DOMAINS, users = USERS, ldap_users = LDAP_USERS })
    h.ldap_error = ('x'):rep(400)
    local v = h:load_policy('policies/auth.lua').on_auth(h:session(),
      password('lara@ldap-only.example', 'guess'))
    assert.equal(255, #v.reason)
    assert.matches('%.%.%.$', v.reason)
  end)
end)

describe('policies/auth: a domain not declared while the stand-in cannot check', function()
  it('tempfails with 454 4.7.0, as the stand-in domain\'s unknown users are', function()
    local ldap = { uris = { 'ldaps://ldap.example' }, bind_dn = 'uid=%u,ou=people,dc=example' }
    local h = testing.new({ domains = { ['a.example'] = { auth = { 'ldap' }, ldap = ldap } } })
    h.ldap_error = 'connect: Connection refused'
    local policy = h:load_policy('policies/auth.lua')
    local undeclared = policy.on_auth(h:session(), password('eve@other.example', 'guess'))
    local unknown = policy.on_auth(h:session(), password('eve@a.example', 'guess'))
    assert.same(whole(unknown), whole(undeclared))
    assert.same({ 'tempfail', 454, '4.7.0', unknown.text }, { undeclared.kind,
      undeclared.code, undeclared.enhanced, undeclared.text })
    assert.equal('domain not declared; stand-in ldap: connect: Connection refused',
      undeclared.reason)
  end)
end)
