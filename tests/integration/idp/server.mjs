// tests/integration/idp/server.mjs: the authorization server of tests/integration/test_idp.py,
// oidc-provider (npm, pinned in package.json / package-lock.json; `npm ci` in this
// directory installs it) on 127.0.0.1, plain HTTP, an ephemeral port.
// Version 8.x: the last line that runs on Node 18, Debian 12's nodejs (9.0 dropped Node
// 18 and 20; 9.x calls URL.parse, which Node 18 lacks). It runs on later LTS releases too.
//
//   node server.mjs CONFIG.json
//
// CONFIG (written by the test fixture): { "users": { "alice@example.org": "password", ... },
// or instead of "users" "ldap": { ... } (directory.mjs: accounts and passwords in a
// directory, test_idp_ldap.py),
// "clients": [ oidc-provider client metadata, ... ], "resources": { "RESOURCE": { "audience",
// "scope", "format": "jwt" | "opaque" }, ... }, "access_token_ttl": seconds }.
// The issuer is http://127.0.0.1:PORT, known once the port is bound; the first line on
// stdout is {"event":"idp.ready","port":N,"issuer":"...","kid":"..."}.
//
// What a real provider does, done the standard oidc-provider way:
//  * the authorization-code flow with PKCE; the login and consent pages are
//    /interaction/UID, to which a test POSTs `login` and `password` (form-encoded): the
//    login prompt checks the password, the consent prompt grants what was asked;
//  * resource indicators (RFC 8707): `resource` picks the audience, the scope and the
//    format of the access token (a JWT, RFC 9068, or an opaque one for introspection);
//  * refresh tokens (scope offline_access, prompt=consent), client credentials,
//    introspection (RFC 7662) and revocation (RFC 7009), the JWKS at /jwks;
//  * access tokens carry `email` (the account id, which is the address) as well as `sub`.
// Test controls, on loopback only like everything here:
//  * POST /test/rotate: a new RSA signing key, published first in /jwks and signing from
//    now on; the old keys stay published (verification of tokens already issued) - what
//    a provider's key rotation looks like from outside. The provider object is rebuilt
//    around the same in-memory store, so grants and tokens survive; answers {kid, kids}.
//  * POST /test/ttl?seconds=N: the lifetime of access tokens issued from now on.
//  * GET /test/counts: how many requests /jwks, /token/introspection and /token have had
//    (what a resource server fetched, and so what it cached; what a client fetched).
// Stopped by SIGTERM (the fixture, by PID).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';
import { directory } from './directory.mjs';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let accessTokenTTL = config.access_token_ttl ?? 600;
const keys = []; // private JWKs, the signing one first
const dir = config.ldap ? directory(config.ldap) : null; // null: the users of the file

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: 'idp-' + randomBytes(6).toString('hex'), use: 'sig', alg: 'RS256' };
}

function accountOf(id) {
  return {
    accountId: id,
    async claims() { return { sub: id, email: id, email_verified: true }; },
  };
}

// The account of id, or undefined; with a directory, only while the directory has it
// enabled (asked at every token issue).
async function account(id) {
  if (dir) return (await dir.enabled(id)) ? accountOf(id) : undefined;
  return Object.hasOwn(config.users, id) ? accountOf(id) : undefined;
}

// The login page's check of a password.
async function passwordRight(login, password) {
  if (dir) return dir.login(login, password);
  return Object.hasOwn(config.users, login) && config.users[login] === password;
}

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: { keys },
    cookies: { keys: ['sluice-test-idp-cookie-key'] },
    scopes: ['openid', 'email', 'offline_access'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    findAccount: (ctx, id) => account(id),
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    ttl: {
      AccessToken: () => accessTokenTTL,
      ClientCredentials: () => accessTokenTTL,
      AuthorizationCode: 60,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
      RefreshToken: 3600,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // a resource server (a confidential client) may introspect any token, a client
        // its own
        allowedPolicy: async (ctx, client, token) =>
          client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
      },
      // 8.x refuses to revoke another client's token by itself (invalid_request); it has
      // no allowedPolicy here
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf ?? undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const rs = config.resources[resource];
          if (!rs) throw new errors.InvalidTarget();
          return {
            audience: rs.audience,
            scope: rs.scope,
            accessTokenTTL,
            accessTokenFormat: rs.format,
            ...(rs.format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
          };
        },
      },
    },
    extraTokenClaims: async (ctx, token) =>
      (token.accountId ? { email: token.accountId } : undefined),
    // the default also wants offline_access, which our consent grants when asked
    issueRefreshToken: async (ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  });
  provider.on('server_error', (ctx, err) => console.error('idp server_error', err));
  if (dir) provider.use(dir.guardIntrospection);
  return provider;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

// The login and consent "pages": what a user does in the browser, as one POST.
async function interaction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const form = new URLSearchParams(await readBody(req));
  const { prompt, params } = details;
  if (prompt.name === 'login') {
    const login = form.get('login');
    if (!(await passwordRight(login, form.get('password')))) {
      return json(res, 403, { error: 'access_denied', error_description: 'bad login' });
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } },
      { mergeWithLastSubmission: false });
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } },
      { mergeWithLastSubmission: true });
  }
  return json(res, 400, { error: 'unexpected prompt', prompt: prompt.name });
}

const counts = {}; // requests to /jwks, /token/introspection and /token, for GET /test/counts
let provider;
let handler; // provider.callback(), made once per provider
let issuer;

function setProvider() {
  provider = makeProvider(issuer);
  handler = provider.callback();
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/jwks' || url.pathname === '/token/introspection' ||
        url.pathname === '/token') {
      counts[url.pathname] = (counts[url.pathname] ?? 0) + 1;
    }
    if (req.method === 'GET' && url.pathname === '/test/counts') return json(res, 200, counts);
    if (req.method === 'POST' && url.pathname === '/test/rotate') {
      keys.unshift(newKey());
      setProvider();
      return json(res, 200, { kid: keys[0].kid, kids: keys.map((k) => k.kid) });
    }
    if (req.method === 'POST' && url.pathname === '/test/ttl') {
      accessTokenTTL = Number(url.searchParams.get('seconds'));
      return json(res, 200, { access_token_ttl: accessTokenTTL });
    }
    if (req.method === 'POST' && /^\/interaction\/[^/]+$/.test(url.pathname)) {
      return await interaction(provider, req, res);
    }
    return handler(req, res);
  } catch (err) {
    console.error('idp error', err);
    if (!res.headersSent) json(res, 500, { error: String(err) });
    else res.end();
  }
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  keys.push(newKey());
  setProvider();
  process.stdout.write(JSON.stringify({ event: 'idp.ready', port, issuer, kid: keys[0].kid }) + '\n');
});

process.on('SIGTERM', () => process.exit(0));
