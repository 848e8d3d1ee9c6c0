local idna = require('sluice.idna')

-- code points -> UTF-8, for the RFC 3492 section 7.1 samples
local function u(...)
  local out = {}
  for _, cp in ipairs({ ... }) do
    if cp < 0x80 then out[#out + 1] = string.char(cp)
    elseif cp < 0x800 then
      out[#out + 1] = string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
    else
      out[#out + 1] = string.char(0xE0 + math.floor(cp / 4096),
        0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
    end
  end
  return table.concat(out)
end

local samples = {
  { 'Arabic (Egyptian)', 'egbpdaj6bu4bxfgehfvwxn', u(0x0644, 0x064A, 0x0647, 0x0645, 0x0627,
    0x0628, 0x062A, 0x0643, 0x0644, 0x0645, 0x0648, 0x0634, 0x0639, 0x0631, 0x0628, 0x064A,
    0x061F) },
  { 'Chinese (simplified)', 'ihqwcrb4cv8a8dqg056pqjye', u(0x4ED6, 0x4EEC, 0x4E3A, 0x4EC0,
    0x4E48, 0x4E0D, 0x8BF4, 0x4E2D, 0x6587) },
  { 'Chinese (traditional)', 'ihqwctvzc91f659drss3x8bo0yb', u(0x4ED6, 0x5011, 0x7232, 0x4EC0,
    0x9EBD, 0x4E0D, 0x8AAA, 0x4E2D, 0x6587) },
  { 'Czech', 'Proprostnemluvesky-uyb24dma41a', u(0x50, 0x72, 0x6F, 0x010D, 0x70, 0x72, 0x6F,
    0x73, 0x74, 0x011B, 0x6E, 0x65, 0x6D, 0x6C, 0x75, 0x76, 0xED, 0x010D, 0x65, 0x73, 0x6B,
    0x79) },
  { 'Hebrew', '4dbcagdahymbxekheh6e0a7fei0b', u(0x05DC, 0x05DE, 0x05D4, 0x05D4, 0x05DD, 0x05E4,
    0x05E9, 0x05D5, 0x05D8, 0x05DC, 0x05D0, 0x05DE, 0x05D3, 0x05D1, 0x05E8, 0x05D9, 0x05DD,
    0x05E2, 0x05D1, 0x05E8, 0x05D9, 0x05EA) },
  { 'Japanese with digits', '3B-ww4c5e180e575a65lsy2b', u(0x33, 0x5E74, 0x42, 0x7D44,
    0x91D1, 0x516B, 0x5148, 0x751F) },
  { 'Japanese with ASCII words', '-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n', u(0x5B89, 0x5BA4,
    0x5948, 0x7F8E, 0x6075, 0x2D, 0x77, 0x69, 0x74, 0x68, 0x2D, 0x53, 0x55, 0x50, 0x45, 0x52,
    0x2D, 0x4D, 0x4F, 0x4E, 0x4B, 0x45, 0x59, 0x53) },
  { 'Japanese kana', 'd9juau41awczczp', u(0x305D, 0x306E, 0x30B9, 0x30D4, 0x30FC, 0x30C9,
    0x3067) },
  { 'plain ASCII', '-> $1.00 <--', '-> $1.00 <-' },
}

describe('sluice.idna Punycode (RFC 3492 section 7.1 samples)', function()
  for _, s in ipairs(samples) do
    it('encodes the ' .. s[1] .. ' sample', function()
      assert.equal(s[2], idna.punycode_encode(s[3]))
    end)
    it('decodes the ' .. s[1] .. ' sample', function()
      assert.equal(s[3], idna.punycode_decode(s[2]))
    end)
  end

  it('decodes digits case-insensitively (the Russian sample\'s mixed case)', function()
    local lower = idna.punycode_decode('b1abfaaepdrnnbgefbadotcwatmq2g4l')
    assert.equal(lower, idna.punycode_decode('b1abfaaepdrnnbgefbaDotcwatmq2g4l'))
    assert.equal('b1abfaaepdrnnbgefbadotcwatmq2g4l', idna.punycode_encode(lower))
  end)

  it('refuses bad digits, truncated input and invalid UTF-8', function()
    assert.is_nil(idna.punycode_decode('abc-!!'))
    assert.is_nil(idna.punycode_decode('bcher-kv9999999999'))
    assert.is_nil(idna.punycode_encode('\255\254'))
    assert.is_nil(idna.punycode_encode('\192\175')) -- overlong '/'
  end)
end)

describe('sluice.idna.to_ascii', function()
  it('turns U-labels into lowercase A-labels and leaves ASCII labels lowercased', function()
    assert.equal('xn--bcher-kva.example', idna.to_ascii('bücher.example'))
    assert.equal('xn--mnchen-3ya.de', idna.to_ascii('MÜNCHEN.DE'))
    assert.equal('mail.example.org', idna.to_ascii('Mail.Example.ORG'))
  end)

  it('lowercases Greek and Cyrillic before encoding', function()
    assert.equal(idna.to_ascii('пример.рф'), idna.to_ascii('ПРИМЕР.РФ'))
    assert.equal(idna.to_ascii('ελλάδα.gr'), idna.to_ascii('ΕΛΛΆΔΑ.gr'))
  end)

  it('canonicalises an A-label written in capitals', function()
    assert.equal('xn--bcher-kva.example', idna.to_ascii('XN--BCHER-KVA.Example'))
  end)

  it('accepts the ideographic full stop as a label separator', function()
    assert.equal('xn--bcher-kva.example', idna.to_ascii('bücher\227\128\130example'))
  end)

  it('refuses empty labels, bad A-labels and over-long labels', function()
    assert.is_nil(idna.to_ascii('a..b'))
    assert.is_nil(idna.to_ascii(''))
    assert.is_nil(idna.to_ascii('xn--abc-.example')) -- decodes to plain ASCII
    assert.is_nil(idna.to_ascii('xn--a!b.example'))
    assert.is_nil(idna.to_ascii(('a'):rep(64) .. '.example'))
    assert.is_nil(idna.to_ascii(('a'):rep(60) .. '.' .. ('b.'):rep(100) .. 'c'))
  end)
end)

describe('sluice.idna.to_unicode and equal', function()
  it('turns A-labels back into lowercase U-labels', function()
    assert.equal('bücher.example', idna.to_unicode('xn--bcher-kva.EXAMPLE'))
  end)

  it('treats a U-label and its A-label, in any case, as the same domain', function()
    assert.is_true(idna.equal('BÜCHER.example', 'xn--bcher-kva.example'))
    assert.is_true(idna.equal('Example.ORG', 'example.org'))
    assert.is_false(idna.equal('bucher.example', 'bücher.example'))
    assert.is_false(idna.equal('a..b', 'a..b'))
  end)
end)
