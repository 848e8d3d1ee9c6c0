-- lua/sluice/verdict.lua: the three verdicts a hook returns, and the check the engine
-- applies to whatever a hook returned before it becomes an SMTP reply.
-- A verdict is { kind = 'accept' } or { kind = 'reject' | 'tempfail', code, enhanced,
-- text, reason }; reason (optional) is for the log line only, never sent. The
-- constructors raise on misuse, so the error names the policy's own line;
-- verdict.check() repeats the rules for a verdict altered after it was made. Turning a
-- verdict into reply bytes is the core's business (core/policy/hook.c, core/smtp/smtp_reply.c).
local verdict = {}

local marker = {} -- metatable of every verdict made here: a look-alike table is not one

local TEXT_MAX = 255 -- bytes; the core's reply buffer (struct verdict.text) holds 255

-- Returns true, or nil and the reason. RFC 5321 4.2: a reply code is 2yz..5yz with
-- y in 0..5; RFC 3463 2: class.subject.detail, the class equal to the code's first digit.
local function check_fields(kind, code, enhanced, text)
  local class = kind == 'reject' and 5 or 4
  if type(code) ~= 'number' or code % 1 ~= 0 or math.floor(code / 100) ~= class
      or math.floor(code / 10) % 10 > 5 then
    return nil, ('%s needs a %dxx reply code (%d00..%d59), got %s')
      :format(kind, class, class, class, tostring(code))
  end
  if type(enhanced) ~= 'string'
      or not enhanced:match('^%d%.%d%d?%d?%.%d%d?%d?$') then
    return nil, ('%s needs an enhanced code like \'%d.7.1\', got %s')
      :format(kind, class, tostring(enhanced))
  end
  if tonumber(enhanced:sub(1, 1)) ~= class then
    return nil, ('enhanced code %s does not match reply code %d'):format(enhanced, code)
  end
  if type(text) ~= 'string' or #text == 0 or #text > TEXT_MAX then
    return nil, ('%s needs a text of 1..%d bytes'):format(kind, TEXT_MAX)
  end
  if text:find('[^\32-\126]') then
    return nil, 'reply text must be printable ASCII (no CR, LF or other control bytes)'
  end
  if text:match('^%d%d%d') or text:match('^%d%.%d') then
    return nil, 'reply text must not carry a code: the verdict has its own'
  end
  return true
end

-- nil, or why reason cannot be a log reason: a string of 1..255 bytes without control
-- bytes (the core's struct verdict.reason holds 255), or nil.
local function reason_problem(reason)
  if reason == nil then return nil end
  if type(reason) ~= 'string' or #reason == 0 or #reason > TEXT_MAX
      or reason:find('[%z\1-\31\127]') then
    return ('a reason must be 1..%d bytes without control bytes, got %s')
      :format(TEXT_MAX, type(reason) == 'string' and 'another string' or type(reason))
  end
  return nil
end

local function make(kind, code, enhanced, text, reason)
  local ok, why = check_fields(kind, code, enhanced, text)
  if ok then why = reason_problem(reason) end
  if why then
    error('sluice.' .. kind .. ': ' .. why, 3) -- level 3: the policy's call site
  end
  return setmetatable({ kind = kind, code = code, enhanced = enhanced, text = text,
    reason = reason }, marker)
end

local IDENTITY_MAX = 254 -- octets of an address (RFC 5321 4.5.3.1.3, less the brackets)

-- nil, or why identity cannot be a session's identity.
local function identity_problem(identity)
  if identity == nil then return nil end
  if type(identity) ~= 'string' or #identity == 0 or #identity > IDENTITY_MAX
      or identity:find('[^\33-\126\128-\255]') then
    return ('accept needs an identity of 1..%d octets without blanks or controls, got %s')
      :format(IDENTITY_MAX, type(identity) == 'string' and 'another string' or type(identity))
  end
  return nil
end

-- sluice.accept([identity]): go on (the core sends its usual reply, e.g. 235 2.7.0 for
-- AUTH). In on_auth, identity (an address) replaces the SASL identity as the session's:
-- for a bearer token whose SASL identity is empty (OAUTHBEARER without a=), the token's.
function verdict.accept(identity)
  local why = identity_problem(identity)
  if why then error('sluice.' .. why, 2) end
  return setmetatable({ kind = 'accept', user = identity }, marker)
end

-- sluice.reject(code, enhanced, text[, reason]): a 5xx reply. reason, when given, is
-- what the log line (e.g. auth.fail) says instead of text: replies that must not tell
-- cases apart can still be told apart by the operator.
function verdict.reject(code, enhanced, text, reason)
  local v = make('reject', code, enhanced, text, reason) -- not a tail call: error level 3
  return v
end

-- sluice.tempfail(code, enhanced, text[, reason]): a 4xx reply (421 also closes the
-- session); reason as for reject.
function verdict.tempfail(code, enhanced, text, reason)
  local v = make('tempfail', code, enhanced, text, reason)
  return v
end

-- True when v was made by the constructors above.
function verdict.is(v)
  return type(v) == 'table' and getmetatable(v) == marker
end

-- What the engine does with a hook's return value: true when it is a valid verdict,
-- else nil and why (the engine then answers 451 4.3.0 and logs policy.error).
function verdict.check(v)
  if not verdict.is(v) then
    return nil, ('expected a verdict or nil, got %s'):format(type(v))
  end
  if v.kind == 'accept' then
    local why = identity_problem(v.user)
    if why then return nil, why end
    return true
  end
  if v.kind ~= 'reject' and v.kind ~= 'tempfail' then
    return nil, ('unknown verdict kind %s'):format(tostring(v.kind))
  end
  local why = reason_problem(v.reason)
  if why then return nil, why end
  return check_fields(v.kind, v.code, v.enhanced, v.text)
end

return verdict
