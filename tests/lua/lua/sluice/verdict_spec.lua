local verdict = require('sluice.verdict')

local function whole(v)
  return { v.kind, v.code, v.enhanced, v.text }
end

describe('sluice.verdict constructors', function()
  it('makes an accept with no reply fields', function()
    assert.same({ 'accept' }, whole(verdict.accept()))
  end)

  it('makes an accept that carries the identity the session takes', function()
    local v = verdict.accept('ann@example.org')
    assert.same({ 'accept', 'ann@example.org' }, { v.kind, v.user })
    assert.is_true(verdict.check(v))
  end)

  it('refuses an identity that is empty, too long, blank or not a string', function()
    for _, id in ipairs({ '', ('a'):rep(251) .. '@x.y', 'a b@x', 'a\r@x', 42, {} }) do
      assert.error_matches(function() verdict.accept(id) end,
        'sluice.accept needs an identity of 1..254 octets without blanks or controls, got ',
        nil, true)
    end
    local v = verdict.accept()
    v.user = 'a\n@x'
    assert.is_nil(verdict.check(v))
  end)

  it('makes a reject carrying code, enhanced code and text', function()
    assert.same({ 'reject', 550, '5.7.1', 'Not yours' },
      whole(verdict.reject(550, '5.7.1', 'Not yours')))
  end)

  it('makes a tempfail with a three-digit enhanced detail', function()
    assert.same({ 'tempfail', 421, '4.7.0', 'Later' },
      whole(verdict.tempfail(421, '4.7.0', 'Later')))
    assert.same({ 'reject', 525, '5.7.13', 'Disabled' },
      whole(verdict.reject(525, '5.7.13', 'Disabled')))
  end)

  it('refuses a 2xx or 4xx code in a reject', function()
    assert.has_error(function() verdict.reject(250, '2.0.0', 'ok') end,
      'sluice.reject: reject needs a 5xx reply code (500..559), got 250')
    assert.has_error(function() verdict.reject(451, '4.3.0', 'later') end,
      'sluice.reject: reject needs a 5xx reply code (500..559), got 451')
  end)

  it('refuses a 5xx code in a tempfail', function()
    assert.has_error(function() verdict.tempfail(550, '5.7.1', 'no') end,
      'sluice.tempfail: tempfail needs a 4xx reply code (400..459), got 550')
  end)

  it('refuses codes that are not SMTP replies', function()
    for _, code in ipairs({ 560, 599, 5500, 55, 550.5, '550' }) do
      assert.error_matches(function() verdict.reject(code, '5.7.1', 'no') end,
        'sluice.reject: reject needs a 5xx reply code (500..559), got ', nil, true)
    end
  end)

  it('refuses a malformed enhanced code or one whose class differs from the code', function()
    for _, enh in ipairs({ '5.7', '5.7.1.1', '5.1234.1', 'x.7.1', '4.7.1', '', 571 }) do
      assert.error_matches(function() verdict.reject(550, enh, 'no') end, 'enhanced code ',
        nil, true)
    end
  end)

  it('refuses CR, LF and other control bytes in the text', function()
    for _, text in ipairs({ 'a\r\n250 ok', 'a\nb', 'a\rb', 'tab\there', 'nul\0' }) do
      assert.has_error(function() verdict.reject(550, '5.7.1', text) end,
        'sluice.reject: reply text must be printable ASCII (no CR, LF or other control bytes)')
    end
  end)

  it('refuses a text that carries its own reply code', function()
    assert.has_error(function() verdict.reject(550, '5.7.1', '550 5.7.1 no') end,
      'sluice.reject: reply text must not carry a code: the verdict has its own')
    assert.has_error(function() verdict.reject(550, '5.7.1', '5.7.1 no') end,
      'sluice.reject: reply text must not carry a code: the verdict has its own')
  end)

  it('refuses an empty, missing or over-long text', function()
    assert.has_error(function() verdict.reject(550, '5.7.1', '') end,
      'sluice.reject: reject needs a text of 1..255 bytes')
    assert.has_error(function() verdict.reject(550, '5.7.1') end,
      'sluice.reject: reject needs a text of 1..255 bytes')
    assert.has_error(function() verdict.reject(550, '5.7.1', ('x'):rep(256)) end,
      'sluice.reject: reject needs a text of 1..255 bytes')
    assert.equal('reject', verdict.reject(550, '5.7.1', ('x'):rep(255)).kind)
  end)

  it('names the caller\'s line in its error', function()
    local ok, err = pcall(function()
      local v = verdict.reject(250, '2.0.0', 'ok') -- not a tail call: the line is known
      return v
    end)
    assert.is_false(ok)
    assert.matches('verdict_spec.lua:%d+: sluice.reject:', err)
  end)
end)

describe('sluice.verdict log reasons', function()
  it('carries a reason for the log line beside the text the client gets', function()
    local v = verdict.reject(535, '5.7.8', 'Authentication credentials invalid',
      'unknown user')
    assert.same({ 'reject', 535, '5.7.8', 'Authentication credentials invalid',
      'unknown user' }, { v.kind, v.code, v.enhanced, v.text, v.reason })
    assert.is_true(verdict.check(v))
    assert.equal('bind as \'uid=jörg\'', verdict.tempfail(454, '4.7.0', 'Later',
      'bind as \'uid=jörg\'').reason)
    assert.is_nil(verdict.reject(550, '5.7.1', 'No').reason)
  end)

  it('refuses a reason that is empty, too long, not a string or has control bytes',
    function()
    for _, r in ipairs({ '', ('r'):rep(256), 42, {}, 'a\r\nb', 'a\0b', 'a\127' }) do
      assert.error_matches(function() verdict.reject(535, '5.7.8', 'No', r) end,
        'sluice.reject: a reason must be 1..255 bytes without control bytes, got ', nil, true)
    end
    local v = verdict.reject(535, '5.7.8', 'No', 'fine')
    v.reason = 'not\nfine'
    assert.is_nil(verdict.check(v))
  end)
end)

describe('sluice.verdict.check', function()
  it('accepts the verdicts the constructors make', function()
    assert.is_true(verdict.check(verdict.accept()))
    assert.is_true(verdict.check(verdict.tempfail(451, '4.7.1', 'Slow down')))
  end)

  it('refuses a look-alike table, a string and a boolean', function()
    assert.is_nil(verdict.check({ kind = 'accept' }))
    assert.is_nil(verdict.check('accept'))
    assert.is_nil(verdict.check(true))
  end)

  it('refuses a verdict altered after it was made', function()
    local v = verdict.reject(550, '5.7.1', 'no')
    v.code = 250
    local ok, why = verdict.check(v)
    assert.is_nil(ok)
    assert.matches('5xx', why)
    local w = verdict.tempfail(451, '4.7.1', 'later')
    w.text = 'x\r\n250 ok'
    assert.is_nil(verdict.check(w))
  end)
end)
