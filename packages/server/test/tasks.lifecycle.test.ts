/**
 * The task lifecycle through TaskService, on both stores (helpers/stores.ts) and a dispatch hub: every
 * way a task ends leaves the redactor's held-back bytes stored (redacted), wakes output readers
 * and writes its audit entry; a lapsed lease requeues a task that never started and loses one
 * that did; a claim whose answer cannot be delivered is given back.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, before, beforeEach, describe, test } from 'node:test';
import pino from 'pino';
import { Streams, type OutputFrame } from '@ferry/protocol';
import type { UserPrincipal } from '../src/auth.js';
import { loadServerConfig } from '../src/config.js';
import { DispatchHub } from '../src/dispatch.js';
import type { AgentRow, AuditInput, Store, TargetRow } from '../src/store/types.js';
import { TaskService } from '../src/tasks/task-service.js';
import { registerTestAgent, testAdmin, testTarget } from './helpers/store-fixtures.js';
import { forEachStore, type TestBackend } from './helpers/stores.js';

const LEASE_MS = 2000;
const SECRET = `ghp_${'a1B2c3D4e5'.repeat(4)}`;
const READ_ALL = { offset: 0, waitSeconds: 0, maxBytes: 1 << 20 };

interface World {
  dir: string;
  store: Store;
  hub: DispatchHub;
  tasks: TaskService;
  user: UserPrincipal;
  target: TargetRow;
  agent: AgentRow;
}
let w: World;

function joinAgent(store: Store, name: string): Promise<AgentRow> {
  return registerTestAgent(store, name);
}

async function makeWorld(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-lifecycle-'));
  const store = await backend.open();
  const hub = new DispatchHub();
  const config = loadServerConfig({ dataDir: dir, leaseSeconds: LEASE_MS / 1000 }, {});
  const audit = async (entry: Omit<AuditInput, 'at'>): Promise<void> => {
    await store.appendAudit({ ...entry, at: Date.now() });
  };
  const tasks = new TaskService({ store, hub, config, log: pino({ level: 'silent' }), audit });
  const org = await store.ensureOrg('default', Date.now());
  const user: UserPrincipal = testAdmin(org.id);
  const target = testTarget({ orgId: org.id, name: 'vault' });

  assert.notEqual(await store.createTarget(target), 'exists');
  return { dir, store, hub, tasks, user, target, agent: await joinAgent(store, 'one') };
}

const frame = (text: string): OutputFrame => ({ stream: Streams.stdout, time: Date.now(), data: Buffer.from(text) });
const text = (frames: readonly OutputFrame[]): string => Buffer.concat(frames.map((f) => f.data)).toString();
const live = (): AbortSignal => new AbortController().signal;
const RAW = Buffer.from(`line one\ntoken ${SECRET}`);
/** The agent's final status for the output runningWithHeldSecret sent. */
const report = (status: 'succeeded' | 'cancelled') => ({
  status,
  exitCode: status === 'succeeded' ? 0 : null,
  signal: null,
  reason: null,
  outputBytes: RAW.length,
  outputSha256: createHash('sha256').update(RAW).digest('hex'),
});

/** A task claimed and started by the agent, with one line of output and a secret the redactor still holds (no newline yet). */
async function runningWithHeldSecret(): Promise<string> {
  const { task } = await w.tasks.create(w.user, { target: 'vault', script: 'echo' });
  assert.equal((await w.tasks.claim(w.agent, live()))?.id, task.id);
  await w.tasks.confirmStart(w.agent, task.id);
  await w.tasks.appendOutput(w.agent, task.id, 0, [frame('line one\n'), frame(`token ${SECRET}`)]);
  assert.equal(text(await w.store.readOutput(task.id, 0, 1 << 20)), 'line one\ntoken ', 'the token that could still grow is held back');
  return task.id;
}

/** Resolves when a reader starts waiting on the hub (the store's reads before it may take several turns). */
function readerWaits(hub: DispatchHub): Promise<void> {
  return new Promise((resolve) => {
    const wait = hub.waitForOutput.bind(hub);
    hub.waitForOutput = (...args) => {
      resolve();
      return wait(...args);
    };
  });
}

async function auditActions(): Promise<string[]> {
  return (await w.store.listAudit(w.user.orgId, 100)).map((e) => e.action).reverse();
}

let backend: TestBackend;

