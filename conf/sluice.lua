-- conf/sluice.lua: the default configuration, for trying sluice out on this machine.
-- Every key is described in docs/configuration.md. Relative paths are relative to
-- this file's directory (conf/). The certificates are the development ones from
-- certs/; the upstream is the local `sluice sink` on 127.0.0.1:2525.
return {
  -- hostname = 'mail.example.org',   -- default: this machine's host name
  workers = 0,                        -- one per online CPU
  user = 'sluice',                    -- dropped to when started as root (`./dev.sh run` makes it)
  users_dir = 'users',                -- conf/users/<domain>.txt
  log_level = 'info',
  control_socket = '../run/sluice.ctl', -- `sluice ctl` (docs/ctl.md); ./dev.sh run makes run/

  listeners = {
    { name = 'smtps', address = { '127.0.0.1', '::1' }, port = 8465, tls = 'implicit',
      sasl = { 'PLAIN', 'LOGIN', 'XOAUTH2', 'OAUTHBEARER' } },
    { name = 'submission', address = { '127.0.0.1', '::1' }, port = 8587, tls = 'starttls' },
  },

  tls = {
    -- ECDSA P-256 first, RSA-2048 for old clients: each client gets the one it supports,
    -- ECDSA whenever it can (docs/configuration.md tls, "ECDSA first").
    certificates = {
      { cert = '../certs/dev-ecdsa.crt', key = '../certs/dev-ecdsa.key' },
      { cert = '../certs/dev-rsa.crt', key = '../certs/dev-rsa.key' },
    },
    min_version = '1.2',
    ticket_key_lifetime = 3600,
  },

  limits = {
    max_message_size = 25 * 1024 * 1024,
    max_recipients = 100,
    max_connections = 10000,
    max_connections_per_ip = 100,   -- per client: an IPv4 address or an IPv6 /64
    max_inflight_bytes = 256 * 1024 * 1024,           -- messages in transit, in all
    max_inflight_bytes_per_client = 64 * 1024 * 1024, -- ... and per client address
  },

  upstreams = {
    default = {
      { host = '127.0.0.1', port = 2525, tls = 'none' },   -- `sluice sink`
    },
  },

  pool = { max_per_worker = 8, idle_timeout = 30, max_reuse = 1000 },

  -- The Lua policy engine (docs/lua-api.md, docs/policies.md): run in this order.
  policies = {
    '../policies/ratelimit.lua',      -- before auth.lua: its on_auth blocks first
    '../policies/auth.lua',
    '../policies/oauth2.lua',         -- bearer tokens (XOAUTH2, OAUTHBEARER)
    '../policies/sender_domain.lua',
    '../policies/audit.lua',
  },
  hook_timeout = 10,
  -- JSON lines of policies/audit.lua (docs/audit.md). `./dev.sh run` makes run/audit/ and
  -- gives it to `user`: started as root, sluice hands the file to that user and reopens it
  -- on HUP through its privileged reader (which knows only the path start-up had); a
  -- reload that turns it on opens it as that user, in a directory that user may write.
  audit_log = '../run/audit/audit.log',   -- a real site: '/var/log/sluice/audit.log'

  domains = {
    -- Passwords from users/example.org.txt, and OAuth2 bearer tokens. This oauth2 table
    -- trusts the per-install dev key that certs/gen-dev-certs.sh (`./dev.sh run`) makes, so
    -- that `sluice token alice@example.org` mints a token to try (the daemon warns at
    -- start: oauth2.dev_key). For a real identity provider see docs/authentication.md.
    ['example.org'] = {
      auth = { 'file', 'oauth2' },
      oauth2 = {
        issuer = 'https://sluice.invalid/dev',
        audience = 'smtp://localhost',
        scope = 'smtp.send',
        jwks_file = '../certs/dev-token.jwks',
      },
    },
    ['example.net'] = {},
  },
}
