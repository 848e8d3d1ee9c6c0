-- policies/auth.lua: decides AUTH for password mechanisms (PLAIN, LOGIN). The user's
-- domain must be declared in `domains`; its `auth` list names the backends to try in
-- order (default { 'file' }: users_dir/DOMAIN.txt through sluice.passwd.verify, hashed
-- off the loop; 'ldap': the domain's directory through sluice.ldap.verify, asynchronous).
-- The first backend that says yes accepts; a no, or a backend that cannot check (nil),
-- passes to the next. If none says yes: 454 4.7.0 when one could not check (a directory
-- that is down must not look like a wrong password), else 535 5.7.8. Bearer tokens
-- (XOAUTH2, OAUTHBEARER) are left to policies/oauth2.lua; with no policy deciding, the
-- engine refuses them. The one policy that accepts.
local sluice = require('sluice')
local domains = require('sluice.domains')

local INVALID = 'Authentication credentials invalid'
local DISABLED = 'Accounts of this domain are disabled, ask your administrator'

-- Backend name -> function(identity, auth) returning true (match), false (no match), or
-- nil and the reason when it could not check: 'file' (users_dir/DOMAIN.txt) and 'ldap'
-- (the domain's directory, its `ldap` settings; docs/authentication.md).
local backends = {
  file = function(identity, auth) return sluice.passwd.verify(identity, auth.password) end,
  ldap = function(identity, auth) return sluice.ldap.verify(identity, auth.password) end,
}

local function on_auth(session, auth)
  if auth.password == nil then
    return nil -- a bearer token: policies/oauth2.lua's (its domain comes from the token)
  end
  local cfg, domain = domains.get(domains.of(auth.user))
  if not cfg then
    return sluice.reject(535, '5.7.8', INVALID) -- a domain not declared is not served
  end
  -- Users files are named by the A-label: 'dora@bücher.example' is looked up as
  -- 'dora@xn--bcher-kva.example'.
  local identity = auth.user:match('^(.*)@[^@]*$') .. '@' .. domain
  local failure
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
    end
  end
  if failure then
    sluice.log('warning', 'auth.backend_error', { user = auth.user, error = failure })
    return sluice.tempfail(454, '4.7.0', 'Temporary authentication failure, try again later')
  end
  return sluice.reject(535, '5.7.8', INVALID)
end

return { on_auth = on_auth }
