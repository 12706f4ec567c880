/**
 * Single sign-on in the browser, through the same real OpenID provider the CLI's tests use
 * (test/helpers/oidc-provider.ts): "Sign in with SSO" on the sign-in page goes to the provider,
 * which sends the browser back to Ferry's callback, which sets the session cookie and opens the
 * tasks page. A callback that reaches a browser that did not start the sign-in is refused.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser, openSession } from '../../helpers/browser.js';
import { startFerryServer, tempDir, type ServerHandle } from '../../helpers/ferry.js';
import { CLIENT_SECRET, startProvider, type TestProvider } from '../../helpers/oidc-provider.js';
import { call } from '../../helpers/teams.js';

describe('web UI: single sign-on', { timeout: 120_000 }, () => {
  let server: ServerHandle;
  let idp: TestProvider;
  let browser: Browser;

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false, env: { FERRY_SSO_ALLOW_LOOPBACK_HTTP: 'true' } });
    idp = await startProvider(server.url);
    const secretFile = join(tempDir('sso'), 'client-secret');
    writeFileSync(secretFile, `${CLIENT_SECRET}\n`);
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
      'example.com',
    ]);
    assert.equal(set.code, 0, set.stderr);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await idp?.close();
    await server?.stop();
  });

  it('"Sign in with SSO" goes through the provider and back to the tasks page, signed in (cookie set, audited)', async () => {
    idp.nextUser = 'ada';
    const { page, context, problems } = await openSession(browser, server);
    await page.goto('/ui/sign-in');
    await page.getByRole('button', { name: 'Sign in with SSO' }).click();
    await page.waitForURL(`${server.url}/ui/tasks`);
    await page.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    await page.getByText('ada@example.com').waitFor();
    const cookies = await context.cookies();
    assert.ok(cookies.some((c) => c.name === '__Host-ferry_session' && c.httpOnly && c.sameSite === 'Strict'));
    const audit = await call(server, server.adminToken, 'GET', '/v1/audit?limit=20', undefined, 200);
    const entries = audit.json.entries as { action: string; subject: string; details: Record<string, unknown> }[];
    assert.ok(entries.some((e) => e.action === 'user.sign-in' && e.subject === 'ada@example.com' && e.details.method === 'sso' && e.details.kind === 'web'));
    assert.deepEqual(problems, []);
    await context.close();
  });

  it('a sign-in finished in another browser than the one that started it is refused, and says why', async () => {
    idp.nextUser = 'ada';
    // The victim's browser is sent the attacker's provider URL: it lacks the binding cookie.
    const attacker = await openSession(browser, server);
    await attacker.page.goto('/ui/sign-in');
    const started = await attacker.page.evaluate(
      `fetch('/v1/web/sso/start', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ org: 'default' }) }).then((r) => r.json())`,
    );
    const victim = await openSession(browser, server);
    await victim.page.goto((started as { authorizationUrl: string }).authorizationUrl);
    await victim.page.waitForURL('**/ui/sign-in?**');
    await victim.page.getByRole('alert').filter({ hasText: 'started in another browser' }).waitFor();
    assert.ok(!(await victim.context.cookies()).some((c) => c.name === '__Host-ferry_session'));
    await attacker.context.close();
    await victim.context.close();
  });
});
