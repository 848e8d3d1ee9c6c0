// tests/integration/idp/directory.mjs: the IdP's accounts in an LDAP directory, for
// tests/integration/test_idp_ldap.py: what "an identity provider on the same directory as
// the passwords" (docs/authentication.md) means for server.mjs when its CONFIG has an
// "ldap" object instead of "users".
//
//   "ldap": { "uri": "ldaps://127.0.0.1:PORT", "ca_file": "/path/dev-ca.crt",
//             "user_dn": "uid=%u,ou=people,dc=example,dc=org",   (%u: the local part)
//             "domains": ["example.org"],
//             "reader_dn": "cn=idp,dc=example,dc=org", "reader_password": "..." }
//
// The account of a login (an address) is the entry user_dn names:
//  * login: a simple bind as that DN with the password typed on the login page;
//  * enabled: the entry exists and has no pwdAccountLockedTime (the ppolicy overlay's
//    lock, which also makes slapd refuse the user's binds), read by the reader account.
//    server.mjs asks at every token issue (findAccount: the authorization-code and
//    refresh grants) and at every introspection of an active token.
//
// The LDAP client is Debian's ldap-utils (ldapwhoami, ldapsearch), run with execFile, the
// password in a 0600 file in a 0700 directory of its own, removed as soon as the tool
// exits (`-y FILE`: never on a command line, where `ps` shows it; `-y /dev/stdin` does
// not work from Node, whose child's stdin is a socket, which /dev/stdin cannot open),
// TLS verified against ca_file: the same libldap as sluice's, already installed by
// `make deps` for test_ldap.py. An npm client (ldapjs) was weighed: its maintainers
// decommissioned it in 2024, and it would be one more pinned package to fetch; a
// process per lookup (a few ms) is nothing at a test's login rate.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// What a local part may be here: a name the template can hold without RFC 4514 escaping.
// Anything else is no account (the login page says "bad login").
const LOCAL_PART = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

function execute(argv, env) {
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { timeout: 5000, env }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err); // spawn error, timeout
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

// argv with '-y', PASSWORD_FILE at its end: the tool's exit code and output.
async function run(cfg, argv, password) {
  const dir = await mkdtemp(join(tmpdir(), 'idp-ldap-')); // mode 0700
  try {
    const file = join(dir, 'password');
    await writeFile(file, password, { mode: 0o600 }); // -y: the whole file, no newline
    return await execute([...argv, '-y', file],
      { ...process.env, LDAPTLS_CACERT: cfg.ca_file, LDAPTLS_REQCERT: 'demand' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function directory(cfg) {
  function dnOf(login) {
    const at = typeof login === 'string' ? login.lastIndexOf('@') : -1;
    if (at < 1) return undefined;
    const local = login.slice(0, at);
    const domain = login.slice(at + 1).toLowerCase();
    if (!LOCAL_PART.test(local) || !cfg.domains.includes(domain)) return undefined;
    return cfg.user_dn.replaceAll('%u', local.toLowerCase());
  }

  // true: the directory accepted the password; false: it refused (49) or there is no
  // such DN; throws when the directory could not answer (the login page gets a 500).
  async function login(id, password) {
    const dn = dnOf(id);
    if (dn === undefined || typeof password !== 'string' || password === '') return false;
    const r = await run(cfg, ['ldapwhoami', '-x', '-H', cfg.uri, '-D', dn], password);
    if (r.code === 0) return true;
    if (r.code === 49 || r.code === 32) return false;
    throw new Error(`ldapwhoami ${dn}: exit ${r.code}: ${r.stderr.trim()}`);
  }

  // true: the entry exists and is not locked.
  async function enabled(id) {
    const dn = dnOf(id);
    if (dn === undefined) return false;
    const r = await run(cfg, ['ldapsearch', '-LLL', '-x', '-H', cfg.uri, '-D', cfg.reader_dn,
      '-b', dn, '-s', 'base', '(!(pwdAccountLockedTime=*))', '1.1'], cfg.reader_password);
    if (r.code === 32) return false; // no such object
    if (r.code !== 0) throw new Error(`ldapsearch ${dn}: exit ${r.code}: ${r.stderr.trim()}`);
    return /^dn:/m.test(r.stdout);
  }

  // Koa middleware for the provider (provider.use): an introspection that found an
  // active token answers {active: false} once its account is disabled (RFC 7662 2.2: a
  // token "no longer valid" is inactive). oidc-provider itself looks the account up at
  // token issue, not at introspection.
  async function guardIntrospection(ctx, next) {
    await next();
    if (ctx.path === '/token/introspection' && ctx.body?.active === true &&
        typeof ctx.body.sub === 'string' && !(await enabled(ctx.body.sub))) {
      ctx.body = { active: false };
    }
  }

  return { login, enabled, guardIntrospection };
}
