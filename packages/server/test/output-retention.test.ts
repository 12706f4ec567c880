/**
 * Output retention and the per-organization output quota, through TaskService and
 * OutputRetention on both stores (helpers/stores.ts): a pass removes the output of tasks that finished
 * before the retention (rows and status stay, usage shrinks, one audit entry per organization),
 * in bounded batches; the quota refuses new tasks with a clear error once reached, while a task
 * already running keeps every byte of its output.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, before, describe, test } from 'node:test';
import pino from 'pino';
import { Streams } from '@ferry/protocol';
import type { UserPrincipal } from '../src/auth.js';
import { loadServerConfig } from '../src/config.js';
import { DispatchHub } from '../src/dispatch.js';
import type { AgentRow, AuditInput, Store } from '../src/store/types.js';
import { OutputRetention } from '../src/tasks/output-retention.js';
import { TaskService } from '../src/tasks/task-service.js';
import { registerTestAgent, testAdmin } from './helpers/store-fixtures.js';
import { forEachStore, type TestBackend } from './helpers/stores.js';

const RETENTION_S = 3600;
const live = (): AbortSignal => new AbortController().signal;

interface World {
  dir: string;
  store: Store;
  hub: DispatchHub;
  tasks: TaskService;
  retention: OutputRetention;
  user: UserPrincipal;
  agent: AgentRow;
}
let w: World | undefined;

async function makeWorld(flags: Record<string, unknown> = {}): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-retention-'));
  const store = await backend.open();
  const hub = new DispatchHub();
  const config = loadServerConfig({ dataDir: dir, outputRetention: `${RETENTION_S}s`, ...flags }, {});
  const log = pino({ level: 'silent' });
  const audit = async (entry: Omit<AuditInput, 'at'>): Promise<void> => {
    await store.appendAudit({ ...entry, at: Date.now() });
  };
  const tasks = new TaskService({ store, hub, config, log, audit });
  const retention = new OutputRetention({ store, retentionSeconds: config.outputRetention, log, audit });
  const org = await store.ensureOrg('default', Date.now());
  const user: UserPrincipal = testAdmin(org.id);
  await store.createTarget({
    id: 'g_box',
    orgId: org.id,
    name: 'box',
    type: 'shell',
    agentMode: 'hosted',
    createdAt: Date.now(),
    network: 'none',
    limits: {},
    redact: 'none',
    publicKeyPem: null,
    keyId: null,
    settings: {},
    review: null,
  });
  return { dir, store, hub, tasks, retention, user, agent: await registerTestAgent(store, 'one') };
}

/** A task that runs, writes `text` and, unless `finish` is false, succeeds. Returns its id. */
async function runTask(world: World, text: string, finish = true): Promise<string> {
  const { task } = await world.tasks.create(world.user, { target: 'box', script: 'echo' });
  assert.equal((await world.tasks.claim(world.agent, live()))?.id, task.id);
  await world.tasks.confirmStart(world.agent, task.id);
  const data = Buffer.from(text);
  await world.tasks.appendOutput(world.agent, task.id, 0, [{ stream: Streams.stdout, time: Date.now(), data }]);
  if (finish) {
    await world.tasks.finish(world.agent, task.id, {
      status: 'succeeded',
      exitCode: 0,
      signal: null,
      reason: null,
      outputBytes: data.length,
      outputSha256: createHash('sha256').update(data).digest('hex'),
    });
  }
  return task.id;
}

const storedText = async (world: World, id: string): Promise<string> =>
  Buffer.concat((await world.store.readOutput(id, 0, 1 << 20)).map((f) => f.data)).toString();

afterEach(async () => {
  if (!w) return;
  w.hub.close();
  await w.store.close();
  rmSync(w.dir, { recursive: true, force: true });
  w = undefined;
});

let backend: TestBackend;

