-- dist/cluster/node3.lua: node 3 of three sluice nodes behind HAProxy (haproxy.cfg), sharing
-- rate limits, blocks and the bearer-token deny-list in one Redis (redis.conf); see
-- docs/deployment.md "Several nodes behind HAProxy with Redis". The three files differ
-- only in the node's number and address. tests/integration/test_cluster.py runs them as
-- they are, all three on one machine, each on its own loopback address; on three
-- machines give each node { '0.0.0.0', '::' } and ports 465 and 587, and put HAProxy's
-- address in proxy_trusted. Relative paths resolve against this file's directory
-- (/etc/sluice/ when installed: link lua and policies to /usr/share/sluice/).
return {
  hostname = 'node3.mail.example.org',
  workers = 2,
  log_level = 'info',
  users_dir = 'users',                          -- the same user files on every node
  control_socket = 'run/node3.ctl',             -- `sluice ctl`: a deny here holds everywhere
  listeners = {
    { name = 'smtps', address = '127.0.1.3', port = 10465, tls = 'implicit',
      proxy_protocol = true, proxy_trusted = '127.0.1.10' },
    { name = 'submission', address = '127.0.1.3', port = 10587, tls = 'starttls',
      proxy_protocol = true, proxy_trusted = '127.0.1.10' },
  },
  tls = {
    certificates = {                            -- ECDSA first; RSA for old clients
      { cert = 'tls/ecdsa-fullchain.pem', key = 'tls/ecdsa-privkey.pem' },
      { cert = 'tls/fullchain.pem', key = 'tls/privkey.pem' },
    },
  },
  upstreams = {
    default = { { host = '127.0.1.30', port = 10025, tls = 'none' } },
  },
  redis = { address = '127.0.1.20', port = 16379, password_file = 'redis.pass' },
  zones = {
    limits = { backend = 'redis' },             -- fail = 'open': local counters meanwhile
    blocks = { backend = 'redis' },
    denylist = { backend = 'redis' },           -- fail = 'closed': token AUTH gets 454
  },
  metrics = { address = '127.0.1.3', port = 9465 },
  lua_dir = 'lua',
  policies = {
    'policies/ratelimit.lua',
    'policies/auth.lua',
    'policies/oauth2.lua',
    'policies/sender_domain.lua',
    'policies/audit.lua',
  },
  audit_log = 'audit/node3.log',
  domains = {
    -- a small hourly limit, so that the test reaches it: the default is 1000
    ['example.org'] = {
      auth = { 'file', 'oauth2' },
      limits = { user_messages_per_hour = 5 },
      oauth2 = { issuer = 'https://idp.example.org', audience = 'smtp://mail.example.org',
                 jwks_file = 'tokens/dev-token.jwks' },
    },
    ['example.net'] = {},
  },
}
