/**
 * Single sign-on against a real, certified OpenID provider (`oidc-provider`) on loopback, with
 * test users. The "browser" is a plain HTTP client that follows the provider's redirects with
 * its cookies; the provider's login and consent are finished for the user the test names.
 *
 * Sign-in through `ferry login --sso` works end to end (loopback redirect to the CLI, groups
 * claim mapped to a Ferry group); a wrong `state` or `nonce`, a user from a domain that is not
 * allowed, a replayed or expired code, and an exchange by another CLI are refused, each with
 * its own code and a message that says what happened.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, api, cleanEnv, runCli, startFerryServer, tempDir, waitFor, type ServerHandle } from '../helpers/ferry.js';
import { call } from '../helpers/teams.js';
import { CLIENT_SECRET, startProvider, type TestProvider } from '../helpers/oidc-provider.js';

type Jar = Map<string, string>;

/** One request of a browser without a screen, with its cookies. */
async function visit(jar: Jar, url: URL, init: { method?: string; form?: Record<string, string> } = {}): Promise<Response> {
  const headers: Record<string, string> = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
  if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    redirect: 'manual',
    headers,
    body: init.form ? new URLSearchParams(init.form).toString() : undefined,
  });
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(';')[0] ?? '';
    const at = pair.indexOf('=');
    jar.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return res;
}

/** Follows redirects from `res` until one points at `stopAt` (returned), or an answer without one (null). */
async function follow(jar: Jar, from: URL, res: Response, stopAt?: string): Promise<{ url: URL; res: Response } | URL> {
  let next = from;
  for (let hops = 0; hops < 15; hops++) {
    const location = res.headers.get('location');
    if (!location) return { url: next, res };
    next = new URL(location, next);
    if (stopAt && next.origin === new URL(stopAt).origin) return next;
    res = await visit(jar, next);
  }
  throw new Error('too many redirects');
}

/** Signs in at the provider from `start` until the provider sends the browser to Ferry: that path. */
async function browse(start: string, ferryUrl: string): Promise<string> {
  const jar: Jar = new Map();
  const first = new URL(start);
  const end = await follow(jar, first, await visit(jar, first), ferryUrl);
  if (!(end instanceof URL)) throw new Error(`no redirect to Ferry from ${end.url.href}: ${end.res.status} ${await end.res.text()}`);
  return end.pathname + end.search;
}

/**
 * Confirms a device code at the provider (RFC 8628's verification page) and signs in, as a
 * browser does: submits the page's form (the provider's pages post their hidden fields, then
 * ask to confirm) until a page without a form, which it returns.
 */
async function confirmDeviceCode(verificationUriComplete: string): Promise<string> {
  const jar: Jar = new Map();
  let url = new URL(verificationUriComplete);
  let res = await visit(jar, url);
  for (let pages = 0; pages < 5; pages++) {
    const end = await follow(jar, url, res);
    assert.ok(!(end instanceof URL));
    const page = await end.res.text();
    const form = /<form[^>]*method="post" action="([^"]+)"/.exec(page);
    if (!form) return page;
    const fields = Object.fromEntries([...page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    url = new URL(form[1]!, end.url);
    res = await visit(jar, url, { method: 'POST', form: fields });
  }
  throw new Error('the provider kept asking');
}

