/**
 * The web UI's browser session at the HTTP level (raw HTTPS, as a browser or an attacker's page
 * would send it): the session cookie's attributes; writes authenticated by the cookie need the
 * session's CSRF token (403 FERRY_E_CSRF) and must not come from another site (403
 * FERRY_E_CROSS_SITE); reads need neither; bearer-token clients are unaffected; a cookie never
 * authenticates an agent route; an expired or signed-out session is refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, startFerryServer, type ApiResult, type ServerHandle } from '../helpers/ferry.js';
import { TEST_PASSWORD, person, serviceAccount } from '../helpers/teams.js';

const COOKIE = '__Host-ferry_session';

describe('web session: cookie, CSRF, same-origin', () => {
  let server: ServerHandle;
  let cookie = '';
  let csrf = '';
  let origin = '';

  /** A request as the browser would send it with the session cookie (and whatever else is given). */
  const asBrowser = (method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; cookie?: string } = {}): Promise<ApiResult> =>
    api(server, method, path, {
      token: null,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      headers: { cookie: `${COOKIE}=${opts.cookie ?? cookie}`, ...opts.headers },
    });

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
    origin = new URL(server.url).origin;
    await person(server, server.adminToken, 'dee@example.com', 'admin');
    const signedIn = await api(server, 'POST', '/v1/web/session', {
      token: null,
      body: JSON.stringify({ email: 'dee@example.com', password: TEST_PASSWORD }),
      headers: { origin, 'sec-fetch-site': 'same-origin' },
    });
    assert.equal(signedIn.status, 201, signedIn.body.toString());
    const setCookie = String(signedIn.headers['set-cookie']);
    const value = new RegExp(`^${COOKIE}=(ferry_u_[^;]+); Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=(\\d+)$`).exec(setCookie);
    assert.ok(value, setCookie);
    assert.ok(Number(value[2]) > 11 * 3600 && Number(value[2]) <= 12 * 3600, 'a 12-hour session');
    cookie = value[1]!;
    csrf = String(signedIn.json.csrfToken);
    assert.match(csrf, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(signedIn.json.email, 'dee@example.com');
  });
  after(async () => {
    await server?.stop();
  });

  it('reads need only the cookie; GET /v1/web/session gives the page its CSRF token back', async () => {
    const tasks = await asBrowser('GET', '/v1/tasks');
    assert.equal(tasks.status, 200);
    const session = await asBrowser('GET', '/v1/web/session');
    assert.equal(session.status, 200);
    assert.equal(session.json.csrfToken, csrf);
    assert.equal(session.json.role, 'admin');
  });

  it('a write without the CSRF token, or with a wrong one, is 403 FERRY_E_CSRF; with it, it is done', async () => {
    const body = { name: 'csrf1', type: 'shell', agent: 'hosted' };
    for (const headers of [{}, { 'x-ferry-csrf': 'not-the-token' }, { 'x-ferry-csrf': `${csrf}x` }] as Record<string, string>[]) {
      const refused = await asBrowser('POST', '/v1/targets', { body, headers });
      assert.equal(refused.status, 403, JSON.stringify(headers));
      assert.equal(refused.json.code, 'FERRY_E_CSRF');
      assert.match(String(refused.json.message), /x-ferry-csrf/);
    }
    const done = await asBrowser('POST', '/v1/targets', { body, headers: { 'x-ferry-csrf': csrf, origin, 'sec-fetch-site': 'same-origin' } });
    assert.equal(done.status, 201, done.body.toString());
    // Deleting is a write too.
    const del = await asBrowser('DELETE', '/v1/targets/csrf1');
    assert.equal(del.json.code, 'FERRY_E_CSRF');
  });

  it('a write from another site is refused (403 FERRY_E_CROSS_SITE), even with the token', async () => {
    const body = { name: 'csrf2', type: 'shell', agent: 'hosted' };
    for (const headers of [
      { 'x-ferry-csrf': csrf, origin: 'https://evil.example' },
      { 'x-ferry-csrf': csrf, origin: 'null' },
      { 'x-ferry-csrf': csrf, 'sec-fetch-site': 'cross-site' },
      { 'x-ferry-csrf': csrf, 'sec-fetch-site': 'same-site' },
    ] as Record<string, string>[]) {
      const refused = await asBrowser('POST', '/v1/targets', { body, headers });
      assert.equal(refused.status, 403, JSON.stringify(headers));
      assert.equal(refused.json.code, 'FERRY_E_CROSS_SITE');
    }
    // Password sign-in from another site's page is refused too (no signing a victim into an attacker's account).
    const crossSignIn = await api(server, 'POST', '/v1/web/session', {
      token: null,
      body: JSON.stringify({ email: 'dee@example.com', password: TEST_PASSWORD }),
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(crossSignIn.json.code, 'FERRY_E_CROSS_SITE');
  });

  it('bearer-token clients are unaffected: no CSRF token, any Origin', async () => {
    const made = await api(server, 'POST', '/v1/targets', {
      body: JSON.stringify({ name: 'bearer1', type: 'shell', agent: 'hosted' }),
      headers: { origin: 'https://elsewhere.example' },
    });
    assert.equal(made.status, 201);
  });

  it('a cookie never authenticates an agent route', async () => {
    for (const path of ['/v1/agent/poll', '/v1/agent/heartbeat']) {
      const refused = await asBrowser('POST', path, { body: { free: 1, running: [], waitSeconds: 0 }, headers: { 'x-ferry-csrf': csrf, origin } });
      assert.equal(refused.status, 401, path);
      assert.equal(refused.json.code, 'FERRY_E_UNAUTHENTICATED');
    }
  });

  it('an expired session is refused (401 FERRY_E_TOKEN_EXPIRED)', async () => {
    const shortLived = await serviceAccount(server, server.adminToken, 'shortlived', 'viewer', 1);
    await new Promise((r) => setTimeout(r, 1500));
    const refused = await asBrowser('GET', '/v1/tasks', { cookie: shortLived });
    assert.equal(refused.status, 401);
    assert.equal(refused.json.code, 'FERRY_E_TOKEN_EXPIRED');
  });

  it('signing out needs the CSRF token, revokes the session, clears the cookie and is audited; the old cookie is then refused', async () => {
    const forged = await asBrowser('DELETE', '/v1/web/session');
    assert.equal(forged.json.code, 'FERRY_E_CSRF');
    const out = await asBrowser('DELETE', '/v1/web/session', { headers: { 'x-ferry-csrf': csrf, origin } });
    assert.equal(out.status, 204);
    assert.match(String(out.headers['set-cookie']), new RegExp(`^${COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0$`));
    const after = await asBrowser('GET', '/v1/tasks');
    assert.equal(after.status, 401);
    assert.equal(after.json.code, 'FERRY_E_TOKEN_REVOKED');
    const audit = await api(server, 'GET', '/v1/audit?limit=50');
    const actions = (audit.json.entries as { action: string; subject: string; details: Record<string, unknown> }[]).filter(
      (e) => e.subject === 'dee@example.com',
    );
    assert.ok(actions.some((e) => e.action === 'user.sign-in' && e.details.kind === 'web' && e.details.method === 'password'));
    assert.ok(actions.some((e) => e.action === 'user.sign-out'));
  });
});
