-- lua/sluice/testing_http.lua: the double's sluice.http (lua/sluice/testing.lua). A spec
-- routes URLs to functions with h:http_route(url, fn); fn(req) returns status, body[,
-- headers], or nil and why (an endpoint that is down or slow). req = { method, url,
-- headers, body, timeout, ca_file }; every request is kept in h.http_requests, in order.
-- A URL without a route answers nil, 'connection refused'. As in the engine
-- (core/policy/lapi_http.c), oauth2_client_auth = DOMAIN adds the domain's HTTP Basic client
-- authentication, whose secret the policy never sees.
local testing_crypto = require('sluice.testing_crypto')

local testing_http = {}

local KEYS = { method = true, url = true, headers = true, body = true, timeout = true,
  ca_file = true, insecure = true, oauth2_client_auth = true }

local function form(s)
  return (s:gsub('[^%w%-%._%*]', function(c)
    return c == ' ' and '+' or ('%%%02X'):format(c:byte())
  end))
end

local function b64(s)
  local t = testing_crypto.b64url_encode(s):gsub('-', '+'):gsub('_', '/')
  return t .. ('='):rep((4 - #t % 4) % 4)
end

-- domain (lowercased) -> { id, secret } from the configuration's oauth2 tables.
function testing_http.clients(domains)
  local out = {}
  for name, cfg in pairs(domains or {}) do
    local o = cfg.oauth2
    if o and o.client_id then
      local secret = o.client_secret
      if not secret and o.client_secret_file then
        local f = assert(io.open(o.client_secret_file, 'rb'))
        secret = f:read('*l')
        f:close()
      end
      out[name:lower()] = { id = o.client_id, secret = secret }
    end
  end
  return out
end

function testing_http.install(h, core, argcheck)
  h.http_routes, h.http_requests = {}, {}
  core.http = {}
  function core.http.request(t)
    argcheck(type(t) == 'table', 'http.request', 'expected a table')
    for k in pairs(t) do argcheck(KEYS[k], 'http.request', 'unknown key ' .. tostring(k)) end
    argcheck(type(t.url) == 'string', 'http.request', 'url is required')
    local method = t.method or 'GET'
    argcheck(method == 'GET' or method == 'POST', 'http.request', 'method must be GET or POST')
    argcheck(t.timeout == nil or (type(t.timeout) == 'number' and t.timeout > 0),
      'http.request', 'timeout must be a positive number')
    local headers = {}
    for k, v in pairs(t.headers or {}) do
      argcheck(type(k) == 'string' and type(v) == 'string', 'http.request',
        'headers must map names to strings')
      headers[k] = v
    end
    if t.oauth2_client_auth then
      local c = h.oauth2_clients[t.oauth2_client_auth:lower()]
      argcheck(c and c.secret, 'http.request', 'domain has no oauth2 client_id and client_secret')
      headers.Authorization = 'Basic ' .. b64(form(c.id) .. ':' .. form(c.secret))
    end
    local req = { method = method, url = t.url, headers = headers, body = t.body,
      timeout = t.timeout or 10, ca_file = t.ca_file }
    h.http_requests[#h.http_requests + 1] = req
    local route = h.http_routes[t.url]
    if not route then return nil, 'connection refused' end
    local status, body, response_headers = route(req)
    if status == nil then return nil, body or 'request failed' end
    return status, body or '', response_headers or {}
  end
end

-- Decode an application/x-www-form-urlencoded body into a table, for routes.
function testing_http.form_decode(body)
  local out = {}
  for k, v in (body or ''):gmatch('([^&=]+)=([^&]*)') do
    local function dec(s)
      return (s:gsub('+', ' '):gsub('%%(%x%x)', function(x) return string.char(tonumber(x, 16)) end))
    end
    out[dec(k)] = dec(v)
  end
  return out
end

return testing_http
