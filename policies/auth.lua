-- policies/auth.lua: decides AUTH for password mechanisms (PLAIN, LOGIN). The user's
-- domain must be declared in `domains`; its `auth` list names the backends to try in
-- order (default { 'file' }: users_dir/DOMAIN.txt through sluice.passwd.verify, hashed
-- off the loop; 'ldap': the domain's directory through sluice.ldap.verify, asynchronous).
-- The first backend that says yes accepts; a no, or a backend that cannot check (nil),
-- passes to the next. If none says yes: 454 4.7.0 when one could not check (a directory
-- that is down must not look like a wrong password), else 535 5.7.8. Bearer tokens
-- (XOAUTH2, OAUTHBEARER) are left to policies/oauth2.lua; with no policy deciding, the
-- engine refuses them. The one policy that accepts.
--
-- A wrong password, an unknown user and a domain that is not declared get the same
-- reply after the same work (docs/security.md "User enumeration by timing"): an AUTH
-- that no backend of its own domain checks runs the backends of a declared domain
-- (sluice.domains.stand_in) as an unknown user of it, and gets what that domain's
-- unknown users get. Only the auth.fail log line tells the cases apart (the verdict's
-- reason).
local sluice = require('sluice')
local domains = require('sluice.domains')

local INVALID = 'Authentication credentials invalid'
local DISABLED = 'Accounts of this domain are disabled, ask your administrator'
local TEMPFAIL = 'Temporary authentication failure, try again later'
local REASON_MAX = 255 -- bytes, as sluice.reject takes it
-- The local part a stand-in directory check asks for: nobody's (core/auth/ldap_client.c
-- names no real entry either).
local NO_SUCH_USER = 'sluice-no-such-user'

-- Backend name -> function(identity, auth) returning true (match), false and why not,
-- or nil and the reason when it could not check: 'file' (users_dir/DOMAIN.txt) and
-- 'ldap' (the domain's directory, its `ldap` settings; docs/authentication.md).
local backends = {
  file = function(identity, auth) return sluice.passwd.verify(identity, auth.password) end,
  ldap = function(identity, auth) return sluice.ldap.verify(identity, auth.password) end,
}

-- A verdict's log reason from backends' words (a DN may hold what the client sent).
local function log_reason(reason)
  reason = reason:gsub('[%z\1-\31\127]', '?')
  if #reason > REASON_MAX then reason = reason:sub(1, REASON_MAX - 3) .. '...' end
  return reason
end

-- The refusal of an AUTH that no backend of its own domain checks, after what an
-- unknown user of a declared domain costs: the stand-in domain's backends, the users
-- files with the identity as sent (its domain has no users file: they hash what the
-- typical domain's users cost), the directory with a user nobody has. What they say
-- does not matter, except that a stand-in that cannot check gets the 454 its own
-- unknown users get meanwhile.
local function refuse_after_a_stand_in(auth, reason)
  local name, cfg = domains.stand_in()
  local failure
  for _, backend in ipairs(cfg and cfg.auth or {}) do
    local ok, err
    if backend == 'file' then
      ok, err = sluice.passwd.verify(auth.user, auth.password)
    elseif backend == 'ldap' then
      ok, err = sluice.ldap.verify(NO_SUCH_USER .. '@' .. name, auth.password)
    end
    if ok == nil and err ~= nil then failure = backend .. ': ' .. tostring(err) end
  end
  if failure then
    return sluice.tempfail(454, '4.7.0', TEMPFAIL,
      log_reason(reason .. '; stand-in ' .. failure))
  end
  return sluice.reject(535, '5.7.8', INVALID, reason)
end

local function refuse(reason)
  return sluice.reject(535, '5.7.8', INVALID, log_reason(reason))
end

local function on_auth(session, auth)
  if auth.password == nil then
    return nil -- a bearer token: policies/oauth2.lua's (its domain comes from the token)
  end
  local cfg, domain = domains.get(domains.of(auth.user))
  if not cfg then -- a domain not declared is not served
    return refuse_after_a_stand_in(auth,
      domains.of(auth.user) and 'domain not declared' or 'no domain in the user name')
  end
  -- Users files are named by the A-label: 'dora@bücher.example' is looked up as
  -- 'dora@xn--bcher-kva.example'.
  local identity = auth.user:match('^(.*)@[^@]*$') .. '@' .. domain
  local failure, reasons = nil, {}
  for _, name in ipairs(cfg.auth or { 'file' }) do
    local check = backends[name]
    if check then
      local ok, err = check(identity, auth)
      if ok and cfg.enabled == false then -- said only to whoever knows the password
        return sluice.reject(525, '5.7.13', DISABLED) -- RFC 5248: User Account Disabled
      elseif ok then
        return sluice.accept()
      elseif ok == nil then
        failure = err -- try the next backend; tempfail if none says yes or no
      end
      reasons[#reasons + 1] = name .. ': ' .. tostring(err or 'no')
    end
  end
  if #reasons == 0 then -- the domain checks no passwords (bearer tokens only)
    return refuse_after_a_stand_in(auth, 'no password backend for the domain')
  end
  if failure then
    sluice.log('warning', 'auth.backend_error', { user = auth.user, error = failure })
    return sluice.tempfail(454, '4.7.0', TEMPFAIL, log_reason(table.concat(reasons, '; ')))
  end
  return refuse(table.concat(reasons, '; '))
end

return { on_auth = on_auth }
