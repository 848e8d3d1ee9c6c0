-- lua/sluice/testing.lua: a pure-Lua double of the engine, so busted runs policy specs
-- without a daemon. It replaces only the C half (`sluice.core`: clock, zones (sluice.zone,
-- sluice.shdict), passwd, ldap, http (lua/sluice/testing_http.lua), sleep, log and audit
-- capture); the Lua half (verdicts, JSON, ratelimit, idna...) is the real code.
-- harness:run() applies the engine's rules: policies in order, first verdict wins, the
-- documented default, and 451 4.3.0 plus a policy.error log line for a hook that raises,
-- overruns its budget or returns a non-verdict. docs/policies.md shows how to use it.
local json = require('sluice.json')
local testing_config = require('sluice.testing_config')
local testing_crypto = require('sluice.testing_crypto')
local testing_ctl = require('sluice.testing_ctl')
local testing_http = require('sluice.testing_http')
local testing_tx = require('sluice.testing_tx')
local verdict = require('sluice.verdict')

local testing = {}
local harness = {}
harness.__index = harness

local LEVELS = { debug = true, info = true, notice = true, warning = true, err = true }
local RESERVED_LOG = { ts = true, level = true, event = true, sid = true, policy = true }

-- What the engine answers when no policy decides (docs/policies.md, hook reference).
local DEFAULTS = {
  on_connect = verdict.accept, on_helo = verdict.accept,
  on_auth = function()
    return verdict.reject(535, '5.7.8', 'Authentication credentials invalid')
  end,
  on_mail_from = verdict.accept, on_rcpt = verdict.accept, on_data = verdict.accept,
}
local NOTIFY = { on_auth_result = true, on_relayed = true, on_disconnect = true }
local HOOKS = { on_connect = true, on_helo = true, on_auth = true, on_auth_result = true,
  on_mail_from = true, on_rcpt = true, on_data = true, on_relayed = true, on_disconnect = true }
local POLICY_ERROR = { 451, '4.3.0', 'Temporary policy failure, try again later' }

local function deep_copy(v)
  if type(v) ~= 'table' then return v end
  local out = {}
  for k, x in pairs(v) do out[deep_copy(k)] = deep_copy(x) end
  return out
end

local function argcheck(ok, fn, msg)
  if not ok then error('sluice.' .. fn .. ': ' .. msg, 3) end
end

-- Keys up to 1024 bytes: a SASL identity (up to 512) plus a policy's prefix must fit.
local KEY_MAX = 1024

local function key_ok(key)
  return type(key) == 'string' and #key > 0 and #key <= KEY_MAX
end

-- The zones (core/store/zone.c, core/config/config_zones.c): the built-in ones with their default
-- sizes, and opts.zones as the configuration's `zones` table. Like the engine's, a zone
-- with evict = false is bounded by its size: a write that does not fit (entries charged as
-- core/store/shdict.c charges them) first drops the expired entries, then is refused with
-- nil, 'full', and until a write succeeds again a miss is nil, 'full'. A zone that evicts
-- never does here: the double keeps everything (nothing a spec can count on anyway).
local K, M = 1024, 1024 * 1024
local BUILTIN_ZONES = { -- name, size, evict, locked (security state: never evicted)
  { 'default', 16 * M, true }, { 'limits', 8 * M, true }, { 'blocks', 1 * M, false, true },
  { 'denylist', 1 * M, false, true }, { 'auth_cache', 4 * M, true }, { 'jwks', 1 * M, true },
}
local ENTRY_OVERHEAD = 72 -- shdict_entry_size(0, 0): header and malloc's own
local ZONE_SHARD_BYTES, ZONE_MAX_SHARDS = 128 * K, 64

-- size = 8388608 or '8m' (core/config/config_zones.c)
local function zone_size(name, v)
  local n
  if type(v) == 'number' then
    n = v
  elseif type(v) == 'string' then
    local digits, unit = v:match('^(%d+)([kKmMgG]?)$')
    local units = { [''] = 1, k = K, m = M, g = 1024 * M }
    n = digits and tonumber(digits) * units[unit:lower()]
  end
  assert(n and n % 1 == 0 and n >= 32 * K and n <= 64 * 1024 * M, 'zones.' .. name
    .. '.size: expected octets, or a size like \'512k\', \'8m\' or \'1g\', from 32k to 64g')
  return n
end

