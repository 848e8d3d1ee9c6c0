-- dist/conf/sluice.lua: a starting point for a real site, installed by `make install` as
-- /etc/sluice/sluice.lua.example (paths rewritten for its PREFIX and SYSCONFDIR): copy it
-- to sluice.lua. The Debian package installs it as /etc/sluice/sluice.lua itself (a
-- conffile), with tls/fullchain.pem and tls/privkey.pem linked to ssl-cert's self-signed
-- RSA pair and tls/ecdsa-*.pem to a self-signed ECDSA pair of its own until yours are
-- there. Put in your host name, certificates, upstream and domains,
-- and check it with `sluice check -c /etc/sluice/sluice.lua`. Every key:
-- docs/configuration.md and sluice.lua(5). The unit (sluice.service) makes /run/sluice and
-- /var/log/sluice.
return {
  hostname = 'mail.example.org',
  workers = 0,                                  -- one per online CPU
  user = 'sluice',                              -- dropped to after start-up as root
  users_dir = '/etc/sluice/users',              -- <domain>.txt, from `sluice passwd`
  log_level = 'info',                           -- JSON lines on stderr: the journal
  control_socket = '/run/sluice/sluice.ctl',    -- `sluice ctl`

  listeners = {
    { name = 'smtps', address = { '0.0.0.0', '::' }, port = 465, tls = 'implicit' },
    { name = 'submission', address = { '0.0.0.0', '::' }, port = 587, tls = 'starttls' },
  },

  -- ECDSA P-256 first, RSA-2048 for old clients: each client gets the one it supports,
  -- ECDSA whenever it can (about half the handshake CPU; docs/configuration.md tls).
  -- certbot: one lineage per key type, e.g. --key-type ecdsa and --key-type rsa
  -- --cert-name mail.example.org-rsa (docs/deployment.md "Configure").
  tls = {
    certificates = {
      { cert = '/etc/sluice/tls/ecdsa-fullchain.pem', key = '/etc/sluice/tls/ecdsa-privkey.pem' },
      { cert = '/etc/sluice/tls/fullchain.pem', key = '/etc/sluice/tls/privkey.pem' },
    },
    min_version = '1.2',
  },

  upstreams = {
    default = {
      { host = 'smtp.internal.example.org', port = 25, tls = 'starttls' },
    },
  },

  lua_dir = '/usr/share/sluice/lua',
  policies = {
    '/usr/share/sluice/policies/ratelimit.lua',
    '/usr/share/sluice/policies/auth.lua',
    '/usr/share/sluice/policies/sender_domain.lua',
    '/usr/share/sluice/policies/audit.lua',
  },
  audit_log = '/var/log/sluice/audit.log',      -- rotated by /etc/logrotate.d/sluice

  domains = {
    ['example.org'] = {},
  },
}
