local testing = require('sluice.testing')

local function setup()
  local h = testing.new({ domains = { ['example.org'] = {} },
    users = { ['alice@example.org'] = 'right' } })
  local policies = { h:load_policy('policies/auth.lua'), h:load_policy('policies/audit.lua') }
  return h, policies
end

describe('policies/audit on_auth_result', function()
  local h, policies
  before_each(function() h, policies = setup() end)

  it('writes auth_attempt with the Python design\'s fields for a success', function()
    local v = h:auth(policies, h:session({ client_address = '192.0.2.7' }),
      { mechanism = 'PLAIN', user = 'Alice@Example.org', password = 'right' })
    assert.same({ 'accept' }, { v.kind, v.code, v.enhanced })
    local e = h:audit_events('auth_attempt')
    assert.same({ {
      timestamp = '2023-11-14T22:13:20.000000Z', event_type = 'auth_attempt',
      email = 'Alice@Example.org', domain = 'example.org', ip_address = '192.0.2.7',
      method = 'PLAIN', success = true, code = 235, session_id = '00000001',
    } }, e)
  end)

  it('writes auth_attempt with success false and the reply code for a refusal', function()
    local v = h:auth(policies, h:session(),
      { mechanism = 'LOGIN', user = 'alice@example.org', password = 'wrong' })
    assert.same({ 'reject', 535, '5.7.8' }, { v.kind, v.code, v.enhanced })
    local e = h:audit_events('auth_attempt')[1]
    assert.same({ false, 535, 'LOGIN' }, { e.success, e.code, e.method })
  end)

  it('writes auth_attempt for a tempfailed attempt too', function()
    h.passwd_error = 'down'
    local v = h:auth(policies, h:session(),
      { mechanism = 'PLAIN', user = 'alice@example.org', password = 'right' })
    assert.same({ 'tempfail', 454, '4.7.0' }, { v.kind, v.code, v.enhanced })
    assert.same({ false, 454 }, { h.audits[1].success, h.audits[1].code })
  end)

  it('never writes the password', function()
    h:auth(policies, h:session(), { mechanism = 'PLAIN', user = 'alice@example.org',
      password = 'right' })
    assert.is_nil(require('sluice.json').encode(h.audits):find('right', 1, true))
  end)
end)

describe('policies/audit on_relayed', function()
  it('writes message_relayed with envelope, size, upstream reply and TLS facts', function()
    local h, policies = setup()
    local s = h:session({ user = 'alice@example.org', tls_sni = 'mail.example.org' })
    local tx = h:transaction({ id = '00000001.1', sender = 'alice@example.org',
      recipients = { 'a@example.com', 'b@example.net' }, message = 'Subject: x\r\n\r\nhi\r\n' })
    h:run('on_relayed', policies, s, tx, { success = true, code = 250, enhanced = '2.0.0',
      text = 'Ok: queued as 4BXk2', queue_id = '4BXk2', upstream = '127.0.0.1:2525' })
    assert.same({ {
      timestamp = '2023-11-14T22:13:20.000000Z', event_type = 'message_relayed',
      session_id = '00000001', message_id = '00000001.1', email = 'alice@example.org',
      ip_address = '192.0.2.10', sender = 'alice@example.org',
      recipients = { 'a@example.com', 'b@example.net' }, size = 18, success = true,
      upstream_reply = { code = 250, enhanced = '2.0.0', text = 'Ok: queued as 4BXk2' },
      queue_id = '4BXk2', upstream = '127.0.0.1:2525', tls_version = 'TLSv1.3',
      tls_cipher = 'TLS_AES_256_GCM_SHA384', tls_sni = 'mail.example.org',
    } }, h:audit_events('message_relayed'))
  end)

  it('writes message_relayed for a refused relay with success false', function()
    local h, policies = setup()
    local tx = h:transaction({ sender = 'alice@example.org', recipients = { 'a@example.com' } })
    h:run('on_relayed', policies, h:session({ user = 'alice@example.org' }), tx,
      { success = false, code = 451, enhanced = '4.4.1', text = 'Upstream unreachable' })
    assert.same({ false, 451 }, { h.audits[1].success, h.audits[1].upstream_reply.code })
  end)
end)
