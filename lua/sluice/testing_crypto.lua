-- lua/sluice/testing_crypto.lua: the test double's sluice.crypto (lua/sluice/testing.lua),
-- pure Lua so busted specs of token policies run without the daemon. base64url, SHA-256
-- and random are real; keys are fakes: jwk() checks the members as the engine does
-- (core/proto/jose.c: types, curves, lengths, RSA >= 2048 bits, a fitting alg) and key:verify()
-- accepts exactly the signatures testing_crypto.sign() makes, a keyed SHA-256 of the
-- signing input. Real signatures are tested in C (tests/unit/test_jose.c) and against
-- the daemon (tests/integration/test_oauth2.py).
local bit = require('bit')
local json = require('sluice.json')

local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit = bit.rshift, bit.lshift, bit.ror, bit.tobit

local crypto = {}

local ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
local VALUE = {}
for i = 1, 64 do VALUE[ALPHABET:byte(i)] = i - 1 end

local function argcheck(ok, fn, msg)
  if not ok then error('sluice.crypto.' .. fn .. ': ' .. msg, 3) end
end

-- As core/proto/jose.c: no padding, no other alphabet, unused bits zero, length not 1 mod 4.
function crypto.b64url_decode(s)
  argcheck(type(s) == 'string', 'b64url_decode', 'expected a string')
  if #s % 4 == 1 then return nil, 'not base64url' end
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local v = VALUE[s:byte(i)]
    if not v then return nil, 'not base64url' end
    acc, bits = acc * 64 + v, bits + 6
    if bits >= 8 then
      bits = bits - 8
      local b = math.floor(acc / 2 ^ bits)
      out[#out + 1] = string.char(b)
      acc = acc - b * 2 ^ bits
    end
  end
  if acc ~= 0 then return nil, 'not base64url' end
  return table.concat(out)
end

function crypto.b64url_encode(s)
  argcheck(type(s) == 'string', 'b64url_encode', 'expected a string')
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local n = c and 4 or b and 3 or 2
    for k = 1, n do
      local d = math.floor(v / 2 ^ (6 * (4 - k))) % 64
      out[#out + 1] = ALPHABET:sub(d + 1, d + 1)
    end
  end
  return table.concat(out)
end

-- FIPS 180-4 SHA-256.
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
  0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
  0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
  0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
  0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
  0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
  0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
  0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
}

local function sha256(msg)
  local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
    0x1f83d9ab, 0x5be0cd19 }
  for i = 1, 8 do h[i] = tobit(h[i]) end
  local len = #msg
  msg = msg .. '\128' .. ('\0'):rep((55 - len) % 64)
  local bits = len * 8
  for i = 7, 0, -1 do msg = msg .. string.char(math.floor(bits / 2 ^ (8 * i)) % 256) end
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      local a, b, c, d = msg:byte(chunk + 4 * i, chunk + 4 * i + 3)
      w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
    end
    for i = 16, 63 do
      local s0 = bxor(ror(w[i - 15], 7), ror(w[i - 15], 18), rshift(w[i - 15], 3))
      local s1 = bxor(ror(w[i - 2], 17), ror(w[i - 2], 19), rshift(w[i - 2], 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for i = 0, 63 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(hh + S1 + ch + K[i + 1] + w[i])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      local t2 = tobit(S0 + maj)
      hh, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    h[1], h[2], h[3], h[4] = tobit(h[1] + a), tobit(h[2] + b), tobit(h[3] + c), tobit(h[4] + d)
    h[5], h[6], h[7], h[8] = tobit(h[5] + e), tobit(h[6] + f), tobit(h[7] + g), tobit(h[8] + hh)
  end
  local out = {}
  for i = 1, 8 do
    out[i] = string.char(band(rshift(h[i], 24), 255), band(rshift(h[i], 16), 255),
      band(rshift(h[i], 8), 255), band(h[i], 255))
  end
  return table.concat(out)
end

function crypto.sha256(s, form)
  argcheck(type(s) == 'string', 'sha256', 'expected a string')
  argcheck(form == nil or form == 'raw' or form == 'hex', 'sha256', "expected 'raw' or 'hex'")
  local d = sha256(s)
  if form == 'hex' then return (d:gsub('.', function(c) return ('%02x'):format(c:byte()) end)) end
  return d
end

function crypto.random(n)
  argcheck(type(n) == 'number' and n % 1 == 0 and n >= 1 and n <= 1024, 'random',
    'expected 1..1024')
  local out = {}
  for i = 1, n do out[i] = string.char(math.random(0, 255)) end
  return table.concat(out)
end

-- ---- fake keys ----

local ALG_OF = { RSA = 'RS256', EC = 'ES256', OKP = 'EdDSA' }

-- The double's signature: only whoever holds the JWK's public numbers can make it, which
-- in a spec is the spec itself. Never a real signature.
function crypto.sign(jwk, signing_input)
  return sha256('sluice.testing|' .. (jwk.n or jwk.x or '') .. '|' .. signing_input)
end

local key_mt = {}
key_mt.__index = {
  alg = function(self) return self._alg end,
  bits = function(self) return self._bits end,
  verify = function(self, alg, input, sig)
    argcheck(type(alg) == 'string' and type(input) == 'string' and type(sig) == 'string',
      'key:verify', 'expected alg, signing input and signature as strings')
    if alg ~= self._alg then return nil, 'algorithm does not fit the key' end
    return sig == crypto.sign(self._jwk, input)
  end,
}

local function member(t, name, len)
  local v = t[name]
  if v == nil then return nil, ("member '%s' is missing"):format(name) end
  local raw = crypto.b64url_decode(v)
  if not raw or raw == '' then return nil, ("member '%s' is not base64url"):format(name) end
  if len and #raw ~= len then
    return nil, ("member '%s' has the wrong length: %d octets, not %d"):format(name, #raw, len)
  end
  return raw
end

local function check_jwk(t)
  local m, err
  if t.kty == 'RSA' then
    m, err = member(t, 'n')
    if m and (#m < 256 or #m > 1024) then
      return nil, ('RSA key of %d bits: 2048 to 8192 are accepted'):format(#m * 8)
    end
    if m then m, err = member(t, 'e') end
    if m and #m > 16 then -- JOSE_RSA_E_MAX
      return nil, ("member 'e' is too long: %d octets, at most 16"):format(#m)
    end
  elseif t.kty == 'EC' then
    if t.crv ~= 'P-256' then
      return nil, ("EC curve '%s' is not supported: P-256 is"):format(t.crv or '')
    end
    m, err = member(t, 'x', 32)
    if m then m, err = member(t, 'y', 32) end
  elseif t.kty == 'OKP' then
    if t.crv ~= 'Ed25519' then
      return nil, ("OKP curve '%s' is not supported: Ed25519 is"):format(t.crv or '')
    end
    m, err = member(t, 'x', 32)
  elseif t.kty == nil then
    return nil, "member 'kty' is missing"
  else
    return nil, ("key type '%s' is not supported: RSA, EC and OKP are"):format(t.kty)
  end
  if not m then return nil, err end
  if t.alg ~= nil and t.alg ~= ALG_OF[t.kty] then
    return nil, ("alg '%s' does not fit a %s key"):format(t.alg, t.kty)
  end
  return true
end

function crypto.jwk(t)
  argcheck(type(t) == 'table', 'jwk', 'expected a table')
  for _, k in ipairs({ 'kty', 'crv', 'n', 'e', 'x', 'y', 'alg' }) do
    if t[k] ~= nil and type(t[k]) ~= 'string' then
      error(("sluice.crypto.jwk: member '%s' must be a string"):format(k), 2)
    end
    if t[k] ~= nil and t[k]:find('\0', 1, true) then
      return nil, ("member '%s' has a NUL in it"):format(k)
    end
  end
  local ok, err = check_jwk(t)
  if not ok then return nil, err end
  local bits = t.kty == 'RSA' and #crypto.b64url_decode(t.n) * 8 or 256
  return setmetatable({ _jwk = { n = t.n, x = t.x }, _alg = ALG_OF[t.kty], _bits = bits },
    key_mt)
end

-- ---- what specs make tokens with ----

-- A public JWK of the given type ('OKP' default, 'EC', 'RSA') whose numbers derive from
-- name; its kid is name unless kid is given (false: no kid).
function crypto.test_jwk(name, kty, kid)
  kty = kty or 'OKP'
  local raw = sha256(name)
  local k = { kty = kty, alg = ALG_OF[kty], use = 'sig' }
  if kid ~= false then k.kid = kid or name end
  if kty == 'OKP' then
    k.crv, k.x = 'Ed25519', crypto.b64url_encode(raw)
  elseif kty == 'EC' then
    k.crv, k.x, k.y = 'P-256', crypto.b64url_encode(raw), crypto.b64url_encode(sha256(raw))
  else
    k.n, k.e = crypto.b64url_encode(raw:rep(8)), 'AQAB'
  end
  return k
end

-- A compact JWS of claims signed by jwk as the double verifies it. opts: alg (default
-- the key's), kid (default the key's; false: none), header (extra fields), signature
-- (raw octets instead of the right one), raw_payload (text instead of encoded claims).
function crypto.test_token(jwk, claims, opts)
  opts = opts or {}
  local header = { alg = opts.alg or ALG_OF[jwk.kty], typ = 'JWT' }
  if opts.kid ~= false then header.kid = opts.kid or jwk.kid end
  for k, v in pairs(opts.header or {}) do header[k] = v end
  local input = crypto.b64url_encode(json.encode(header)) .. '.'
    .. crypto.b64url_encode(opts.raw_payload or json.encode(claims))
  return input .. '.' .. crypto.b64url_encode(opts.signature or crypto.sign(jwk, input))
end

-- Write {"keys": [...]} to a fresh temporary file; returns its path.
function crypto.test_jwks_file(keys)
  local path = os.tmpname()
  local f = assert(io.open(path, 'wb'))
  f:write(json.encode({ keys = keys }))
  f:close()
  return path
end

return crypto