forEachStore('lifecycle', (b) => {
  before(() => {
    backend = b;
  });

  describe('task lifecycle', () => {
    beforeEach(async () => {
      w = await makeWorld();
    });
    afterEach(async () => {
      w.hub.close();
      await w.store.close();
      rmSync(w.dir, { recursive: true, force: true });
    });

    test('finish: the held-back bytes are stored redacted, readers see the whole output, audited', async () => {
      const id = await runningWithHeldSecret();
      await w.tasks.finish(w.agent, id, report('succeeded'));
      const page = await w.tasks.readOutput(w.user, id, READ_ALL, live());
      assert.equal(text(page.frames), 'line one\ntoken [REDACTED:github-token]');
      assert.deepEqual([page.taskStatus, page.complete], ['succeeded', true]);
      assert.deepEqual(await auditActions(), ['task.create', 'task.finish']);
    });

    test('finish: a reader waiting for more output hears the end at once, with the rest of the output', { timeout: 10_000 }, async () => {
      const id = await runningWithHeldSecret();
      const stored = (await w.store.getTask(w.user.orgId, id))?.storedBytes ?? -1;
      const waiting = readerWaits(w.hub);
      const reader = w.tasks.readOutput(w.user, id, { ...READ_ALL, offset: stored, waitSeconds: 30 }, live());
      await waiting;
      await w.tasks.finish(w.agent, id, report('succeeded'));
      const page = await Promise.race([reader, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000).unref())]);
      assert.ok(page, 'the reader was answered at the end, not after its 30 s');
      assert.deepEqual([text(page.frames), page.taskStatus, page.complete], ['[REDACTED:github-token]', 'succeeded', true]);
    });

    test('a start is answered before output readers are woken, and they are woken all the same', async () => {
      const { task } = await w.tasks.create(w.user, { target: 'vault', script: 'echo' });
      assert.equal((await w.tasks.claim(w.agent, live()))?.id, task.id);
      const woken: boolean[] = [];
      let confirmed = false;
      const notify = w.hub.notifyOutput.bind(w.hub);
      w.hub.notifyOutput = (taskId) => {
        woken.push(confirmed);
        notify(taskId);
      };
      await w.tasks.confirmStart(w.agent, task.id);
      confirmed = true;
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(woken, [true], 'readers woken once, after the start was answered');
      assert.notEqual((await w.store.getTask(w.user.orgId, task.id))?.startedAt, null);
    });

    test('lease lapsed after the start: lost, held-back bytes stored redacted, a waiting reader woken, audited', { timeout: 10_000 }, async () => {
      const id = await runningWithHeldSecret();
      const stored = (await w.store.getTask(w.user.orgId, id))?.storedBytes ?? -1;
      const waiting = readerWaits(w.hub);
      const reader = w.tasks.readOutput(w.user, id, { ...READ_ALL, offset: stored, waitSeconds: 30 }, live());
      await waiting;
      await w.tasks.sweepLeases(Date.now() + LEASE_MS + 1);
      const page = await reader;
      assert.equal(text(page.frames), '[REDACTED:github-token]');
      assert.deepEqual([page.taskStatus, page.complete], ['lost', true]);
      assert.deepEqual(await auditActions(), ['task.create', 'task.lost']);
      await assert.rejects(w.tasks.finish(w.agent, id, report('succeeded')), { code: 'FERRY_E_LEASE_LOST' });
    });

    test('lease lapsed before the start: queued again, and another agent can claim it', async () => {
      const { task } = await w.tasks.create(w.user, { target: 'vault', script: 'echo' });
      assert.ok(await w.tasks.claim(w.agent, live()));
      await w.tasks.sweepLeases(Date.now() + LEASE_MS + 1);
      assert.equal((await w.store.getTask(w.user.orgId, task.id))?.status, 'queued');
      const other = await joinAgent(w.store, 'two');
      assert.equal((await w.tasks.claim(other, live()))?.id, task.id);
      await assert.rejects(w.tasks.confirmStart(w.agent, task.id), { code: 'FERRY_E_LEASE_LOST' });
    });

    test('a claim whose answer cannot be delivered is given back at once', async () => {
      const { task } = await w.tasks.create(w.user, { target: 'vault', script: 'echo' });
      const gone = new AbortController();
      gone.abort();
      assert.equal(await w.tasks.claim(w.agent, gone.signal), undefined);
      assert.equal((await w.store.getTask(w.user.orgId, task.id))?.status, 'queued');
    });

    test('cancel: a queued task ends at once; a running one is asked to stop and its agent finishes it', async () => {
      const { task: queued } = await w.tasks.create(w.user, { target: 'vault', script: 'echo' });
      const cancelled = await w.tasks.cancel(w.user, queued.id);
      assert.deepEqual([cancelled.status, cancelled.reason], ['cancelled', 'cancelled before it started']);
      await assert.rejects(w.tasks.cancel(w.user, queued.id), { code: 'FERRY_E_TASK_FINISHED' });

      const id = await runningWithHeldSecret();
      assert.equal((await w.tasks.cancel(w.user, id)).status, 'running');
      assert.deepEqual(await w.tasks.renewLeases(w.agent, [id]), { held: [id], cancel: [id] });
      await w.tasks.finish(w.agent, id, report('cancelled'));
      assert.equal((await w.store.getTask(w.user.orgId, id))?.status, 'cancelled');
      assert.deepEqual(await auditActions(), ['task.create', 'task.cancel', 'task.create', 'task.cancel', 'task.finish']);
    });

    test('a cancel on a claimed task that never started ends it when its lease lapses; it is never queued again', async () => {
      const { task } = await w.tasks.create(w.user, { target: 'vault', script: 'echo' });
      assert.ok(await w.tasks.claim(w.agent, live()));
      const asked = await w.tasks.cancel(w.user, task.id);
      assert.deepEqual([asked.status, asked.cancelRequestedAt !== null], ['running', true]);
      await w.tasks.sweepLeases(Date.now() + LEASE_MS + 1);
      const after = await w.store.getTask(w.user.orgId, task.id);
      assert.deepEqual([after?.status, after?.reason], ['cancelled', 'cancelled before it started']);
      const other = await joinAgent(w.store, 'three');
      assert.equal(await w.tasks.claim(other, live()), undefined, 'nothing left to claim');
      assert.deepEqual(await auditActions(), ['task.create', 'task.cancel', 'task.cancel']);
    });
  });
});
