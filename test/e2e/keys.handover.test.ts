/**
 * Keys follow the agents. A second agent of a target (a second hosted agent, a second
 * self-hosted one) gets the target's key from an agent that holds it, wrapped to its own identity
 * key, with the server only relaying the wrapped copy; until then it is given no task that needs
 * the key. Replacing an agent keeps the secrets working, `rotate-key` re-seals every value inside
 * an agent, and revoking the last agent that holds a key is refused unless forced.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, startFerryServer, waitFor, waitForAgents, type FerryProcess, type ServerHandle } from '../helpers/ferry.js';

const POOL_SECRET = 'pool-secret-value-7f3a9c';
const SITE_SECRET = 'site-secret-value-2b8e1d';
const RUNS = 50;

interface TargetJson {
  keyId: string | null;
  keyHolders: { id: string; name: string; online: boolean }[];
  keyRotationPending: boolean;
}
interface AgentJson {
  id: string;
  name: string;
  holdsKeys: string[];
  revoked: boolean;
}
interface TaskJson {
  id: string;
  status: string;
  exitCode: number | null;
  agent: string | null;
  reason: string | null;
}

/** Every audit entry as `action subject` (the CLI lists the latest 100; runs make many more). */
async function auditActions(server: ServerHandle): Promise<string[]> {
  const r = await api(server, 'GET', '/v1/audit?limit=10000');
  assert.equal(r.status, 200);
  return (r.json.entries as { action: string; subject: string }[]).map((e) => `${e.action} ${e.subject}`);
}

async function target(server: ServerHandle, name: string): Promise<TargetJson> {
  const r = await server.cli(['target', 'show', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as TargetJson;
}

async function agents(server: ServerHandle): Promise<AgentJson[]> {
  const r = await server.cli(['agent', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as AgentJson[];
}

async function holders(server: ServerHandle, name: string, count: number): Promise<TargetJson> {
  return waitFor(
    async () => {
      const t = await target(server, name);
      return t.keyHolders.length >= count ? t : undefined;
    },
    60_000,
    `${count} agents holding the key of ${name}`,
  );
}

/** Creates tasks through the API (no CLI process per task) and waits until every one has ended. */
async function runMany(server: ServerHandle, targetName: string, script: string, count: number): Promise<TaskJson[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: targetName, script: script.replaceAll('$N', String(i)) }) });
    assert.equal(r.status, 201, r.body.toString());
    ids.push(String(r.json.id));
  }
  return waitFor(
    async () => {
      const tasks = await Promise.all(ids.map(async (id) => (await api(server, 'GET', `/v1/tasks/${id}`)).json as unknown as TaskJson));
      return tasks.every((t) => !['queued', 'running'].includes(t.status)) ? tasks : undefined;
    },
    240_000,
    `${count} tasks of ${targetName} to end`,
  );
}

function assertAllSucceeded(tasks: readonly TaskJson[], what: string): void {
  const bad = tasks.filter((t) => t.status !== 'succeeded' || t.exitCode !== 0);
  assert.deepEqual(
    bad.map((t) => `${t.id} ${t.status} ${t.exitCode} ${t.agent} ${t.reason}`),
    [],
    `${what}: every run succeeds`,
  );
}

/** A script that exits 0 only if the secret reached the task intact. */
const uses = (name: string, value: string): string => `test "$${name}" = '${value}' && echo "run $N ok"`;

function filesOf(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith('ferry.db') || f.endsWith('.db') || f.endsWith('-wal'));
}

/** Whether a base64 run is a private key (PKCS#8 or PKCS#1 DER), whole or from any of its first bytes on. */
function parsesAsPrivateKey(run: string): boolean {
  const bytes = Buffer.from(run, 'base64');
  // The run may start inside a neighbouring column's bytes: try each start a DER sequence could have.
  for (let at = 0; at < Math.min(bytes.length, 64); at++) {
    if (bytes[at] !== 0x30) continue;
    for (const type of ['pkcs8', 'pkcs1'] as const) {
      try {
        createPrivateKey({ key: bytes.subarray(at), format: 'der', type });
        return true;
      } catch {
        // not a key: what we want
      }
    }
  }
  return false;
}