forEachStore('output retention and quota', (b) => {
  before(() => {
    backend = b;
  });

  describe('output retention', () => {
    test('a pass removes the output of tasks finished before the retention, keeps the rest, counts usage and audits', async () => {
      w = await makeWorld();
      const old = await runTask(w, 'old output\n');
      await new Promise((r) => setTimeout(r, 5));
      const recent = await runTask(w, 'recent output\n');
      const recentRow = await w.store.getTask(w.user.orgId, recent);
      assert.equal(await w.store.orgOutputBytes(w.user.orgId), 'old output\n'.length + 'recent output\n'.length);

      // "Now" is when the recent task turns exactly the retention old, less a millisecond.
      const now = (recentRow?.finishedAt ?? 0) + RETENTION_S * 1000 - 1;
      assert.equal(await w.retention.sweep(now), 1);

      assert.equal(await storedText(w, old), '', 'the old output is gone');
      assert.equal(await storedText(w, recent), 'recent output\n', 'the recent output stays');
      const oldRow = await w.store.getTask(w.user.orgId, old);
      assert.deepEqual([oldRow?.status, oldRow?.exitCode, oldRow?.outputExpiredAt], ['succeeded', 0, now], 'the task row stays, marked');
      assert.equal(await w.store.orgOutputBytes(w.user.orgId), 'recent output\n'.length);
      const entry = (await w.store.listAudit(w.user.orgId, 10)).find((e) => e.action === 'output.expire');
      assert.deepEqual(entry?.details, { tasks: 1, bytes: 'old output\n'.length, retention: '1h' });
      assert.equal(await w.retention.sweep(now), 0, 'a second pass finds nothing');
    });

    test('a running task is never touched, however old; many due tasks are removed in one pass, batch by batch', async () => {
      w = await makeWorld();
      const running = await runTask(w, 'still running\n', false);
      for (let i = 0; i < 450; i++) await runTask(w, `task ${i}\n`);
      const removed = await w.retention.sweep(Date.now() + RETENTION_S * 1000 + 1);
      assert.equal(removed, 450);
      assert.equal(await storedText(w, running), 'still running\n');
      assert.equal(await w.store.orgOutputBytes(w.user.orgId), 'still running\n'.length);
      const entries = (await w.store.listAudit(w.user.orgId, 1000)).filter((e) => e.action === 'output.expire');
      assert.equal(entries.length, 1, 'one audit entry per organization per pass, not per batch');
      assert.equal(entries[0]?.details.tasks, 450);
    });

    test('retention 0 keeps output for good: start() runs no pass', async () => {
      w = await makeWorld({ outputRetention: '0' });
      const id = await runTask(w, 'kept\n');
      const retention = new OutputRetention({ store: w.store, retentionSeconds: 0, log: pino({ level: 'silent' }), audit: async () => {} });
      retention.start();
      await retention.stop();
      assert.equal(await storedText(w, id), 'kept\n');
    });

    test('the settings read durations and sizes, and refuse nonsense with a usable message', () => {
      const read = (flags: Record<string, unknown>) => loadServerConfig({ dataDir: '/tmp/x', ...flags }, {});
      assert.equal(read({}).outputRetention, 90 * 86400);
      assert.equal(read({ outputRetention: '30d' }).outputRetention, 30 * 86400);
      assert.equal(read({ outputRetention: 'forever' }).outputRetention, 0);
      assert.equal(read({}).orgOutputQuota, 10 * 1024 ** 3);
      assert.equal(read({ orgOutputQuota: '500MB' }).orgOutputQuota, 500 * 1000 ** 2);
      assert.equal(read({ orgOutputQuota: 'off' }).orgOutputQuota, 0);
      assert.throws(() => read({ outputRetention: 'a while' }), /duration such as 90d/);
      assert.throws(() => read({ orgOutputQuota: 'lots' }), /size such as 10GiB/);
    });
  });

  describe('output quota', () => {
    test('reached: new tasks are refused with a clear error; a running task keeps all its output; retention frees room', async () => {
      w = await makeWorld({ orgOutputQuota: '64' });
      const first = await runTask(w, `${'x'.repeat(40)}\n`);
      const running = await runTask(w, `${'y'.repeat(40)}\n`, false); // admitted below the quota, writes past it
      assert.equal(await storedText(w, running), `${'y'.repeat(40)}\n`, 'nothing of a running task is dropped');
      await assert.rejects(w.tasks.create(w.user, { target: 'box', script: 'echo' }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FERRY_E_OUTPUT_QUOTA_REACHED');
        assert.match(err.message, /stores 82 bytes of task output, its quota of 64 bytes/);
        assert.match(err.message, /older than 1h is removed automatically/);
        return true;
      });
      const firstRow = await w.store.getTask(w.user.orgId, first);
      await w.retention.sweep((firstRow?.finishedAt ?? 0) + RETENTION_S * 1000 + 1);
      assert.equal(await w.store.orgOutputBytes(w.user.orgId), 41);
      await w.tasks.create(w.user, { target: 'box', script: 'echo' });
    });
  });
});