-- What the engine's dictionary can hold for entries (core/store/shdict.c, core/store/zone.c): the
-- whole budget, and the largest entry one shard takes.
local function zone_budget(size)
  local nshards = math.max(1, math.min(ZONE_MAX_SHARDS, math.floor(size / ZONE_SHARD_BYTES)))
  local share = math.floor(size / nshards)
  local buckets = 16
  while 2 * buckets * 8 <= math.floor(share / 8) do buckets = buckets * 2 end
  return nshards * (share - buckets * 8), share - buckets * 8
end

local function load_zones(zones, shdict_size)
  local out, order = {}, {}
  for _, z in ipairs(BUILTIN_ZONES) do
    out[z[1]] = { size = z[1] == 'default' and shdict_size or z[2], evict = z[3], locked = z[4] }
    order[#order + 1] = z[1]
  end
  for name, cfg in pairs(zones or {}) do
    assert(type(name) == 'string' and #name <= 32 and name:match('^[a-z][a-z0-9_]*$'),
      'zones: expected a zone name: a lowercase letter, then lowercase letters, digits or _')
    assert(type(cfg) == 'table', 'zones.' .. name .. ': expected a table')
    for k in pairs(cfg) do
      assert(k == 'size' or k == 'evict', 'zones.' .. name .. ': unknown key ' .. tostring(k))
    end
    local z = out[name]
    if not z then
      assert(cfg.size, 'zones.' .. name .. '.size: required')
      z = { evict = true }
      out[name] = z
      order[#order + 1] = name
    end
    assert(not (name == 'default' and shdict_size and cfg.size),
      'zones.default: shdict_size is the size of this zone: give only one of them')
    if cfg.size then z.size = zone_size(name, cfg.size) end
    if cfg.evict ~= nil then z.evict = cfg.evict == true end
    assert(not (z.locked and z.evict), 'zones.' .. name .. '.evict: this zone holds '
      .. 'security state, which is never evicted: leave evict out, or false')
  end
  out.default.size = out.default.size or 16 * M
  return out, order
end

-- The octets a value takes in the engine: a number none, a string or boolean its tag too.
local function value_len(v)
  if type(v) == 'number' then return 0 end
  if type(v) == 'boolean' then return 1 end
  return #v + 1
end

-- One zone: get, set, add, incr, incr_peek, delete, ttl on the harness's clock; the methods take the
-- zone first (zone:get(key)), the zone 'default' also serves sluice.shdict.
local function new_zone(h, name, cfg)
  local store, used = {}, 0
  local budget, largest = zone_budget(cfg.size)
  local zone = { refusing = false, refusals = 0, store = store }
  local function drop(key)
    local e = store[key]
    if e then used = used - e.size; store[key] = nil end
  end
  local function live(key)
    local e = store[key]
    if e and e.expires and e.expires <= h.clock then drop(key); e = nil end
    return e
  end
  local function fits(size, old)
    if cfg.evict then return true end
    if used - old + size <= budget then return true end
    for key in pairs(store) do live(key) end
    return used - old + size <= budget
  end
  local function check(fn, key, ttl)
    argcheck(key_ok(key), 'zone:' .. fn, 'key must be a string of 1..1024 bytes')
    argcheck(ttl == nil or (type(ttl) == 'number' and ttl >= 0), 'zone:' .. fn, 'bad ttl')
  end
  -- Store value under key (live: the entry there now): true, or nil and why.
  local function put(key, value, ttl, e)
    local size = ENTRY_OVERHEAD + #key + value_len(value)
    local why = size > largest and 'no memory' or not fits(size, e and e.size or 0) and 'full'
    if why then
      zone.refusals = zone.refusals + 1
      zone.refusing = not cfg.evict
      return nil, why
    end
    drop(key)
    store[key] = { value = value, size = size, expires = ttl and ttl > 0 and h.clock + ttl or nil }
    used = used + size
    zone.refusing = false
    return true
  end
  local function miss()
    if zone.refusing then return nil, 'full' end
    return nil
  end
  function zone.get(_, key)
    check('get', key)
    local e = live(key)
    if e then return e.value end
    return miss()
  end
  function zone.ttl(_, key)
    check('ttl', key)
    local e = live(key)
    if not e then return miss() end
    return e.expires and e.expires - h.clock or 0
  end
  local function check_value(fn, value, allow_nil)
    local t = type(value)
    argcheck((allow_nil and value == nil) or t == 'string' or t == 'number' or t == 'boolean',
      'zone:' .. fn, 'value must be a string, number, boolean' .. (allow_nil and ' or nil' or ''))
  end
  function zone.set(_, key, value, ttl)
    check('set', key, ttl)
    check_value('set', value, true)
    if value == nil then drop(key); return true end
    return put(key, value, ttl, live(key))
  end
  function zone.add(_, key, value, ttl)
    check('add', key, ttl)
    check_value('add', value, false)
    if live(key) then return nil, 'exists' end
    return put(key, value, ttl, nil)
  end
  function zone.incr(_, key, by, ttl)
    check('incr', key, ttl)
    argcheck(type(by) == 'number' and by == by, 'zone:incr', 'by must be a number')
    local e = live(key)
    if not e then
      local ok, err = put(key, by, ttl, nil)
      if not ok then return nil, err end
      return by
    end
    if type(e.value) ~= 'number' then return nil, 'not a number' end
    e.value = e.value + by
    zone.refusing = false
    return e.value
  end
  -- incr (by 0: only read, 0 when absent) and the number under peek (0 when absent).
  function zone.incr_peek(self, key, by, ttl, peek)
    argcheck(peek == nil or key_ok(peek), 'zone:incr_peek', 'peek must be a key or nil')
    local n, err
    if by == 0 then
      check('incr_peek', key, ttl)
      local e = live(key)
      n = e and e.value or 0
      if type(n) ~= 'number' then return nil, 'not a number' end
    else
      n, err = zone.incr(self, key, by, ttl)
      if not n then return nil, err end
    end
    local p = peek and live(peek)
    return n, p and type(p.value) == 'number' and p.value or 0
  end
  function zone.delete(_, key)
    check('delete', key)
    local was = live(key) ~= nil
    drop(key)
    return was
  end
  return setmetatable(zone, { __tostring = function() return "sluice.zone('" .. name .. "')" end })
end

-- sluice.zone(name), and sluice.shdict = the zone 'default' with plain functions.
local function new_zones(h)
  local zones, stores = {}, {}
  for name, cfg in pairs(h.zone_config) do
    zones[name] = new_zone(h, name, cfg)
    stores[name] = zones[name].store
  end
  local function open(name)
    argcheck(type(name) == 'string', 'zone', 'name must be a string')
    if not zones[name] then
      error('sluice.zone: no zone named \'' .. name .. '\' (zones in the configuration, '
        .. 'docs/configuration.md)', 2)
    end
    return zones[name]
  end
  local d = zones.default
  local shdict = {
    get = function(key) return d:get(key) end,
    set = function(key, value, ttl) return d:set(key, value, ttl) end,
    incr = function(key, by, ttl) return d:incr(key, by, ttl) end,
  }
  return open, shdict, zones, stores
end

local function iso8601(t)
  local s = math.floor(t)
  return os.date('!%Y-%m-%dT%H:%M:%S', s) .. ('.%06dZ'):format(math.floor((t - s) * 1e6 + 0.5))
end

-- The fake C half: the functions docs/lua-api.md lists as the engine's.
local function new_core(h)
  local core = { domains = h.domains, crypto = testing_crypto }
  core.zone, core.shdict, h.zones, h.stores = new_zones(h)
  h.store = h.stores.default
  function core.now() return h.clock end
  function core.sleep(seconds)
    argcheck(type(seconds) == 'number' and seconds >= 0 and seconds <= h.budget_left,
      'sleep', 'seconds out of range (0 .. the hook\'s remaining budget)')
    h.clock, h.budget_left = h.clock + seconds, h.budget_left - seconds
    h.sleeps[#h.sleeps + 1] = seconds
    return true
  end
  function core.log(level, event, fields)
    argcheck(LEVELS[level], 'log', 'level must be debug, info, notice, warning or err')
    argcheck(type(event) == 'string' and #event <= 64 and event:match('^[a-z0-9_.]+$')
      and event:find('.', 1, true), 'log', -- core/policy/lapi_log.c: lapi_is_name
      'event must be noun.verb in lowercase')
    argcheck(fields == nil or type(fields) == 'table', 'log', 'fields must be a table')
    for k, v in pairs(fields or {}) do
      local t = type(v)
      argcheck(type(k) == 'string' and not RESERVED_LOG[k], 'log',
        'field names are strings other than ts, level, event, sid and policy')
      argcheck(t == 'string' or t == 'number' or t == 'boolean', 'log',
        'field values are strings, numbers or booleans')
    end
    h.logs[#h.logs + 1] = { level = level, event = event, fields = deep_copy(fields or {}) }
  end
  function core.audit(event, fields)
    argcheck(type(event) == 'string' and event:match('^[a-z][a-z0-9_]*$'), 'audit',
      'event must be a lowercase name like auth_attempt')
    argcheck(fields == nil or type(fields) == 'table', 'audit', 'fields must be a table')
    fields = fields or {}
    argcheck(fields.timestamp == nil and fields.event_type == nil, 'audit',
      'timestamp and event_type are set by the core')
    local line = deep_copy(fields)
    line.timestamp, line.event_type = iso8601(h.clock), event
    json.encode(line) -- raises where the engine would: fields JSON cannot hold
    h.audits[#h.audits + 1] = line
    return true
  end
  core.passwd = {}
  function core.passwd.verify(user, password)
    argcheck(type(user) == 'string' and type(password) == 'string', 'passwd.verify',
      'user and password must be strings')
    h.verifications = h.verifications + 1
    if h.passwd_error then return nil, h.passwd_error end
    -- false with the engine's reasons (core/auth/authdb.c authdb_rc_name)
    local id = user:lower()
    local domain = id:match('^.+@([^@]+)$')
    if not domain then return false, 'malformed identity' end
    if h.users[id] == password then return true end
    if h.users[id] ~= nil then return false, 'wrong password' end
    for known in pairs(h.users) do
      if known:match('@([^@]+)$') == domain then return false, 'unknown user' end
    end
    return false, 'unknown domain'
  end
  testing_http.install(h, core, argcheck)
  -- sluice.ldap.verify: the directory is opts.ldap_users; h.ldap_error makes it
  -- unavailable. As the engine's: false at once for a domain without ldap settings or
  -- an empty password (core/policy/lapi_ldap.c).
  core.ldap = {}
  function core.ldap.verify(identity, password)
    argcheck(type(identity) == 'string' and type(password) == 'string', 'ldap.verify',
      'identity and password must be strings')
    local domain = identity:match('^[^%z]+@([^@%z]+)$')
    local cfg = domain and h.domains[domain:lower()]
    if not (cfg and cfg.ldap) then return false, 'no directory for the domain' end
    if password == '' then return false, 'empty password' end
    h.ldap_verifications = h.ldap_verifications + 1
    if h.ldap_error then return nil, h.ldap_error end
    local known = h.ldap_users[identity:lower()]
    if known == password then return true end
    -- false with a reason in the double's own words (the engine's name the DN or base)
    return false, known == nil and 'no such user' or 'wrong password'
  end
  return core
end

local function ascii_lower(s)
  return (s:gsub('%u', string.lower))
end

-- session.client as core/net/iplimit.c names it (lua/sluice/client_key.lua).
testing.client_of = require('sluice.client_key')

-- opts: domains (the configuration's table), users ({ ['a@b'] = 'password' }),
-- ldap_users (the same, for sluice.ldap.verify), now (epoch seconds, default 1.7e9),
-- budget (seconds per hook, default 10), zones and shdict_size (as in the configuration),
-- client_ipv6_prefix (session.client, default 64).
function testing.new(opts)
  opts = opts or {}
  local h = setmetatable({
    clock = opts.now or 1700000000, budget = opts.budget or 10, budget_left = opts.budget or 10,
    client_ipv6_prefix = opts.client_ipv6_prefix or 64,
    domains = testing_config.domains(opts.domains),
    domains_orig = testing_config.domains(opts.domains),
    users = {}, logs = {}, audits = {}, sleeps = {}, verifications = 0, next_sid = 1,
    paths = setmetatable({}, { __mode = 'k' }), ldap_users = {}, ldap_verifications = 0,
    session_fields = setmetatable({}, { __mode = 'k' }), policy_chunks = {},
  }, harness)
  for u, p in pairs(opts.users or {}) do h.users[u:lower()] = p end
  for u, p in pairs(opts.ldap_users or {}) do h.ldap_users[u:lower()] = p end
  h.oauth2_clients = testing_http.clients(opts.domains)
  h.zone_config, h.zone_order = load_zones(opts.zones, opts.shdict_size)
  h.core = new_core(h)
  h.ctl = testing_ctl.new(h, h.zone_order)
  return h
end

-- Bind `sluice` to this harness: forget the modules built over another harness's
-- core (the Lua halves are reloaded, as in a fresh engine state), install ours.
local function bind(h)
  for name in pairs(package.loaded) do
    if (name == 'sluice' or name:match('^sluice%.')) and name ~= 'sluice.testing'
        and name ~= 'sluice.testing_tx' and name ~= 'sluice.verdict'
        and name ~= 'sluice.testing_crypto' and name ~= 'sluice.testing_http'
        and name ~= 'sluice.testing_ctl' and name ~= 'sluice.testing_config'
        and name ~= 'sluice.schema' then
      package.loaded[name] = nil
    end
  end
  package.loaded['sluice.core'] = h.core
  package.loaded['sluice.ctl'] = h.ctl
end

-- Load a policy file as the engine does: a fresh `sluice` bound to this harness, the
-- file run once, its table of hooks returned.
function harness:load_policy(path)
  bind(self)
  local chunk = assert(loadfile(path))
  local policy = chunk()
  assert(type(policy) == 'table', path .. ' must return a table of hooks')
  for k, v in pairs(policy) do -- a misspelt hook must not silently mean "no check"
    assert(HOOKS[k] and type(v) == 'function', path .. ': ' .. tostring(k) .. ' is not a hook')
  end
  self.paths[policy] = path
  self.policy_chunks['@' .. path] = true
  return policy
end

-- Answer requests to url with fn(req) -> status, body[, headers] | nil, why
-- (lua/sluice/testing_http.lua); fn nil removes the route.
function harness:http_route(url, fn)
  self.http_routes[url] = fn
end

-- require() a module (sluice, sluice.ratelimit...) bound to this harness, for specs of
-- the library itself.
function harness:require(name)
  bind(self)
  return require(name)
end

-- A session as hooks see it. Defaults: a TLS 1.3 client at 192.0.2.10; `user` sets
-- domain and auth_mechanism too; tls = false leaves the TLS fields out; `client` follows
-- `client_address` (testing.client_of) unless given.
function harness:session(fields)
  fields = fields or {}
  local s = {
    id = ('%08x'):format(self.next_sid), listener = 'smtps',
    client_address = '192.0.2.10', client_port = 50000, helo = 'client.example',
    tls_version = 'TLSv1.3', tls_cipher = 'TLS_AES_256_GCM_SHA384', data = {},
  }
  self.next_sid = self.next_sid + 1
  if fields.tls == false then s.tls_version, s.tls_cipher = nil, nil end
  if fields.user then
    s.domain = fields.user:match('@([^@]+)$')
    s.auth_mechanism = 'PLAIN'
  end
  for k, v in pairs(fields) do
    if k ~= 'tls' then s[k] = v end
  end
  if fields.client == nil then
    s.client = testing.client_of(s.client_address, self.client_ipv6_prefix)
  end
  return self:read_only(s)
end

-- As core/policy/lapi_session.c makes it: a proxy over the fields that raises when policy
-- code assigns to it (notes go in session.data, itself writable) and hides its metatable.
-- Policy code is a file h:load_policy loaded, or a sluice module; a spec (or a runner
-- playing the core, which sets helo and the identity) may still set fields.
local function is_policy_code(h, source)
  return h.policy_chunks[source] ~= nil
    or (source:match('lua/sluice/[%w_]+%.lua$') ~= nil and not source:match('/testing'))
end

function harness:read_only(fields)
  local h = self
  local function write(_, key, value)
    local source = debug.getinfo(2, 'S').source
    if is_policy_code(h, source) then
      local name = (type(key) == 'string' or type(key) == 'number') and tostring(key) or '?'
      error('session.' .. name .. ' is read-only (notes go in session.data)', 2)
    end
    fields[key] = value
  end
  local proxy = setmetatable({}, { __index = fields, __newindex = write,
    __metatable = false })
  self.session_fields[proxy] = fields
  return proxy
end

-- What the core writes in a session (identity after AUTH): through the proxy's back.
local function set_session(h, session, key, value)
  local fields = h.session_fields[session]
  if fields then fields[key] = value else session[key] = value end
end

-- A transaction (lua/sluice/testing_tx.lua has the fields).
function harness:transaction(fields)
  return testing_tx.new(fields)
end

-- Move the clock forward (zone TTLs, ratelimit windows).
function harness:advance(seconds)
  self.clock = self.clock + seconds
end

local function policy_error(h, policy, hook, fn, err)
  local path = h.paths[policy] or '?'
  local line = tostring(err):match(':(%d+):') or debug.getinfo(fn, 'S').linedefined
  h.logs[#h.logs + 1] = { level = 'err', event = 'policy.error', fields = {
    policy = path, line = tonumber(line), hook = hook, error = tostring(err) } }
end

local function call(h, policy, hook, fn, ...)
  h.budget_left = h.budget
  local co = coroutine.create(fn)
  local ok, v = coroutine.resume(co, ...)
  if ok and coroutine.status(co) ~= 'dead' then
    ok, v = false, 'hook yielded outside the sluice API'
  end
  if not ok then return false, v end
  if NOTIFY[hook] or v == nil then return true, nil end
  local good, why = verdict.check(v)
  if not good then return false, why end
  return true, v
end

-- Run one event through a list of policies as the engine does. Returns the verdict that
-- answers the client (a policy's, the default, or 451 4.3.0) and the index of the policy
-- that decided (nil for the default); notification hooks return nothing.
function harness:run(hook, policies, ...)
  local tx = select(2, ...)
  if type(tx) ~= 'table' or not tx._headers then tx = nil end
  if tx then tx._phase = hook end
  local v, by = nil, nil
  for i, policy in ipairs(policies) do
    local fn = policy[hook]
    if fn then
      local ok, r = call(self, policy, hook, fn, ...)
      assert(self:domains_untouched(), (self.paths[policy] or '?') .. ' changed sluice.domains')
      if not ok then
        policy_error(self, policy, hook, fn, r)
        if not NOTIFY[hook] then v, by = verdict.tempfail(unpack(POLICY_ERROR)), i; break end
      elseif r then
        v, by = r, i
        break
      end
    end
  end
  if tx then tx._phase = nil end
  if v then return v, by end
  return DEFAULTS[hook] and DEFAULTS[hook]() or nil
end

-- AUTH as the core runs it: on_auth; on accept the session gets its identity (the SASL
-- identity, ASCII-lowercased, and its domain); then on_auth_result without the secret,
-- with the reply the client gets as a plain table (235 2.7.0 on accept), as the core
-- passes it (core/policy/lapi_session.c).
function harness:auth(policies, session, auth)
  local v = self:run('on_auth', policies, session, auth)
  if v.kind == 'accept' then
    local user = (v.user or auth.user):gsub('%u', string.lower)
    set_session(self, session, 'user', user)
    set_session(self, session, 'domain', user:match('@([^@]+)$'))
    set_session(self, session, 'auth_mechanism', auth.mechanism)
  end
  local reply = { kind = v.kind, code = v.code, enhanced = v.enhanced, text = v.text,
    reason = v.reason }
  if v.kind == 'accept' then
    reply.code, reply.enhanced, reply.text = 235, '2.7.0', 'Authentication successful'
  end
  self:run('on_auth_result', policies, session,
    { mechanism = auth.mechanism, user = auth.user }, reply)
  return v
end

function harness:domains_untouched()
  local function same(a, b)
    if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
    for k, x in pairs(a) do if not same(x, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  return same(self.domains, self.domains_orig)
end

local function where(list, key, value)
  local out = {}
  for _, item in ipairs(list) do
    if item[key] == value then out[#out + 1] = item end
  end
  return out
end

-- The audit lines written so far with this event_type.
function harness:audit_events(event_type)
  return where(self.audits, 'event_type', event_type)
end

-- The log lines written so far with this event.
function harness:log_events(event)
  return where(self.logs, 'event', event)
end

-- Bearer tokens for specs (lua/sluice/testing_crypto.lua): testing.jwk(name[, kty[,
-- kid]]) is a public JWK, testing.jwks_file(keys) writes a JWKS file and returns its path,
-- testing.token(jwk, claims[, opts]) a token that the double's sluice.crypto verifies
-- with that key (and no other).
testing.jwk = testing_crypto.test_jwk
testing.jwks_file = testing_crypto.test_jwks_file
testing.token = testing_crypto.test_token

-- h:token(claims, opts): testing.token with opts.key (default testing.jwk('test-key')).
function harness:token(claims, opts)
  opts = opts or {}
  return testing_crypto.test_token(opts.key or testing.jwk('test-key'), claims, opts)
end

-- Shorthand: a fresh harness and one policy loaded into it; returns policy, harness.
function testing.load_policy(path, opts)
  local h = testing.new(opts)
  return h:load_policy(path), h
end

return testing
