// The official MCP TypeScript SDK (`@modelcontextprotocol/sdk`, pinned in tests/tools) as an OAuth client, for
// hivegate's end-to-end tests (tests/e2e/test_authserver_clients.py).
//
//   node tests/e2e/clients/ts_oauth_client.mjs MCP_URL REDIRECT_URL
//
// The app is written the way the SDK's README shows one: an `OAuthClientProvider` kept in memory, with no `state()`
// (the SDK then sends no `state` parameter), a public client registered dynamically. It talks JSON lines:
//
// stdout, one event a line:
//   {"event": "request", "method": ..., "url": ..., "grant_type": ...}  every HTTP request the SDK makes (no secrets)
//   {"event": "authorize", "url": ...}   the SDK asked the app to open this URL in a browser
//   {"event": "called", "text": ..., "tokens": {...}}   a tool call passed; the tokens the app holds after it
//   {"event": "error", "message": ...}   then the script exits with status 1
// stdin, one command a line:
//   {"code": ...}   the `code` of the browser's final redirect: finish the login, reconnect, call `echo`
//   {"call": TEXT, "access_token"?: ...}   call `echo` again, first replacing the access token the app holds (the
//                   refresh token stays): with a token the gateway refuses, the SDK must refresh and retry
// The script exits when stdin closes.
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

// The SDK is installed with the other test tools; resolved from there (its CommonJS build: the same code as its ESM
// build, reachable without a node_modules beside this file).
const tools = createRequire(new URL('../../tools/package.json', import.meta.url));
const sdk = async (path) => import(pathToFileURL(tools.resolve(`@modelcontextprotocol/sdk/${path}`)).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { UnauthorizedError } = await sdk('client/auth.js');

const [mcpUrl, redirectUrl] = process.argv.slice(2);
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

// What an app keeps between runs, in memory. No `state()`: that method is optional in the SDK.
class MemoryProvider {
  client = undefined;
  stored = undefined;
  verifier = undefined;

  get redirectUrl() {
    return redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: 'e2e TypeScript SDK app',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(info) {
    this.client = info;
  }

  tokens() {
    return this.stored;
  }

  saveTokens(tokens) {
    this.stored = tokens;
  }

  redirectToAuthorization(url) {
    emit({ event: 'authorize', url: url.href });
  }

  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }

  codeVerifier() {
    if (this.verifier === undefined) throw new Error('no code verifier saved');
    return this.verifier;
  }
}

// Report each request the SDK makes (method, URL, grant type), so the test sees which flow ran.
async function observedFetch(input, init) {
  const url = input instanceof Request ? input.url : String(input);
  const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
  let grantType;
  if (init?.body instanceof URLSearchParams) grantType = init.body.get('grant_type') ?? undefined;
  emit({ event: 'request', method, url, grant_type: grantType });
  return fetch(input, init);
}

const provider = new MemoryProvider();
const transportFor = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: observedFetch });
let transport = transportFor();
let client = new Client({ name: 'hivegate-e2e-ts', version: '1.0.0' });

async function call(text) {
  const result = await client.callTool({ name: 'echo', arguments: { text } });
  const { access_token, refresh_token } = provider.tokens() ?? {};
  emit({ event: 'called', text: result.content?.[0]?.text, tokens: { access_token, refresh_token } });
}

async function handle(command) {
  if ('code' in command) {
    await transport.finishAuth(command.code);
    transport = transportFor();
    client = new Client({ name: 'hivegate-e2e-ts', version: '1.0.0' });
    await client.connect(transport);
    await call('logged in');
  } else if ('call' in command) {
    if (command.access_token !== undefined) provider.stored = { ...provider.stored, access_token: command.access_token };
    await call(command.call);
  } else {
    throw new Error(`unknown command: ${JSON.stringify(command)}`);
  }
}

try {
  try {
    await client.connect(transport);
    throw new Error('connected without logging in');
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim()) await handle(JSON.parse(line));
  }
  await client.close();
} catch (error) {
  emit({ event: 'error', message: String(error?.stack ?? error) });
  process.exit(1);
}
process.exit(0);