/** Where Ferry's callback page sends the browser on (the CLI's loopback), with its parameters. */
function onward(html: string): URL {
  const m = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(html);
  assert.ok(m, `no onward URL in ${html}`);
  return new URL(m[1]!.replace(/&#(\d+);/g, (_x, n: string) => String.fromCharCode(Number(n))));
}

describe('people: single sign-on through a real OpenID provider', () => {
  let server: ServerHandle;
  let idp: TestProvider;
  const verifier = randomBytes(32).toString('base64url');
  const cliChallenge = createHash('sha256').update(verifier).digest('base64url');

  /** Starts a sign-in as the CLI would (without listening): the provider's URL. */
  const startSignIn = async (): Promise<string> =>
    String((await call(server, null, 'POST', '/v1/sso/start', { org: 'default', loopbackPort: 45678, cliChallenge }, 201)).json.authorizationUrl);
  const callback = (path: string): ReturnType<typeof api> => api(server, 'GET', path, { token: null });

  before(async () => {
    // The test provider speaks plain http on loopback, which the server accepts only when told.
    server = await startFerryServer({ embeddedAgent: false, env: { FERRY_FAILED_SIGN_INS_PER_MINUTE: '0', FERRY_SSO_ALLOW_LOOPBACK_HTTP: 'true' } });
    idp = await startProvider(server.url);
    const secretFile = join(tempDir('sso'), 'client-secret');
    writeFileSync(secretFile, `${CLIENT_SECRET}\n`);
    const group = await server.cli(['group', 'create', 'deployers']);
    assert.equal(group.code, 0, group.stderr);
    const set = await server.cli([
      'org',
      'sso',
      'set',
      '--issuer',
      idp.issuer,
      '--client-id',
      'ferry',
      '--client-secret-file',
      secretFile,
      '--domains',
      'example.com,example.org',
      '--groups-claim',
      'groups',
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /Single sign-on through http:\/\/127\.0\.0\.1:\d+ for example\.com, example\.org \(groups from "groups"\)/);
  });
  after(async () => {
    await idp?.close();
    await server?.stop();
  });

  it('ferry login --sso signs in through the browser and the loopback redirect; the groups claim makes a member', async () => {
    const env = { ...cleanEnv(), FERRY_CONFIG: join(tempDir('person'), 'config.json') };
    const child = spawn(process.execPath, [CLI, 'login', '--server', server.url, '--sso', 'default', '--no-browser', '--ca-fingerprint', server.fingerprint], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const url = await waitFor(() => /^(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)$/m.exec(stderr)?.[1], 15_000, 'the sign-in URL');
    idp.nextUser = 'ada';
    const page = await callback(await browse(url, server.url));
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /Signed in as ada@example\.com/);
    const back = await fetch(onward(page.body.toString()));
    assert.match(await back.text(), /Signed in to Ferry/);
    assert.equal(await exited, 0, stderr);
    assert.match(stdout, /Logged in to .* as ada@example\.com \(viewer of default/);

    const mine = await runCli(['token', 'list', '--json'], env);
    assert.equal(mine.code, 0, mine.stderr);
    assert.ok((JSON.parse(mine.stdout) as { principal: string }[]).every((t) => t.principal === 'ada@example.com'));
    const users = JSON.parse((await server.cli(['user', 'list', '--json'])).stdout) as { users: { email: string; groups: string[] }[] };
    assert.deepEqual(users.users.find((u) => u.email === 'ada@example.com')?.groups, ['deployers']);
    const entries = (await call(server, server.adminToken, 'GET', '/v1/audit?limit=1000', undefined, 200)).json.entries as { actor: string; action: string }[];
    assert.ok(entries.some((e) => e.action === 'user.sign-in' && /^person:ada@example\.com \(session k_[0-9a-z]+\)$/.test(e.actor)));
  });

  it('plain http issuers are refused unless the server allows loopback http', async () => {
    const other = await startFerryServer({ embeddedAgent: false });
    try {
      const res = await api(other, 'PUT', '/v1/org/sso', {
        body: JSON.stringify({ issuer: idp.issuer, clientId: 'ferry', clientSecret: CLIENT_SECRET, domains: ['example.com'] }),
      });
      assert.equal(res.status, 400);
      assert.match(String(res.json.message), /must be an https:\/\/ URL.*ssoAllowLoopbackHttp/);
    } finally {
      await other.stop();
    }
  });

  it('a wrong state is refused', async () => {
    await startSignIn();
    const res = await callback('/v1/sso/callback?code=whatever&state=not-the-state');
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'FERRY_E_SSO_STATE');
    assert.match(String(res.json.message), /wrong state/);
  });

  it("a wrong nonce is refused (the ID token's nonce claim)", async () => {
    const url = new URL(await startSignIn());
    url.searchParams.set('nonce', 'a-nonce-the-server-never-made');
    idp.nextUser = 'ada';
    const back = onward((await callback(await browse(url.href, server.url))).body.toString());
    assert.equal(back.searchParams.get('error'), 'FERRY_E_SSO_REFUSED');
    assert.match(back.searchParams.get('message') ?? '', /nonce/);
  });

  it('a user from a domain that is not allowed is refused', async () => {
    idp.nextUser = 'mallory';
    const back = onward((await callback(await browse(await startSignIn(), server.url))).body.toString());
    idp.nextUser = 'ada';
    assert.equal(back.searchParams.get('error'), 'FERRY_E_SSO_DOMAIN');
    assert.match(back.searchParams.get('message') ?? '', /mallory@evil\.test is not in an allowed domain of this organization \(example\.com, example\.org\)/);
  });

  it('a replayed code is refused, with its own state and with another sign-in’s', async () => {
    const first = await browse(await startSignIn(), server.url);
    const done = onward((await callback(first)).body.toString());
    assert.ok(done.searchParams.get('code'), done.href);
    const again = await callback(first);
    assert.equal(again.json.code, 'FERRY_E_SSO_STATE', 'the state works once');
    // The same code under a fresh sign-in's state: the provider refuses the used code.
    const fresh = new URL(await browse(await startSignIn(), server.url), server.url);
    fresh.searchParams.set('code', new URL(first, server.url).searchParams.get('code') ?? '');
    const back = onward((await callback(fresh.pathname + fresh.search)).body.toString());
    assert.equal(back.searchParams.get('error'), 'FERRY_E_SSO_REFUSED');
    assert.match(back.searchParams.get('message') ?? '', /invalid_grant/);
  });

  it('an expired code is refused', async () => {
    idp.shortCodes = true;
    try {
      const path = await browse(await startSignIn(), server.url);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const back = onward((await callback(path)).body.toString());
      assert.equal(back.searchParams.get('error'), 'FERRY_E_SSO_REFUSED');
      assert.match(back.searchParams.get('message') ?? '', /invalid_grant/);
    } finally {
      idp.shortCodes = false;
    }
  });

  it('the exchange code works once, and only with the verifier of the CLI that started', async () => {
    const back = onward((await callback(await browse(await startSignIn(), server.url))).body.toString());
    const code = back.searchParams.get('code') ?? '';
    const wrong = await api(server, 'POST', '/v1/sso/exchange', { token: null, body: JSON.stringify({ code, verifier: 'x'.repeat(43) }) });
    assert.equal(wrong.json.code, 'FERRY_E_SSO_STATE');
    // A wrong verifier used the code up too: nobody may try verifiers against one code.
    const late = await api(server, 'POST', '/v1/sso/exchange', { token: null, body: JSON.stringify({ code, verifier }) });
    assert.equal(late.json.code, 'FERRY_E_SSO_STATE');
    const next = onward((await callback(await browse(await startSignIn(), server.url))).body.toString()).searchParams.get('code') ?? '';
    const ok = await call(server, null, 'POST', '/v1/sso/exchange', { code: next, verifier }, 201);
    assert.equal(ok.json.email, 'ada@example.com');
    assert.match(String(ok.json.token), /^ferry_u_/);
  });

  it('a removed person cannot come back through the provider until invited again; the invitation gives the role', async () => {
    const removed = await server.cli(['user', 'remove', 'ada@example.com']);
    assert.equal(removed.code, 0, removed.stderr);
    idp.nextUser = 'ada';
    const refused = onward((await callback(await browse(await startSignIn(), server.url))).body.toString());
    assert.equal(refused.searchParams.get('error'), 'FERRY_E_SSO_REFUSED');
    assert.match(refused.searchParams.get('message') ?? '', /ada@example\.com was removed from this organization; an admin can invite them again/);

    const invited = await server.cli(['user', 'invite', 'ada@example.com', '--role', 'operator']);
    assert.equal(invited.code, 0, invited.stderr);
    const back = onward((await callback(await browse(await startSignIn(), server.url))).body.toString());
    const signedIn = await call(server, null, 'POST', '/v1/sso/exchange', { code: back.searchParams.get('code'), verifier }, 201);
    assert.equal(signedIn.json.role, 'operator');
    const list = JSON.parse((await server.cli(['user', 'list', '--json'])).stdout) as { invitations: { email: string }[] };
    assert.ok(!list.invitations.some((i) => i.email === 'ada@example.com'), 'the invitation was used by the sign-in');
  });

  it('without a browser: ferry login --sso --device prints a URL and a code; confirmed elsewhere, it signs in', async () => {
    const pending = await call(server, null, 'POST', '/v1/sso/device', { org: 'default' }, 201);
    const early = await api(server, 'POST', '/v1/sso/device/poll', { token: null, body: JSON.stringify({ handle: pending.json.handle }) });
    assert.equal(early.json.code, 'FERRY_E_SSO_PENDING');

    const env = { ...cleanEnv(), FERRY_CONFIG: join(tempDir('device'), 'config.json') };
    const child = spawn(process.execPath, [CLI, 'login', '--server', server.url, '--sso', 'default', '--device', '--ca-fingerprint', server.fingerprint], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const complete = await waitFor(() => /\(or open (http:\/\/127\.0\.0\.1:\d+\/device\?user_code=\S+)\)/.exec(stderr)?.[1], 15_000, 'the device URL');
    assert.match(stderr, /enter the code [A-Z]{4}-[A-Z]{4}/);
    idp.nextUser = 'ada';
    assert.match(await confirmDeviceCode(complete), /Sign-in Success|success/i);
    assert.equal(await exited, 0, stderr);
    assert.match(stdout, /Logged in to .* as ada@example\.com/);
  });
});
