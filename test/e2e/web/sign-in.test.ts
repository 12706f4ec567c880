/**
 * The web UI's front door, in a real Chromium against a real server: `GET /` is the app with a
 * strict Content-Security-Policy; the invitation URL `ferry user invite` prints opens a page
 * with a password field, and after setting a password the person is signed in and the tasks
 * page lists the organization's tasks; signing in with a password and out again. Each page is
 * checked with axe-core and photographed at both sizes, and no page logs an error or a CSP
 * violation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { checkAxe, launchBrowser, openSession, screenshots, signIn } from '../../helpers/browser.js';
import { api, startFerryServer, type ServerHandle } from '../../helpers/ferry.js';
import { TEST_PASSWORD, call, createTarget, createTask, person } from '../../helpers/teams.js';

describe('web UI: the app, invitations, sign-in', { timeout: 240_000 }, () => {
  let server: ServerHandle;
  let browser: Browser;

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('the newcomer path: the server prints the web UI and a one-time link that signs the admin in, which works once and only in a browser', async () => {
    const banner = server.proc.stdout;
    assert.ok(banner.includes(`Web UI: ${server.url}/`), banner);
    const link = /^ {2}(https:\/\/\S+\/ui\/sign-in#link=(ferry_u_\S+))$/m.exec(banner);
    assert.ok(link, banner);
    // Not a token for the API: it only opens a browser session.
    const asBearer = await api(server, 'GET', '/v1/tasks', { token: link[2]! });
    assert.equal(asBearer.status, 401);

    const { page, problems, context } = await openSession(browser, server);
    await page.goto(link[1]!);
    await page.waitForURL('**/ui/tasks');
    await page.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).waitFor();
    assert.equal(new URL(page.url()).hash, '');
    const session = await call(server, server.adminToken, 'GET', '/v1/audit?limit=50', undefined, 200);
    assert.ok(
      (session.json.entries as { action: string; details: Record<string, unknown> }[]).some((e) => e.action === 'user.sign-in' && e.details.method === 'link'),
    );
    await context.close();

    // Used up: a second browser gets the reason and the sign-in form.
    const again = await openSession(browser, server);
    await again.page.goto(link[1]!);
    await again.page.getByRole('alert').filter({ hasText: 'sign-in link is unknown, already used or expired' }).waitFor();
    await again.page.getByLabel('E-mail', { exact: true }).waitFor();
    assert.deepEqual([...problems, ...again.problems], []);
    await again.context.close();
  });

  it('works by keyboard alone: sign in, go to Run, write a script in the editor, leave it and run', { timeout: 90_000 }, async () => {
    await person(server, server.adminToken, 'kay@example.com', 'admin');
    await createTarget(server, server.adminToken, 'kb', 'hosted');
    const { page, problems, context } = await openSession(browser, server);
    /** Presses Tab until the focused element (inside the editor's shadow root too) matches. */
    const tabTo = async (what: string, check: string): Promise<void> => {
      for (let i = 0; i < 25; i++) {
        await page.keyboard.press('Tab');
        const found = await page.evaluate<{ hit: boolean }>(`(() => {
          let el = document.activeElement;
          for (let depth = 0; depth < 5 && el?.shadowRoot?.activeElement && el.shadowRoot.activeElement !== el; depth++) el = el.shadowRoot.activeElement;
          return { hit: Boolean(${check}) };
        })()`);
        if (found.hit) return;
      }
      assert.fail(`Tab never reached ${what}`);
    };
    await page.goto('/ui/sign-in');
    await tabTo('the e-mail field', "el?.id === 'email'");
    await page.keyboard.type('kay@example.com');
    await page.keyboard.press('Tab');
    await page.keyboard.type(TEST_PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForURL('**/ui/tasks');
    await tabTo('the Run link', "el?.textContent === 'Run'");
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Run a task' }).waitFor();
    await tabTo('the editor', "el?.classList.contains('cm-content')");
    await page.keyboard.type('echo typed-by-keyboard');
    // Escape, then Tab: out of the editor (Tab alone indents).
    await page.keyboard.press('Escape');
    await tabTo('the Run button', "el?.textContent === 'Run' && el.tagName === 'BUTTON'");
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/ui\/tasks\/t_/);
    const id = page.url().split('/').at(-1) ?? '';
    const script = await api(server, 'GET', `/v1/tasks/${id}/script`);
    assert.equal(script.body.toString(), 'echo typed-by-keyboard');
    assert.deepEqual(problems, []);
    await context.close();
  });

  it('GET / answers the app as HTML with a strict Content-Security-Policy; assets are precompressed and cached for good', async () => {
    const res = await api(server, 'GET', '/', { token: null });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    const csp = String(res.headers['content-security-policy']);
    for (const directive of ["default-src 'none'", "script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
    }
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    // Styles: files, and the code editor's <style> element by a nonce that is new in every answer.
    const nonce = /style-src 'self' 'nonce-([A-Za-z0-9+/=]{24})'/.exec(csp)?.[1];
    assert.ok(nonce, csp);
    assert.equal(res.headers['cache-control'], 'no-store');
    const html = res.body.toString('utf8');
    assert.ok(html.includes(`<meta name="csp-nonce" content="${nonce}" />`), html);
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    const entry = /<script type="module" crossorigin src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(entry, html);

    const asset = await api(server, 'GET', entry, { token: null, headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers['content-encoding'], 'br');
    assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.match(String(asset.headers['content-type']), /^text\/javascript/);
    const plain = await api(server, 'GET', entry, { token: null });
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.ok(plain.body.length > asset.body.length);

    // Deep links (the Slack webhook's /ui/tasks/ID) are the app too; unknown API paths stay JSON 404s.
    const deep = await api(server, 'GET', '/ui/tasks/t_nope', { token: null });
    assert.equal(deep.status, 200);
    const deepNonce = /'nonce-([^']+)'/.exec(String(deep.headers['content-security-policy']))?.[1] ?? '';
    assert.notEqual(deepNonce, nonce);
    assert.equal(deep.body.toString('utf8'), html.replace(nonce, deepNonce));
    const missing = await api(server, 'GET', '/assets/nope.js', { token: null });
    assert.equal(missing.status, 404);
    const apiMissing = await api(server, 'GET', '/v1/nope', { token: null });
    assert.equal(apiMissing.json.code, 'FERRY_E_NOT_FOUND');
  });

  it("the URL `ferry user invite` prints opens a page with a password field; after setting one the tasks page lists the organization's tasks", async () => {
    await createTarget(server, server.adminToken, 'web1', 'hosted');
    const taskId = await createTask(server, server.adminToken, 'web1');
    const invited = await server.cli(['user', 'invite', 'bea@example.com', '--role', 'admin']);
    assert.equal(invited.code, 0, invited.stderr);
    const url = invited.stdout.trimEnd().split('\n').at(-1) ?? '';
    assert.match(url, /\/ui\/invite#ferry_i_/);

    const { page, problems, context } = await openSession(browser, server);
    await page.goto(url);
    await page.getByText('Set a password for bea@example.com').waitFor();
    const password = page.getByLabel(/^Password \(at least/);
    assert.equal(await password.getAttribute('type'), 'password');
    await checkAxe(page, 'the invitation page');
    await screenshots(page, 'invite');

    await password.fill(TEST_PASSWORD);
    await page.getByLabel('Password again').fill(TEST_PASSWORD);
    await page.getByRole('button', { name: 'Set password and join' }).click();
    await page.waitForURL('**/ui/tasks');
    await page.getByRole('link', { name: taskId }).waitFor();
    assert.equal(new URL(page.url()).hash, '', 'the used secret is gone from the address bar');
    // The session cookie is the HttpOnly, Secure, SameSite=Strict __Host- cookie.
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === '__Host-ferry_session');
    assert.ok(session, JSON.stringify(cookies));
    assert.equal(session.httpOnly, true);
    assert.equal(session.secure, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/');
    assert.equal(await page.evaluate('document.cookie'), '', "the page's script cannot read it");
    assert.deepEqual(problems, []);
    await context.close();
  });

  it('signs in with a password, and out again (the session is revoked, the pages ask to sign in)', async () => {
    await person(server, server.adminToken, 'cy@example.com', 'viewer');
    const { page, problems, context } = await openSession(browser, server);
    await page.goto('/ui/tasks');
    await page.waitForURL('**/ui/sign-in?next=%2Fui%2Ftasks');
    await page.getByRole('heading', { name: 'Sign in to Ferry' }).waitFor();
    await checkAxe(page, 'the sign-in page');
    await screenshots(page, 'sign-in');

    await page.getByLabel('E-mail').fill('cy@example.com');
    await page.getByLabel('Password', { exact: true }).fill('not-the-password-at-all');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong e-mail address or password' }).waitFor();

    await signIn(page, 'cy@example.com', TEST_PASSWORD);
    await page.getByText('cy@example.com').waitFor();
    const audit = await call(server, server.adminToken, 'GET', '/v1/audit?limit=20', undefined, 200);
    const entries = audit.json.entries as { action: string; subject: string; details: Record<string, unknown> }[];
    assert.ok(entries.some((e) => e.action === 'user.sign-in' && e.subject === 'cy@example.com' && e.details.kind === 'web'));

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL('**/ui/sign-in');
    const after = await call(server, server.adminToken, 'GET', '/v1/audit?limit=20', undefined, 200);
    assert.ok((after.json.entries as { action: string; subject: string }[]).some((e) => e.action === 'user.sign-out' && e.subject === 'cy@example.com'));
    await page.goto('/ui/tasks');
    await page.waitForURL('**/ui/sign-in?next=%2Fui%2Ftasks');
    assert.deepEqual(problems, []);
    await context.close();
  });
});