describe('keys follow the agents', () => {
  let server: ServerHandle;
  let siteFirst: FerryProcess;
  const siteAgentIds = new Map<string, string>();

  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
    for (const args of [
      ['pool', '--type', 'shell'],
      ['site', '--type', 'shell', '--agent', 'self-hosted'],
      ['plain', '--type', 'shell', '--agent', 'self-hosted'],
    ]) {
      const r = await server.cli(['target', 'create', ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    siteFirst = await server.startAgent(await server.joinToken(['--target', 'site']), { name: 'site-1', concurrency: 3 });
    for (const [t, value] of [
      ['pool', POOL_SECRET],
      ['site', SITE_SECRET],
    ] as const) {
      const r = await server.cli(['secret', 'set', t, 'APP_TOKEN'], { input: value });
      assert.equal(r.code, 0, r.stderr);
    }
    // The second agents join once the targets have keys and secrets: they must get the keys handed over.
    await Promise.all([
      server.startAgent(await server.joinToken(['--hosted']), { name: 'hosted-2', concurrency: 3 }),
      server.startAgent(await server.joinToken(['--target', 'site']), { name: 'site-2', concurrency: 3 }),
    ]);
    for (const a of await agents(server)) siteAgentIds.set(a.name, a.id);
  });
  after(async () => server?.stop());

  it(`two hosted and two self-hosted agents: the newcomer gets the key wrapped, and ${RUNS} runs each all succeed`, async () => {
    const [pool, site] = await Promise.all([holders(server, 'pool', 2), holders(server, 'site', 2)]);
    assert.ok(pool.keyHolders.some((h) => h.name === 'hosted-2'));
    assert.deepEqual(site.keyHolders.map((h) => h.name).sort(), ['site-1', 'site-2']);
    const [poolTasks, siteTasks] = await Promise.all([
      runMany(server, 'pool', `${uses('APP_TOKEN', POOL_SECRET)}; sleep 0.2`, RUNS),
      runMany(server, 'site', `${uses('APP_TOKEN', SITE_SECRET)}; sleep 0.2`, RUNS),
    ]);
    assertAllSucceeded(poolTasks, 'pool');
    assertAllSucceeded(siteTasks, 'site');
    assert.ok(new Set(poolTasks.map((t) => t.agent)).size >= 2, 'both hosted agents ran tasks');
    assert.deepEqual([...new Set(siteTasks.map((t) => t.agent))].sort(), ['site-1', 'site-2'], 'both self-hosted agents ran tasks');

    // The key went through the server wrapped: audited, and no usable private key is stored.
    const actions = await auditActions(server);
    for (const t of ['pool', 'site']) {
      assert.ok(actions.includes(`target.key.handover ${t}`), `hand-over of ${t} audited`);
      assert.ok(actions.includes(`target.key.received ${t}`), `receipt of ${t} audited`);
    }
    // The database's own bytes (and its write-ahead log): every long base64 run in them (sealed
    // values, wrapped copies, public keys) is tried as a private key, and none may be one.
    const files = filesOf(server.dataDir);
    assert.ok(files.includes('ferry.db'));
    let tried = 0;
    for (const file of files) {
      const text = readFileSync(join(server.dataDir, file)).toString('latin1');
      for (const run of text.match(/[A-Za-z0-9+/]{200,}={0,2}/g) ?? []) {
        tried++;
        assert.ok(!parsesAsPrivateKey(run), `${file} holds no private key`);
      }
    }
    assert.ok(tried >= 4, `the check saw the stored key material (${tried} base64 runs)`);
    for (const file of filesOf(server.dataDir)) {
      assert.ok(!readFileSync(join(server.dataDir, file)).includes('PRIVATE KEY'), `${file} has no PEM private key`);
    }
  });

  it('rotate-key makes a new key, re-seals every value inside an agent, and the values keep working', async () => {
    const before = await target(server, 'pool');
    const r = await server.cli(['target', 'rotate-key', 'pool', '--wait', '60s']);
    assert.equal(r.code, 0, r.stderr);
    const rotated = await target(server, 'pool');
    assert.ok(rotated.keyId && rotated.keyId !== before.keyId, 'a new key id');
    assert.equal(rotated.keyRotationPending, false);
    assert.match(r.stdout, new RegExp(`${before.keyId} → ${rotated.keyId}`));
    const secrets = JSON.parse((await server.cli(['secret', 'list', 'pool', '--json'])).stdout) as { kid: string }[];
    assert.deepEqual(
      secrets.map((s) => s.kid),
      [rotated.keyId],
      'the value is sealed with the new key',
    );
    await holders(server, 'pool', 2); // the other hosted agent gets the new key handed over
    const tasks = await runMany(server, 'pool', `${uses('APP_TOKEN', POOL_SECRET)}; sleep 0.2`, 12);
    assertAllSucceeded(tasks, 'pool after rotation');
    assert.ok(new Set(tasks.map((t) => t.agent)).size >= 2, 'both hosted agents open the re-sealed value');
    const actions = await auditActions(server);
    assert.ok(actions.includes('target.key.rotate.request pool'), 'the request audited');
    assert.ok(actions.includes('target.key.rotate pool'), 'the rotation audited');
  });

  it('revoking an agent and starting a new one keeps the secrets working', async () => {
    const first = siteAgentIds.get('site-1');
    assert.ok(first);
    const r = await server.cli(['agent', 'revoke', first]);
    assert.equal(r.code, 0, r.stderr);
    await siteFirst.exited;
    await server.startAgent(await server.joinToken(['--target', 'site']), { name: 'site-3', concurrency: 3 });
    const site = await holders(server, 'site', 2);
    assert.deepEqual(site.keyHolders.map((h) => h.name).sort(), ['site-2', 'site-3']);
    const tasks = await runMany(server, 'site', `${uses('APP_TOKEN', SITE_SECRET)}; sleep 0.2`, 12);
    assertAllSucceeded(tasks, 'site after replacing an agent');
    assert.ok(
      tasks.some((t) => t.agent === 'site-3'),
      'the new agent ran tasks with the secret',
    );
    const list = await agents(server);
    assert.deepEqual(list.find((a) => a.name === 'site-3')?.holdsKeys, ['site']);
    assert.deepEqual(list.find((a) => a.name === 'site-1')?.holdsKeys, [], 'a revoked agent holds nothing');
  });

  it('revoking the last agent that holds a key is refused unless forced; then nobody holds it and tasks that need it wait', async () => {
    const list = await agents(server);
    const second = list.find((a) => a.name === 'site-2' && !a.revoked);
    const third = list.find((a) => a.name === 'site-3' && !a.revoked);
    assert.ok(second && third);
    assert.equal((await server.cli(['agent', 'revoke', second.id])).code, 0, 'another holder is left');
    const refused = await server.cli(['agent', 'revoke', third.id]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /only agent holding the sealing key of site/);
    assert.match(refused.stderr, /FERRY_E_LAST_KEY_HOLDER/);
    const forced = await server.cli(['agent', 'revoke', third.id, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    const show = await server.cli(['target', 'show', 'site']);
    assert.match(show.stdout, /no agent holds the key/);
    assert.deepEqual((await target(server, 'site')).keyHolders, []);

    // A new agent of `site` and `plain` has no way to get site's key: it runs plain's tasks
    // (no secrets, no key needed) and is never handed site's (which need the key).
    await server.startAgent(await server.joinToken(['--target', 'site', '--target', 'plain']), { name: 'keyless', concurrency: 2 });
    const needsKey = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'site', script: 'echo should-not-run' }) });
    assert.equal(needsKey.status, 201);
    assert.equal(needsKey.json.agentsOnline, 0, 'no agent online can run it, though one serves the target');
    const plain = await runMany(server, 'plain', 'echo "plain $N"', 3);
    assertAllSucceeded(plain, 'plain');
    assert.ok(plain.every((t) => t.agent === 'keyless'));
    await new Promise((r) => setTimeout(r, 1500));
    const waiting = (await api(server, 'GET', `/v1/tasks/${String(needsKey.json.id)}`)).json as unknown as TaskJson;
    assert.equal(waiting.status, 'queued', 'a task that needs the key is not given to an agent without it');
    assert.equal(waiting.agent, null);
    assert.equal((await api(server, 'POST', `/v1/tasks/${String(needsKey.json.id)}/cancel`)).status, 200);

    // Starting over: nobody can re-seal, so a plain rotation is refused; discarding the secrets
    // gets a new key from the target's agent, and secrets set again work.
    const refusedRotation = await server.cli(['target', 'rotate-key', 'site', '--wait', '5s']);
    assert.notEqual(refusedRotation.code, 0);
    assert.match(refusedRotation.stderr, /No agent holds the key of target site[\s\S]*--discard-secrets/);
    const lostKey = (await target(server, 'site')).keyId;
    const reset = await server.cli(['target', 'rotate-key', 'site', '--discard-secrets', '--wait', '60s']);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /secrets were deleted: set them again/);
    const fresh = await target(server, 'site');
    assert.ok(fresh.keyId && fresh.keyId !== lostKey);
    assert.deepEqual(
      fresh.keyHolders.map((h) => h.name),
      ['keyless'],
    );
    assert.equal((await server.cli(['secret', 'set', 'site', 'APP_TOKEN'], { input: 'a-new-site-secret-42' })).code, 0);
    assertAllSucceeded(await runMany(server, 'site', uses('APP_TOKEN', 'a-new-site-secret-42'), 3), 'site after starting over');
    assert.ok((await auditActions(server)).includes('target.key.reset site'), 'the reset audited');
  });
});
