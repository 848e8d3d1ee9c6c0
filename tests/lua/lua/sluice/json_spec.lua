local json = require('sluice.json')

describe('sluice.json', function()
  it('round-trips objects, arrays, numbers, booleans and null', function()
    local v = json.decode(json.encode({ a = { 1, 2, 3 }, b = true, c = 'x', d = json.null }))
    assert.same({ a = { 1, 2, 3 }, b = true, c = 'x', d = json.null }, v)
  end)

  it('returns nil and the reason for text that is not JSON', function()
    local v, err = json.decode('{"a":')
    assert.is_nil(v)
    assert.is_string(err)
  end)

  it('raises when asked to encode a function', function()
    assert.has_error(function() json.encode({ f = print }) end,
      'sluice.json.encode: Cannot serialise function: type not supported')
  end)

  it('raises when decode is given something other than a string', function()
    assert.has_error(function() json.decode(42) end,
      'sluice.json.decode: expected a string, got number')
  end)
end)
