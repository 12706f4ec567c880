/**
 * The world of the output tests that drive TaskService directly (live readers, ordered
 * uploads): a store with one org, a target `box` at the default redaction level (`secrets`, so
 * stored output is redacted) and one registered agent, and a task service on them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { UserPrincipal } from '../../src/auth.js';
import { loadServerConfig } from '../../src/config.js';
import { DispatchHub } from '../../src/dispatch.js';
import type { AgentRow, AuditInput, Store } from '../../src/store/types.js';
import { TaskService } from '../../src/tasks/task-service.js';
import { registerTestAgent, testAdmin, testTarget } from './store-fixtures.js';
import type { TestBackend } from './stores.js';

export interface OutputWorld {
  dir: string;
  store: Store;
  hub: DispatchHub;
  tasks: TaskService;
  user: UserPrincipal;
  agent: AgentRow;
}

/** A task service on `store` and `hub` (a replica's, when two share a database), auditing into the store. */
export function serviceOn(store: Store, hub: DispatchHub, dir: string): TaskService {
  const config = loadServerConfig({ dataDir: dir }, {});
  const audit = async (entry: Omit<AuditInput, 'at'>): Promise<void> => {
    await store.appendAudit({ ...entry, at: Date.now() });
  };
  return new TaskService({ store, hub, config, log: pino({ level: 'silent' }), audit });
}

/** A fresh world on `backend` (or on a store and hub already opened), its data folder named from `prefix`. */
export async function makeOutputWorld(backend: TestBackend, prefix: string, opened?: { store: Store; hub: DispatchHub }): Promise<OutputWorld> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = opened?.store ?? (await backend.open());
  const hub = opened?.hub ?? new DispatchHub();
  const org = await store.ensureOrg('default', Date.now());
  assert.notEqual(await store.createTarget(testTarget({ orgId: org.id, name: 'box' })), 'exists');
  return { dir, store, hub, tasks: serviceOn(store, hub, dir), user: testAdmin(org.id), agent: await registerTestAgent(store, 'one') };
}

export async function closeOutputWorld(w: OutputWorld): Promise<void> {
  w.hub.close();
  await w.store.close();
  rmSync(w.dir, { recursive: true, force: true });
}

/** A task on `box`, claimed by the world's agent and started: ready for uploads. */
export async function runningTaskIn(w: OutputWorld): Promise<string> {
  const { task } = await w.tasks.create(w.user, { target: 'box', script: 'echo' });
  assert.equal((await w.tasks.claim(w.agent, new AbortController().signal))?.id, task.id);
  await w.tasks.confirmStart(w.agent, task.id);
  // The start wakes the task's readers in the next turn: let that pass before a test's reader waits.
  await new Promise<void>((resolve) => setImmediate(resolve));
  return task.id;
}
