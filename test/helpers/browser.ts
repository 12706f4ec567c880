/**
 * Browser tests: playwright-core driving Debian's Chromium (/usr/bin/chromium, installed by
 * `scripts/setup.sh --with-test-deps`), headless, with no network of its own (no updates, sync,
 * QUIC or background fetches) and a fresh profile (`--user-data-dir`, a new temporary folder per
 * launch, made and removed by playwright). One browser per test file: launch it in `before`,
 * open a context per person (`openSession`), close it in `after`.
 *
 * The server's certificate comes from its own private CA, so contexts accept it
 * (`ignoreHTTPSErrors`); the page is still a secure context (cookies with `__Host-`, WebCrypto).
 *
 * Also here:
 * - `signIn`: the sign-in page, as a person would use it;
 * - `screenshots`: the page at 1280×800 and at 390×844 into test-artifacts/screenshots/ (kept
 *   by CI as artifacts; gitignored);
 * - `checkAxe`: runs axe-core in the page and fails on any serious or critical violation;
 * - `watchPage`: records the page's console errors and Content-Security-Policy violations, so a
 *   test can assert there were none.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import axe from 'axe-core';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT, type ServerHandle } from './ferry.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(ROOT, 'test-artifacts', 'screenshots');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** One headless Chromium with a fresh profile (playwright makes a new --user-data-dir for each launch). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}

export interface Session {
  context: BrowserContext;
  page: Page;
  /** Console errors and CSP violations seen so far in this context's pages. */
  problems: string[];
}

/** A new browser context (its own cookies: one person) with one page, on the server's origin. */
export async function openSession(browser: Browser, server: Pick<ServerHandle, 'url'>): Promise<Session> {
  const context = await browser.newContext({ baseURL: server.url, ignoreHTTPSErrors: true, viewport: DESKTOP, locale: 'en-GB', timezoneId: 'UTC' });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const problems: string[] = [];
  watchPage(page, problems);
  return { context, page, problems };
}

/** Collects the page's console errors (CSP violations are reported there) and uncaught exceptions. */
function watchPage(page: Page, problems: string[]): void {
  page.on('console', (msg) => {
    // A 4xx answer is the API saying no (not signed in, wrong password): the page shows it itself.
    if (msg.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text())) {
      problems.push(`console: ${msg.text()}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`exception: ${err.message}`));
}

/** Signs in on the sign-in page with e-mail and password; waits for the tasks page. */
export async function signIn(page: Page, email: string, password: string, opts: { org?: string } = {}): Promise<void> {
  await page.goto('/ui/sign-in');
  await page.getByLabel('E-mail', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  if (opts.org) await page.getByLabel('Organization').fill(opts.org);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL('**/ui/tasks');
  await page.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
}

/** `<name>-1280x800.png` and `<name>-390x844.png` in test-artifacts/screenshots/; the viewport is restored. */
export async function screenshots(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const before = page.viewportSize() ?? DESKTOP;
  for (const size of [DESKTOP, PHONE]) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size.width}x${size.height}.png`), fullPage: false });
  }
  await page.setViewportSize(before);
}

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/**
 * Runs axe-core (WCAG 2.x A and AA rules) on the page as it is now and fails on any serious or
 * critical violation, naming each rule and where. axe is evaluated through the DevTools
 * protocol, which the page's CSP does not govern, so the CSP stays as strict as served.
 */
export async function checkAxe(page: Page, what: string): Promise<void> {
  await page.evaluate(axe.source);
  // A string: it runs in the page, whose globals (window, document, axe) this file's types do not know.
  const violations = await page.evaluate<AxeViolation[]>(`axe
    .run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })
    .then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) })))`);
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    bad.map((v) => `${v.impact} ${v.id}: ${v.help} at ${JSON.stringify(v.nodes.slice(0, 3).map((n) => n.target))}`),
    [],
    `axe-core on ${what}`,
  );
}
