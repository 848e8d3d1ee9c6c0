local testing = require('sluice.testing')

describe('policies/examples/recipient_domains on_rcpt', function()
  local h, policy
  before_each(function()
    h = testing.new()
    policy = h:load_policy('policies/examples/recipient_domains.lua')
  end)

  local function rcpt(user, recipient)
    return h:run('on_rcpt', { policy }, h:session({ user = user }), h:transaction(), recipient)
  end

  it('accepts a listed recipient domain for the restricted sending domain', function()
    assert.same({ 'accept' }, { rcpt('billing@billing.example', 'c@Example.COM').kind })
    assert.same({ 'accept' }, { rcpt('billing@billing.example', 'c@xn--bcher-kva.example').kind })
  end)

  it('rejects any other recipient domain with 550 5.7.1', function()
    local v = rcpt('billing@billing.example', 'c@example.net')
    assert.same({ 'reject', 550, '5.7.1' }, { v.kind, v.code, v.enhanced })
  end)

  it('judges the recipient by the domain after the last @', function()
    local v = rcpt('billing@billing.example', '"c@example.com"@evil.test')
    assert.same({ 'reject', 550, '5.7.1' }, { v.kind, v.code, v.enhanced })
  end)

  it('leaves other sending domains alone', function()
    assert.same({ 'accept' }, { rcpt('ann@example.org', 'c@example.net').kind })
  end)
end)
