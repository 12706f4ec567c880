/**
 * Single sign-on from the CLI: `ferry org sso set` (admins) and `ferry login --sso ORG`, which
 * signs in through the browser as `gh auth login --web` does: the CLI listens on 127.0.0.1,
 * prints the provider's URL (and tries to open a browser), and the server sends the browser
 * back to that listener with a one-time code that only this CLI (holding the verifier whose
 * hash it sent) can redeem for a session token.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Routes, SetSsoRequest } from '@ferry/protocol';
import { ApiError, sleep } from '@ferry/client';
import { createNodeClient } from '@ferry/client/node';
import { UsageError } from '../errors.js';
import { readUserFile } from '../files.js';
import { printJson } from '../format.js';
import { withClient } from '../run-command.js';
import { parseOrUsage } from '../validate.js';
import { saveLogin, serverOrigin, trustedCa, type TrustOptions } from './login.js';

/** How long the CLI waits for the browser to come back. */
const WAIT_MS = 10 * 60 * 1000;

interface SetSsoOptions {
  issuer: string;
  clientId: string;
  clientSecretFile: string;
  domains: string;
  groupsClaim?: string;
  json?: boolean;
}

export async function setSso(opts: SetSsoOptions): Promise<void> {
  const clientSecret = readUserFile('--client-secret-file', opts.clientSecretFile === '-' ? 0 : opts.clientSecretFile).trim();
  const body = parseOrUsage(
    SetSsoRequest,
    {
      issuer: opts.issuer,
      clientId: opts.clientId,
      clientSecret,
      domains: opts.domains
        .split(',')
        .map((d) => d.trim())
        .filter(Boolean),
      ...(opts.groupsClaim ? { groupsClaim: opts.groupsClaim } : {}),
    },
    'single sign-on settings',
  );
  await withClient(async (client, routes) => {
    const sso = await client.call(routes.setSso, { body });
    if (opts.json) return printJson(sso);
    process.stdout.write(
      `Single sign-on through ${sso.issuer} for ${sso.domains.join(', ')}${sso.groupsClaim ? ` (groups from "${sso.groupsClaim}")` : ''}.\n`,
    );
  });
}

export async function showSso(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const sso = await client.call(routes.getSso);
    if (opts.json) return printJson(sso);
    process.stdout.write(`issuer: ${sso.issuer}\nclient id: ${sso.clientId}\ndomains: ${sso.domains.join(', ')}\ngroups claim: ${sso.groupsClaim ?? '-'}\n`);
  });
}

interface Returned {
  code?: string;
  error?: string;
  message?: string;
}

/** Listens on 127.0.0.1 (any free port) for the browser's one return to /callback. */
async function loopback(): Promise<{ port: number; returned: Promise<Returned>; close: () => void }> {
  let settle: (r: Returned) => void = () => undefined;
  const returned = new Promise<Returned>((resolve) => (settle = resolve));
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    const r: Returned = Object.fromEntries(url.searchParams);
    res
      .writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
      .end(r.code ? 'Signed in to Ferry. You can close this window.\n' : `Sign-in refused: ${r.message ?? r.error}\n`);
    settle(r);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { port, returned, close: () => server.close() };
}

/** Tries the desktop's browser; where there is none, the printed URL is the way. */
function openBrowser(url: string): void {
  try {
    const child = spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // no browser opener: the URL is printed
  }
}

/** Sign-in with a code confirmed at the provider from any device (RFC 8628): for machines without a browser. */
async function loginDevice(origin: string, caPem: string, org: string): Promise<void> {
  const client = createNodeClient({ serverUrl: origin, caPem, userAgent: 'ferry-cli' });
  try {
    const started = await client.call(Routes.ssoDeviceStart, { body: { org } });
    process.stderr.write(
      `To sign in to ${org}, open ${started.verificationUri} on any device and enter the code ${started.userCode}` +
        `${started.verificationUriComplete ? `\n(or open ${started.verificationUriComplete})` : ''}\nWaiting until ${started.expiresAt}…\n`,
    );
    for (;;) {
      await sleep(started.intervalSeconds * 1000);
      try {
        const s = await client.call(Routes.ssoDevicePoll, { body: { handle: started.handle } });
        const saved = await saveLogin(origin, caPem, s.token);
        process.stdout.write(
          `Logged in to ${origin} as ${s.email} (${s.role} of ${s.org}; the session lasts until ${s.expiresAt}). Settings saved in ${saved}.\n`,
        );
        return;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'FERRY_E_SSO_PENDING')) throw err;
      }
    }
  } finally {
    await client.close();
  }
}

export async function loginSso(opts: TrustOptions & { server: string; sso: string; browser?: boolean; device?: boolean }): Promise<void> {
  const origin = serverOrigin(opts.server);
  const caPem = await trustedCa(origin, opts);
  if (opts.device) return loginDevice(origin, caPem, opts.sso);
  const verifier = randomBytes(32).toString('base64url');
  const cliChallenge = createHash('sha256').update(verifier).digest('base64url');
  const listener = await loopback();
  const client = createNodeClient({ serverUrl: origin, caPem, userAgent: 'ferry-cli' });
  let timer: NodeJS.Timeout | undefined;
  try {
    const started = await client.call(Routes.ssoStart, { body: { org: opts.sso, loopbackPort: listener.port, cliChallenge } });
    process.stderr.write(`Open this URL in a browser to sign in to ${opts.sso} (waiting on 127.0.0.1:${listener.port}):\n${started.authorizationUrl}\n`);
    if (opts.browser !== false) openBrowser(started.authorizationUrl);
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new UsageError('No sign-in came back within 10 minutes; run the command again.')), WAIT_MS);
    });
    const r = await Promise.race([listener.returned, timeout]);
    if (!r.code) throw new UsageError(`Sign-in refused: ${r.message ?? 'no reason given'}${r.error ? ` (${r.error})` : ''}`);
    const s = await client.call(Routes.ssoExchange, { body: { code: r.code, verifier } });
    const saved = await saveLogin(origin, caPem, s.token);
    process.stdout.write(`Logged in to ${origin} as ${s.email} (${s.role} of ${s.org}; the session lasts until ${s.expiresAt}). Settings saved in ${saved}.\n`);
  } finally {
    if (timer) clearTimeout(timer);
    listener.close();
    await client.close();
  }
}
