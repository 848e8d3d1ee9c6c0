local testing = require('sluice.testing')

describe('policies/examples/max_recipients on_rcpt', function()
  local h, policy
  before_each(function()
    h = testing.new()
    policy = h:load_policy('policies/examples/max_recipients.lua')
  end)

  local function rcpt(user, n_before)
    local list = {}
    for i = 1, n_before do list[i] = 'r' .. i .. '@example.com' end
    return h:run('on_rcpt', { policy }, h:session({ user = user }),
      h:transaction({ recipients = list }), 'next@example.com')
  end

  it('accepts recipients up to the domain\'s cap', function()
    assert.same({ 'accept' }, { rcpt('news@newsletter.example', 9).kind })
  end)

  it('tempfails the recipient past the cap with 452 4.5.3', function()
    local v = rcpt('news@Newsletter.Example', 10)
    assert.same({ 'tempfail', 452, '4.5.3' }, { v.kind, v.code, v.enhanced })
  end)

  it('does not cap other domains', function()
    assert.same({ 'accept' }, { rcpt('ann@example.org', 50).kind })
  end)
end)
