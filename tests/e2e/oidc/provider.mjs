// A real OpenID provider for hivegate's end-to-end tests, built on the npm `oidc-provider`.
//
//   node tests/e2e/oidc/provider.mjs [--port N] [--config JSON | --config-file PATH] [--watch-stdin]
//
// The configuration may also come from the OIDC_PROVIDER_CONFIG environment variable (JSON).
// Port 0 (the default) picks a free port. Once listening, the provider prints one JSON line on
// stdout: {"issuer": "http://127.0.0.1:PORT", "port": PORT}. With --watch-stdin it exits when its
// stdin closes, so a test that dies never leaves it behind.
//
// What it does:
// - issuer http://127.0.0.1:PORT, an RS256 signing key generated at start, published at /jwks;
// - clients from the configuration (client_credentials and authorization_code, PKCE S256 required);
// - resource indicators (RFC 8707): an access token is a JWT whose `aud` is the requested resource
//   (or `defaultResource`), unless that resource is listed in `opaqueResources`, whose tokens are
//   opaque and meant for the introspection endpoint (/token/introspection, enabled);
// - a login with no HTML: /interaction/:uid logs in `loginAccount` (or the account named by the
//   request's login_hint) and grants everything asked for, so the authorization-code flow is a chain
//   of plain redirects ending at the client's redirect_uri;
// - a default scope for authorization requests that carry none;
// - account claims (email, name, groups, ...) in the ID token, at userinfo and in access tokens;
//   PUT /test/accounts/:id changes them (or, with null, removes the account) while it runs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

// oidc-provider is installed with the other test tools (tests/tools, pinned by its package-lock.json).
const tools = createRequire(new URL('../../tools/package.json', import.meta.url));
const { default: Provider } = await import(pathToFileURL(tools.resolve('oidc-provider')).href);

const DEFAULTS = {
  host: '127.0.0.1',
  clients: [
    {
      client_id: 'hivegate-machine',
      client_secret: 'machine-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  accounts: {
    alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Example', groups: ['mcp-developers'] },
  },
  loginAccount: 'alice',
  defaultResource: null,
  defaultScope: 'openid profile email mcp:tools',
  resourceScope: 'openid profile email mcp:tools',
  opaqueResources: [],
  accessTokenTTL: 3600,
};

// Account claims never copied into an access token: the provider sets these itself.
const RESERVED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'client_id', 'scope', 'cnf']);

function loadConfig() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      config: { type: 'string' },
      'config-file': { type: 'string' },
      'watch-stdin': { type: 'boolean', default: false },
    },
  });
  let raw = process.env.OIDC_PROVIDER_CONFIG || '{}';
  if (values['config-file']) raw = fs.readFileSync(values['config-file'], 'utf8');
  if (values.config) raw = values.config;
  const config = { ...DEFAULTS, ...JSON.parse(raw) };
  if (values.port !== undefined) config.port = Number(values.port);
  config.port ??= 0;
  return { config, watchStdin: values['watch-stdin'] };
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}

function accountFor(config, accountId) {
  const claims = config.accounts[accountId];
  if (!claims) return undefined;
  return {
    accountId,
    async claims() {
      return { sub: accountId, ...claims };
    },
  };
}

function buildProvider(config, issuer) {
  const opaque = new Set(config.opaqueResources);
  const extraScopes = config.resourceScope.split(' ').filter((s) => !['openid', 'offline_access'].includes(s));

  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: { keys: [signingKey()] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'offline_access', ...extraScopes],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'groups'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ttl: { AccessToken: config.accessTokenTTL, ClientCredentials: config.accessTokenTTL },
    findAccount: (ctx, sub) => accountFor(config, sub),
    async extraTokenClaims(ctx, token) {
      const claims = token.accountId ? config.accounts[token.accountId] : undefined;
      if (!claims) return undefined;
      return Object.fromEntries(Object.entries(claims).filter(([name]) => !RESERVED_CLAIMS.has(name)));
    },
    // Auto-consent: every authorization request is granted what it asks for.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grant = new oidc.provider.Grant({ accountId: oidc.session.accountId, clientId: oidc.client.clientId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      grant.addOIDCClaims([...oidc.requestParamClaims]);
      for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
        grant.addResourceScope(indicator, [...oidc.requestParamScopes].filter((s) => server.scopes.has(s)).join(' '));
      }
      await grant.save();
      return grant;
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf ?? config.defaultResource ?? undefined,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource) => ({
          audience: resource,
          scope: config.resourceScope,
          accessTokenTTL: config.accessTokenTTL,
          ...(opaque.has(resource) ? { accessTokenFormat: 'opaque' } : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
        }),
      },
    },
  });

  // Authorization requests without a scope get the default one (oidc-provider refuses them otherwise).
  provider.use(async (ctx, next) => {
    if (ctx.path === '/auth' && ctx.method === 'GET' && !ctx.query.scope && config.defaultScope) {
      ctx.query = { ...ctx.query, scope: config.defaultScope };
    }
    await next();
  });

  // Tests change an account while the provider runs: PUT /test/accounts/:id with its claims as JSON (null: gone).
  provider.use(async (ctx, next) => {
    const match = ctx.method === 'PUT' ? ctx.path.match(/^\/test\/accounts\/([^/]+)$/) : null;
    if (!match) {
      await next();
      return;
    }
    let body = '';
    for await (const chunk of ctx.req) body += chunk;
    const claims = JSON.parse(body);
    const id = decodeURIComponent(match[1]);
    if (claims === null) delete config.accounts[id];
    else config.accounts[id] = claims;
    ctx.status = 204;
  });

  // The non-interactive login and consent.
  provider.use(async (ctx, next) => {
    if (!ctx.path.startsWith('/interaction/')) {
      await next();
      return;
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt, params } = details;
    let result;
    if (prompt.name === 'login') {
      const hinted = params.login_hint && config.accounts[params.login_hint] ? params.login_hint : undefined;
      result = { login: { accountId: hinted ?? config.loginAccount } };
    } else {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      const missing = prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    }
    const location = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(location);
  });

  return provider;
}

const { config, watchStdin } = loadConfig();
const server = http.createServer();
server.listen(config.port, config.host, () => {
  const { port } = server.address();
  const issuer = `http://${config.host}:${port}`;
  const provider = buildProvider(config, issuer);
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (watchStdin) {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
