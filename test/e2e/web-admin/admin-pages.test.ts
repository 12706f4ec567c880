/**
 * The administration pages in a real browser (Debian's Chromium through playwright-core) against
 * a real server with its embedded agent: an admin signs in with a password and creates a target,
 * sets a secret (the page seals it; every request the page sends is recorded and the value is
 * in none of them) that a task then gets (masked in its output), reads what it did in the audit
 * log and verifies the chain, makes a join token whose install command starts a real agent,
 * revokes that agent past the last-key-holder warning, and runs every Administration section.
 * Each page passes axe-core (no serious or critical violation) and is photographed at 1280×800
 * and 390×844.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { sealSecret } from '@ferry/client';
import { agentInstallCommands, decodeJoinToken } from '@ferry/protocol';
import { checkAxe, launchBrowser, openSession, screenshots, signIn, type Session } from '../../helpers/browser.js';
import { api, startFerryServer, tempDir, waitFor, waitForAgents, type ServerHandle } from '../../helpers/ferry.js';
import { TEST_PASSWORD, call, person } from '../../helpers/teams.js';

const ADMIN = 'ada@example.com';
const SECRET_VALUE = 'Zq8-plaintext-never-leaves-7Kx';

/** A request as the page sent it: where, and everything it carried. */
interface Sent {
  method: string;
  url: string;
  headers: string;
  body: string;
}

/** The forms a value could travel in: as is, URL-encoded, JSON-escaped, base64 at each alignment. */
function forms(value: string): string[] {
  const out = new Set([value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1)]);
  for (const pad of ['', 'x', 'xy']) {
    const b64 = Buffer.from(pad + value).toString('base64');
    out.add(b64.slice(Math.ceil((pad.length * 4) / 3) + 1, -4));
  }
  return [...out];
}

function makeRunbookRepo(): string {
  const work = join(tempDir('web-runbooks'), 'work');
  execFileSync('git', ['init', '--quiet', work]);
  writeFileSync(join(work, 'hello.sh'), '# ---\n# target-type: shell\n# description: says hello\n# ---\necho hello\n');
  execFileSync('git', ['add', 'hello.sh'], { cwd: work });
  execFileSync('git', ['-c', 'user.name=T', '-c', 'user.email=t@example.com', 'commit', '--quiet', '-m', 'hello'], { cwd: work });
  return work;
}

/** Opens a page of the UI by its navigation, as a person would, and waits for its heading. */
async function openPage(page: Page, link: string, heading: string | RegExp): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

async function audit(page: Page, what: string, name: string): Promise<void> {
  await checkAxe(page, what);
  await page.evaluate('window.scrollTo(0, 0)');
  await screenshots(page, name);
}

