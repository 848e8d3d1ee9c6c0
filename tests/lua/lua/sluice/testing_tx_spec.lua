local testing = require('sluice.testing')

local MESSAGE = 'From: Ann <ann@example.org>\r\nSubject: a long\r\n subject\r\n'
  .. 'X-Trace: one\r\nx-trace: two\r\n\r\nHello\r\n'

describe('sluice.testing transaction headers', function()
  local tx
  before_each(function()
    tx = testing.new():transaction({ sender = 'ann@example.org', message = MESSAGE })
  end)

  it('returns the first value of a header, unfolded, ignoring case', function()
    assert.equal('a long subject', tx:header('SUBJECT'))
    assert.equal('one', tx:header('x-trace'))
    assert.is_nil(tx:header('Cc'))
  end)

  it('lists every value of a header, or every header in order', function()
    assert.same({ 'one', 'two' }, tx:headers('X-Trace'))
    assert.equal(4, #tx:headers())
    assert.same({ name = 'From', value = 'Ann <ann@example.org>' }, tx:headers()[1])
  end)

  it('adds headers on top in call order and removes every one of a name', function()
    tx:add_header('X-Policy', 'a')
    tx:add_header('X-Policy', 'b')
    assert.equal(2, tx:remove_header('x-trace'))
    assert.equal('X-Policy: a\r\nX-Policy: b\r\nFrom: Ann <ann@example.org>\r\n'
      .. 'Subject: a long subject\r\n\r\nHello\r\n', tx:message())
  end)

  it('refuses a header with CR or LF in its value, or a bad name', function()
    assert.has_error(function() tx:add_header('X-A', 'v\r\nBcc: x@y') end,
      'tx:add_header: value must be a string without CR, LF or NUL')
    assert.has_error(function() tx:add_header('X A', 'v') end, 'tx:add_header: bad header name')
    assert.has_error(function() tx:add_header('X-A', ('v'):rep(1000)) end,
      'tx:add_header: header line longer than 998 octets')
  end)

  it('gives the body and its size', function()
    assert.equal('Hello\r\n', tx:body())
    assert.equal('He', tx:body(2))
    assert.equal(#MESSAGE, tx.size)
  end)
end)

describe('sluice.testing transaction header block, as core/proto/message.c reads it', function()
  local function headers(message)
    return testing.new():transaction({ message = message }):headers()
  end

  it('takes white space before the colon as the obsolete form of the field', function()
    assert.same({ { name = 'From', value = 'a@x' }, { name = 'from', value = 'b@x' } },
      headers('From : a@x\r\nfrom\t:\tb@x\r\n\r\n'))
  end)

  it('skips malformed lines together with their continuation lines', function()
    assert.same({ { name = 'A', value = '1' }, { name = 'B', value = '2' } },
      headers(' stray\r\nA: 1\r\nno colon\r\n\tFrom: x\r\nFr om: y\r\nB: 2\r\n\r\n'))
  end)

  it('drops the blanks after the colon even across a fold', function()
    assert.same({ { name = 'A', value = 'folded\tmore' } }, headers('A:\r\n folded\tmore\r\n\r\n'))
  end)

  it('reads a message without a blank line as all header, its last line too', function()
    local tx = testing.new():transaction({ message = 'A: 1\r\nFrom: x@y' })
    assert.equal('x@y', tx:header('from'))
    assert.equal('', tx:body())
    tx = testing.new():transaction({ message = '\r\nFrom: x@y\r\n' })
    assert.same({}, tx:headers())
    assert.equal('From: x@y\r\n', tx:body())
  end)
end)

describe('sluice.testing transaction phases', function()
  it('allows header changes only in on_data, as the engine does', function()
    local h = testing.new()
    local tx = h:transaction({ message = MESSAGE })
    local policy = { on_rcpt = function(_, t) t:add_header('X-A', 'b') end }
    local v = h:run('on_rcpt', { policy }, h:session(), tx, 'b@c.test')
    assert.same({ 'tempfail', 451, '4.3.0' }, { v.kind, v.code, v.enhanced })
  end)
end)

describe('sluice.testing transaction DSN fields', function()
  it('shows RET and NOTIFY in upper case and one NOTIFY/ORCPT entry per recipient', function()
    local tx = testing.new():transaction({
      sender = 'ann@example.org', recipients = { 'a@x.test', 'b@x.test' },
      dsn_ret = 'hdrs', dsn_envid = 'id+1',
      dsn_notify = { 'success,delay' }, dsn_orcpt = { [2] = 'rfc822;old@x.test' },
      rcpt_notify = 'never', rcpt_orcpt = 'rfc822;c@x.test',
    })
    assert.equal('HDRS', tx.dsn_ret)
    assert.equal('id+1', tx.dsn_envid)
    assert.same({ 'SUCCESS,DELAY', false }, tx.dsn_notify)
    assert.same({ false, 'rfc822;old@x.test' }, tx.dsn_orcpt)
    assert.equal('NEVER', tx.rcpt_notify)
    assert.equal('rfc822;c@x.test', tx.rcpt_orcpt)
  end)

  it('leaves every DSN field nil for a transaction without DSN', function()
    local tx = testing.new():transaction({ recipients = { 'a@x.test' } })
    assert.is_nil(tx.dsn_ret)
    assert.is_nil(tx.dsn_envid)
    assert.is_nil(tx.dsn_notify)
    assert.is_nil(tx.rcpt_notify)
  end)
end)
