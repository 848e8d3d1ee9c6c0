local address = require('sluice.address')

describe('sluice.address.parse', function()
  it('takes the domain after the last @ outside a quoted local part', function()
    local m = address.parse('"ann@other.test"@example.org')
    assert.same({ local_part = '"ann@other.test"', domain = 'example.org', literal = false }, m)
  end)

  it('never splits at the first @', function()
    assert.equal('example.org', address.parse('a@other.test@example.org').domain)
  end)

  it('honours backslash escapes in a quoted local part', function()
    assert.equal('example.org', address.parse('"a\\"@x.test"@example.org').domain)
  end)

  it('strips angle brackets and ignores a source route', function()
    assert.equal('example.org', address.parse('<@relay.test,@b.test:ann@Example.ORG>').domain)
  end)

  it('lowercases the local part\'s ASCII and the domain, in A-label form', function()
    assert.same({ local_part = 'ann', domain = 'xn--bcher-kva.example', literal = false },
      address.parse('ANN@Bücher.Example'))
  end)

  it('treats a quoted dot-string as the same local part as the unquoted one', function()
    assert.equal(address.normalize('john.doe@x.test'), address.normalize('"John.Doe"@x.test'))
    assert.not_equal(address.normalize('john.doe@x.test'), address.normalize('"john doe"@x.test'))
  end)

  it('keeps an address literal as written, flagged', function()
    assert.same({ local_part = 'a', domain = '[ipv6:2001:db8::1]', literal = true },
      address.parse('a@[IPv6:2001:db8::1]'))
  end)

  it('refuses the null path, a missing local part or domain, and unclosed quotes', function()
    for _, p in ipairs({ '', '<>', '@example.org', 'ann@', 'ann', '"ann@example.org',
                         'ann@exa mple..org', 'a@[1.2.3.4' }) do
      assert.is_nil(address.parse(p), p)
    end
  end)
end)

describe('sluice.address.is_null', function()
  it('knows both spellings of the null reverse-path', function()
    assert.is_true(address.is_null(''))
    assert.is_true(address.is_null('<>'))
    assert.is_false(address.is_null('a@b.test'))
  end)
end)

describe('sluice.address.from_header', function()
  it('reads a bare address, a display name and angle brackets', function()
    assert.same({ 'ann@example.org' }, address.from_header('ann@example.org'))
    assert.same({ 'ann@example.org' }, address.from_header('Ann Example <ann@example.org>'))
  end)

  it('ignores commas, @ and brackets inside quoted display names and comments', function()
    assert.same({ 'ann@example.org' },
      address.from_header('"Doe, Ann <boss@evil.test>" <ann@example.org>'))
    assert.same({ 'ann@example.org' },
      address.from_header('ann@example.org (Ann, from boss@evil.test (really))'))
  end)

  it('lists every mailbox of a mailbox-list and of a group', function()
    assert.same({ 'a@x.test', 'b@y.test', 'c@z.test' },
      address.from_header('a@x.test, Team: B <b@y.test>, c@z.test;'))
  end)

  it('refuses unbalanced syntax and a value with no mailbox', function()
    assert.is_nil(address.from_header('"Ann <ann@example.org>'))
    assert.is_nil(address.from_header('Ann <ann@example.org'))
    assert.is_nil(address.from_header('undisclosed-recipients:;'))
    assert.is_nil(address.from_header('Ann'))
    assert.is_nil(address.from_header('ann@example.org (Ann'))
    assert.is_nil(address.from_header('Team: ann@example.org'))
  end)

  it('reads the obsolete forms: blanks around . and @, empty elements, a route', function()
    assert.same({ 'ann@example.org' }, address.from_header('ann (x) @ example . org'))
    assert.same({ 'a@x.test', 'b@y.test' }, address.from_header(', a@x.test,, b@y.test,'))
    assert.same({ 'ann@example.org' },
      address.from_header('Ann <@relay.test,@r2.test:ann@example.org>'))
    assert.same({ 'ann@example.org' }, address.from_header('John Q. Public <ann@example.org>'))
    assert.same({ '"a.b"@example.org' }, address.from_header('"a"."b"@example.org'))
  end)

  it('reads an RFC 2047 display name as a name, and UTF-8 names and addresses', function()
    assert.same({ 'ann@example.org' },
      address.from_header('=?UTF-8?B?QW5uIEV4YW1wbGU=?= <ann@example.org>'))
    assert.same({ 'dörte@bücher.example' },
      address.from_header('Dörte Müller <dörte@bücher.example>'))
  end)

  it('refuses what is not RFC 5322 syntax instead of guessing which address is meant', function()
    for _, v in ipairs({
      'boss@evil.test <ann@example.org>', '=?utf-8?q?<boss@evil.test>?= <ann@example.org>',
      '<ann@example.org> <boss@evil.test>', '<ann@example.org> boss@evil.test',
      'ann@example.org; boss@evil.test', 'Team: a@x.test; b@y.test', 'A: B: c@d.test;;',
      'ann@example.org\\', 'ann@[1.2.3.4', 'ann@exam\0ple.org', '<>', 'ann@',
    }) do
      assert.is_nil(address.from_header(v), v)
    end
  end)

  -- from_header answers the usual forms without its tokenizer; a comment after a value
  -- changes nothing in its meaning but sends it to the tokenizer: both must agree.
  it('answers the usual forms as its full parser does (differential, 30 000 values)', function()
    local pieces = { 'a', 'Bo', '9', '.', '..', '@', '<', '>', ' ', '\t', '"', ',', ':', ';',
      '-', '_', '+', '=?', '?=', 'ö', '(c)', '[', ']', '\\', 'x.org', 'example.org',
      'alice@example.org', '<alice@ex.org>', 'xn--bcher-kva.example', '-x', 'a@b' }
    math.randomseed(5322)
    local fast_forms = 0
    for _ = 1, 30000 do
      local parts = {}
      for k = 1, math.random(1, 6) do parts[k] = pieces[math.random(#pieces)] end
      local v = table.concat(parts)
      if not v:find('[(\\"%[]') then fast_forms = fast_forms + 1 end
      local list = address.from_header(v)
      local full = address.from_header(v .. ' (c)')
      assert.same(full, list, v)
    end
    assert.is_true(fast_forms > 10000)
  end)
end)