describe('web UI: targets, secrets, agents, audit and administration', () => {
  let server: ServerHandle;
  let browser: Browser;
  let s: Session;

  before(async () => {
    server = await startFerryServer();
    browser = await launchBrowser();
    await person(server, server.adminToken, ADMIN, 'admin');
    await waitForAgents(server, 1);
    s = await openSession(browser, server);
    await signIn(s.page, ADMIN, TEST_PASSWORD);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('creates a target through the Targets page, with its network, limits and review rule', async () => {
    const { page } = s;
    await openPage(page, 'Targets', 'Targets');
    await page.getByText('No targets yet').waitFor();
    await audit(page, 'the targets page (empty)', 'admin-targets-empty');
    const form = page.getByRole('form', { name: 'New target' });
    await form.getByLabel('Name').fill('web-db');
    await form.getByLabel('Type').selectOption('shell');
    await form.getByLabel('Network').selectOption('public');
    await form.getByLabel('Timeout (seconds)').fill('120');
    await form.getByRole('button', { name: 'Create target' }).click();
    await page.getByRole('status').filter({ hasText: 'Created web-db' }).waitFor();
    await page.getByRole('row', { name: /web-db/ }).waitFor();

    const target = await call(server, server.adminToken, 'GET', '/v1/targets/web-db', undefined, 200);
    assert.equal(target.json.type, 'shell');
    assert.equal(target.json.network, 'public');
    assert.equal((target.json.limits as { timeoutSeconds: number }).timeoutSeconds, 120);
    await audit(page, 'the targets page', 'admin-targets');

    // A bad name: the server's message and code are shown.
    await form.getByLabel('Name').fill('Bad Name');
    await form.getByRole('button', { name: 'Create target' }).click();
    await form.getByRole('alert').filter({ hasText: 'FERRY_E_' }).waitFor();

    await page
      .getByRole('row', { name: /web-db/ })
      .getByRole('link', { name: 'web-db', exact: true })
      .click();
    await page.getByRole('heading', { level: 1, name: 'Target web-db' }).waitFor();
    const edit = page.getByRole('form', { name: 'Settings' });
    await edit.getByLabel('Rule').selectOption('any');
    await edit.getByLabel(/Approvals needed/).fill('1');
    await edit.getByLabel(/Plain settings/).fill('REGION=eu-west-1');
    await edit.getByRole('button', { name: 'Save settings' }).click();
    await edit.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
    const updated = await call(server, server.adminToken, 'GET', '/v1/targets/web-db', undefined, 200);
    assert.deepEqual((updated.json.review as { rule: string }).rule, 'any');
    assert.deepEqual(updated.json.settings, { REGION: 'eu-west-1' });
    await audit(page, 'a target page', 'admin-target');
    // Back to no review, so the task below runs at once.
    await edit.getByLabel('Rule').selectOption('none');
    await edit.getByRole('button', { name: 'Save settings' }).click();
    await waitFor(async () => {
      const t = await call(server, server.adminToken, 'GET', '/v1/targets/web-db', undefined, 200);
      return (t.json.review as { rule: string }).rule === 'none';
    });
  });

  it('seals a secret in the page: its value is in no request the page sends, and a task gets it, masked in the output', async () => {
    const { page, context } = s;
    const sent: Sent[] = [];
    const record = (r: import('playwright-core').Request): void => {
      sent.push({ method: r.method(), url: r.url(), headers: JSON.stringify(r.headers()), body: r.postData() ?? '' });
    };
    context.on('request', record);
    try {
      await page.getByRole('link', { name: 'Secrets of web-db' }).click();
      await page.getByRole('heading', { level: 1, name: 'Secrets of web-db' }).waitFor();
      await page.getByText('No secrets on web-db yet').waitFor();
      const form = page.getByRole('form', { name: 'Set a secret' });
      await form.getByLabel('Name').fill('API_TOKEN');
      await form.getByLabel('Value').fill(SECRET_VALUE);
      await form.getByRole('button', { name: 'Seal and save' }).click();
      // A new target's key comes from its first agent's poll: the page waits for it, as the CLI does.
      await form
        .getByRole('status')
        .filter({ hasText: 'Set API_TOKEN' })
        .waitFor({ timeout: 30_000 })
        .catch(async (err: unknown) => {
          throw new Error(`${String(err)}\npage: ${await page.locator('main').innerText()}`);
        });
      await page.getByRole('row', { name: /API_TOKEN/ }).waitFor();
      assert.equal(await form.getByLabel('Value').inputValue(), '', 'the field is cleared');
    } finally {
      context.off('request', record);
    }

    const put = sent.filter((r) => r.method === 'PUT' && r.url.endsWith('/v1/targets/web-db/secrets/API_TOKEN'));
    assert.equal(put.length, 1, `the page sent the secret once: ${JSON.stringify(sent.map((r) => `${r.method} ${r.url}`))}`);
    const body = JSON.parse(put[0]!.body) as { sealed: { alg: string; ct: string } };
    assert.match(body.sealed.alg, /RSA-OAEP/, 'a sealed envelope');
    for (const r of sent) {
      for (const form of forms(SECRET_VALUE)) {
        assert.ok(!r.url.includes(form) && !r.headers.includes(form) && !r.body.includes(form), `${r.method} ${r.url} carries the value (${form})`);
      }
    }
    // The page lists names only: no value, no length.
    assert.ok(!(await page.content()).includes(SECRET_VALUE));

    const run = await server.cli(['run', 'web-db', '-c', `[ "$API_TOKEN" = '${SECRET_VALUE}' ] && echo "token matches: $API_TOKEN"`]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /token matches: \*\*\*/);
    assert.ok(!run.stdout.includes(SECRET_VALUE), 'masked in the output');
    await audit(page, 'the secrets page', 'admin-secrets');
  });

  it('shows the audit entries of what was done, filters them, and verifies the chain', async () => {
    const { page } = s;
    await openPage(page, 'Audit', 'Audit');
    const filters = page.getByRole('form', { name: 'Filter the audit entries' });
    await filters.getByLabel('Target').fill('web-db');
    await filters.getByRole('button', { name: 'Filter', exact: true }).click();
    for (const action of ['target.create', 'target.update', 'secret.set', 'task.create', 'task.finish']) {
      await page.getByRole('row').filter({ hasText: action }).first().waitFor();
    }
    const secretRow = page.getByRole('row').filter({ hasText: 'secret.set' });
    assert.match(await secretRow.innerText(), /ada@example\.com[\s\S]*web-db\/API_TOKEN/);
    assert.equal(await page.getByRole('row').filter({ hasText: 'agent.register' }).count(), 0, 'entries of other things are filtered out');

    await filters.getByLabel('Action starts with').fill('secret.');
    await filters.getByRole('button', { name: 'Filter', exact: true }).click();
    await waitFor(async () => (await page.getByRole('row').filter({ hasText: 'target.create' }).count()) === 0, 10_000, 'the action filter');
    assert.equal(await page.getByRole('row').filter({ hasText: 'secret.set' }).count(), 1);

    await page.getByRole('button', { name: 'Verify the chain' }).click();
    const verdict = page.getByRole('status').filter({ hasText: 'Audit log intact' });
    await verdict.waitFor();
    const entries = Number(/(\d+) entries/.exec(await verdict.innerText())?.[1]);
    assert.ok(entries >= 5, `the chain's entries are counted (${entries})`);
    await audit(page, 'the audit page', 'admin-audit');
  });

  it('makes a join token with a ready-to-copy install command that starts a real agent, then revokes it past the last-key-holder warning', async () => {
    const { page } = s;
    await call(server, server.adminToken, 'POST', '/v1/targets', { name: 'edge', type: 'shell', agent: 'self-hosted' }, 201);
    await openPage(page, 'Agents', 'Agents');
    // The embedded agent is the shared pool's: an organization's admin does not revoke it.
    const embedded = page.getByRole('row', { name: /shared hosted pool/ });
    await embedded.getByText('online').waitFor();
    assert.equal(await embedded.getByRole('button').count(), 0);
    const form = page.getByRole('form', { name: 'Add an agent' });
    await form.getByLabel('edge').check();
    await form.getByRole('button', { name: 'Create join token' }).click();
    const tokenField = form.getByLabel('Join token', { exact: true });
    await tokenField.waitFor();
    const token = await tokenField.inputValue();
    const payload = decodeJoinToken(token);
    assert.ok(payload, 'a join token');
    assert.equal(payload.url, server.url);
    assert.equal(payload.fp, server.fingerprint);
    const start = await form.getByLabel('Start the agent on its host', { exact: true }).inputValue();
    assert.equal(start, agentInstallCommands(token).start);
    assert.equal(start, `ferry agent start --join-token ${token} --data-dir /var/lib/ferry-agent`);
    assert.equal(await form.getByLabel('Or install it as a systemd service', { exact: true }).inputValue(), `sudo ferry agent install --join-token ${token}`);
    await audit(page, 'the agents page with a new join token', 'admin-agents');

    // The command's token works: an agent started with it joins and serves edge.
    await server.startAgent(token, { name: 'edge-agent', executor: 'process' });
    const key = await waitFor(async () => {
      const r = await api(server, 'GET', '/v1/targets/edge/key');
      return r.status === 200 ? (r.json as { publicKeyPem: string; orgId: string; targetId: string }) : undefined;
    });
    const sealed = await sealSecret(key.publicKeyPem, { orgId: key.orgId, targetId: key.targetId, name: 'EDGE_PASS' }, 'edge-secret-value');
    await call(server, server.adminToken, 'PUT', '/v1/targets/edge/secrets/EDGE_PASS', { sealed }, 200);
    await page.reload();
    const row = page.getByRole('row', { name: /edge-agent/ });
    await row.getByText('online').waitFor();
    assert.match(await row.innerText(), /edge/);

    // It alone holds edge's key: the server refuses, the page says why and what forcing means.
    // By keyboard: the confirmation step takes the focus, so Enter confirms.
    await row.getByRole('button', { name: 'Revoke edge-agent' }).focus();
    await page.keyboard.press('Enter');
    await waitFor(async () => (await page.evaluate('document.activeElement?.textContent')) === 'Revoke agent', 5000, 'focus on the confirmation');
    await page.keyboard.press('Enter');
    const warning = row.locator('.admin-warning');
    await warning.getByText('FERRY_E_LAST_KEY_HOLDER').waitFor();
    assert.match(await warning.innerText(), /only agent holding the key of edge[\s\S]*--force[\s\S]*rotate-key/);
    await warning.getByRole('button', { name: 'Revoke anyway and lose the key' }).click();
    await warning.getByRole('button', { name: 'Revoke and lose the key' }).click();
    await page
      .getByRole('row', { name: /edge-agent/ })
      .getByText('revoked')
      .waitFor();
    const agents = (await call(server, server.adminToken, 'GET', '/v1/agents', undefined, 200)).json.agents as { name: string; revoked: boolean }[];
    assert.equal(agents.find((a) => a.name === 'edge-agent')?.revoked, true);
  });

  it('runs the Administration sections: people, groups, tokens, webhooks and runbook sources', async () => {
    const { page } = s;
    await person(server, server.adminToken, 'cy@example.com', 'viewer');
    await openPage(page, 'Admin', 'Administration');

    // People: invite (the URL is shown), change a role, remove.
    const invite = page.getByRole('form', { name: 'Invite someone' });
    await invite.getByLabel('E-mail').fill('bo@example.com');
    await invite.getByLabel('Role').selectOption('operator');
    await invite.getByRole('button', { name: 'Invite' }).click();
    const url = await invite.getByLabel('Invitation URL', { exact: true }).inputValue();
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/.*#.+/);
    await page.getByText('bo@example.com as operator').waitFor();
    await page.getByLabel('Role of cy@example.com').selectOption('operator');
    await waitFor(async () => {
      const users = (await call(server, server.adminToken, 'GET', '/v1/users', undefined, 200)).json.users as { email: string; role: string }[];
      return users.find((u) => u.email === 'cy@example.com')?.role === 'operator';
    });
    await audit(page, 'administration: people', 'admin-people');
    await page.getByRole('button', { name: 'Remove cy@example.com' }).click();
    await page.getByRole('button', { name: 'Remove', exact: true }).click();
    await waitFor(async () => (await page.getByRole('row', { name: /cy@example\.com/ }).count()) === 0, 10_000, 'cy removed');

    // Groups: create, add and remove a member.
    await page.getByRole('navigation', { name: 'Administration sections' }).getByRole('link', { name: 'Groups' }).click();
    await page.getByLabel('Group name').fill('ops');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByLabel('Add a member to ops (e-mail or service account)').fill(ADMIN);
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('button', { name: `Remove ${ADMIN} from ops` }).waitFor();
    await audit(page, 'administration: groups', 'admin-groups');
    await page.getByRole('button', { name: `Remove ${ADMIN} from ops` }).click();
    await page.getByRole('button', { name: 'Remove member' }).click();
    await page.getByRole('article', { name: 'ops' }).getByText('No members.').waitFor();

    // Tokens: made and shown once; it works, and after revoking it does not.
    await page.getByRole('navigation', { name: 'Administration sections' }).getByRole('link', { name: 'Tokens' }).click();
    const tokenForm = page.getByRole('form', { name: 'New token' });
    await tokenForm.getByLabel('Name').fill('ci-bot');
    await tokenForm.getByLabel('Role', { exact: true }).selectOption('viewer');
    await tokenForm.getByRole('button', { name: 'Create token' }).click();
    const secret = await tokenForm.getByLabel('Token ci-bot', { exact: true }).inputValue();
    assert.match(secret, /^ferry_u_/);
    assert.equal((await api(server, 'GET', '/v1/targets', { token: secret })).status, 200);
    await audit(page, 'administration: tokens', 'admin-tokens');
    await page.getByRole('button', { name: 'Revoke ci-bot' }).click();
    await page.getByRole('button', { name: 'Revoke token' }).click();
    await waitFor(async () => (await api(server, 'GET', '/v1/targets', { token: secret })).status === 401, 10_000, 'the token refused');

    // Webhooks: create (secret shown once), deliveries, delete.
    await page.getByRole('navigation', { name: 'Administration sections' }).getByRole('link', { name: 'Webhooks' }).click();
    const hookForm = page.getByRole('form', { name: 'New webhook' });
    await hookForm.getByLabel('URL (https://)').fill('https://127.0.0.1:9/hook');
    await hookForm.getByRole('button', { name: 'Create webhook' }).click();
    assert.ok((await hookForm.getByLabel('Signing secret', { exact: true }).inputValue()).length > 10);
    await page.getByRole('button', { name: 'Deliveries' }).click();
    await page.getByText('Nothing delivered yet.').waitFor();
    await audit(page, 'administration: webhooks', 'admin-webhooks');
    await page.getByRole('button', { name: 'Delete webhook https://127.0.0.1:9/hook' }).click();
    await page.getByRole('button', { name: 'Delete webhook', exact: true }).click();
    await page.getByText('No webhooks.').waitFor();

    // Runbook sources: add (synced), list, sync again.
    await page.getByRole('navigation', { name: 'Administration sections' }).getByRole('link', { name: 'Runbook sources' }).click();
    const sourceForm = page.getByRole('form', { name: 'Add a runbook source' });
    await sourceForm.getByLabel('Name').fill('ops-book');
    await sourceForm.getByLabel('Git repository').fill(makeRunbookRepo());
    await sourceForm.getByRole('button', { name: 'Add and sync' }).click();
    await page.getByRole('row', { name: /ops-book/ }).waitFor();
    await page.getByRole('button', { name: 'Sync ops-book' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: /ops-book synced at commit [0-9a-f]{12}: 1 runbooks/ })
      .waitFor();
    await audit(page, 'administration: runbook sources', 'admin-runbook-sources');

    assert.deepEqual(s.problems, [], 'no console errors or CSP violations');
  });

  it('pages back through the audit log, 50 entries at a time', async () => {
    const { page } = s;
    for (let i = 0; i < 55; i++) await call(server, server.adminToken, 'POST', '/v1/groups', { name: `paged-${i}` }, 201);
    await openPage(page, 'Audit', 'Audit');
    const filters = page.getByRole('form', { name: 'Filter the audit entries' });
    await filters.getByLabel('Action starts with').fill('group.create');
    await filters.getByRole('button', { name: 'Filter', exact: true }).click();
    const rows = page.locator('table.admin-audit tbody tr');
    await waitFor(async () => (await rows.count()) === 50 && (await rows.first().innerText()).includes('paged-54'), 10_000, 'the first page');
    const pager = page.getByRole('navigation', { name: 'Audit pages' });
    assert.equal(await pager.getByRole('button', { name: 'Newer' }).isDisabled(), true);
    await pager.getByRole('button', { name: 'Older' }).click();
    // 55 groups here and "ops" from the Administration test: 6 older ones, the oldest "ops".
    await waitFor(async () => (await rows.count()) === 6, 10_000, 'the second page');
    assert.match(await rows.last().innerText(), /\bops\b/);
    assert.equal(await pager.getByRole('button', { name: 'Older' }).isDisabled(), true, 'no third page');
    await pager.getByRole('button', { name: 'Newer' }).click();
    await waitFor(async () => (await rows.count()) === 50, 10_000, 'back to the first page');
  });

  it('offers a viewer no admin forms, and says who can', async () => {
    await person(server, server.adminToken, 'vi@example.com', 'viewer');
    const viewer = await openSession(browser, server);
    try {
      await signIn(viewer.page, 'vi@example.com', TEST_PASSWORD);
      await openPage(viewer.page, 'Targets', 'Targets');
      await viewer.page.getByText('Creating targets is for admins of the organization').waitFor();
      assert.equal(await viewer.page.getByRole('form', { name: 'New target' }).count(), 0);
      await openPage(viewer.page, 'Audit', 'Audit');
      await viewer.page.getByText('The audit trail is for admins of the organization').waitFor();
      await openPage(viewer.page, 'Admin', 'Administration');
      // Tokens are everyone's own business; the rest is the admins'.
      await viewer.page.getByRole('form', { name: 'New token' }).waitFor();
      assert.equal(await viewer.page.getByRole('link', { name: 'People' }).count(), 0);
      await checkAxe(viewer.page, "a viewer's administration page");
      assert.deepEqual(viewer.problems, []);
    } finally {
      await viewer.context.close();
    }
  });
});
