/**
 * PostgreSQL output chunk rows: compressed with lz4 where the server has it (every connection of
 * the store's pool asks for it), and read back the same as rows compressed with pglz (stored
 * by a server that did not ask, or before it did). Appends commit without waiting for the WAL
 * flush, and a final status is not written over output a crash undid. Against a real PostgreSQL
 * 15 built with lz4.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { OutputDigest, Streams, type BlockHasher, type FerryError, type OutputFrame } from '@ferry/protocol';
import { loadServerConfig } from '../src/config.js';
import { DispatchHub } from '../src/dispatch.js';
import type { Row } from '../src/store/postgres/db.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import type { OutputTransform } from '../src/store/types.js';
import { TaskService } from '../src/tasks/task-service.js';
import { registerTestAgent, testAdmin, testTarget, testTask } from './helpers/store-fixtures.js';
import { usePostgres } from './helpers/stores.js';

const pgs = usePostgres();
const keep: OutputTransform = (fresh, state) => ({ frames: [...fresh], state });
/** Log-like text, well compressible, long enough to be compressed (over 2 KiB). */
const logText = (from: number): Buffer => Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${from + i}: all good\n`).join(''));
const frame = (data: Buffer): OutputFrame => ({ stream: Streams.stdout, time: 1, data });
const nativeBlock: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();

test('chunk rows are compressed with lz4; rows compressed with pglz read back alike', async () => {
  const store = await PostgresStore.open({ url: await pgs.url('lz4_output'), poolSize: 2 });
  try {
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const target = testTarget({ orgId, name: 'web' });
    await store.createTarget(target);
    const agent = await registerTestAgent(store, 'one', { orgId });
    await store.createTask(testTask(target, { id: 't_lz4', createdAt: 1 }));
    await store.claimNextTask(agent, Date.now(), 60_000);
    await store.markStarted('t_lz4', agent.id, Date.now());
    const first = logText(0);
    const r1 = await store.appendOutput('t_lz4', agent.id, 0, [frame(first)], keep);
    assert.ok(r1 !== 'not_held' && r1.ok);
    // A row stored by a session that kept PostgreSQL's default (pglz), as an older server's would be.
    const second = logText(2000);
    const client = await store.db.pool.connect();
    try {
      await client.query("SET default_toast_compression = 'pglz'");
      await client.query('INSERT INTO task_output (task_id, start_offset, end_offset, stream, time, data) VALUES ($1, $2, $3, 1, 1, $4)', [
        't_lz4',
        first.length,
        first.length + second.length,
        second,
      ]);
      await client.query('UPDATE tasks SET output_bytes = $1, stored_bytes = $1 WHERE id = $2', [first.length + second.length, 't_lz4']);
      await client.query("SET default_toast_compression = 'lz4'");
    } finally {
      client.release();
    }
    const methods = await store.db.all('SELECT pg_column_compression(data) AS method FROM task_output WHERE task_id = ? ORDER BY start_offset', ['t_lz4']);
    assert.deepEqual(
      methods.map((m) => m.method),
      ['lz4', 'pglz'],
    );
    const read = await store.readOutput('t_lz4', 0, 1 << 20);
    assert.deepEqual(Buffer.concat(read.map((f) => f.data)), Buffer.concat([first, second]));
  } finally {
    await store.close();
  }
});

test('binary output (every byte value, chunks of 3 B to 300 KiB) reads back byte-exact from any offset', async () => {
  const store = await PostgresStore.open({ url: await pgs.url('binary_output'), poolSize: 2 });
  try {
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const target = testTarget({ orgId, name: 'web' });
    await store.createTarget(target);
    const agent = await registerTestAgent(store, 'one', { orgId });
    await store.createTask(testTask(target, { id: 't_bin', createdAt: 1 }));
    await store.claimNextTask(agent, Date.now(), 60_000);
    await store.markStarted('t_bin', agent.id, Date.now());
    const every = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    // Sizes whose base64 ends in each padding case (3n, 3n+1, 3n+2 bytes) and one of many TOAST chunks.
    const parts = [every, randomBytes(3), randomBytes(301), randomBytes(302), randomBytes(300 * 1024), every.subarray(0, 1)];
    let offset = 0;
    for (const part of parts) {
      const r = await store.appendOutput('t_bin', agent.id, offset, [frame(part)], keep);
      assert.ok(r !== 'not_held' && r.ok);
      offset += part.length;
    }
    const all = Buffer.concat(parts);
    for (const at of [0, 1, 255, 512, 515, 700, 1000, all.length - 1]) {
      const read = await store.readOutput('t_bin', at, 1 << 20);
      assert.ok(Buffer.concat(read.map((f) => f.data)).equals(all.subarray(at)), `from ${at}`);
    }
  } finally {
    await store.close();
  }
});

test('a read at the end of the output fetches no chunk from the database (a live reader that has read everything)', async () => {
  const store = await PostgresStore.open({ url: await pgs.url('read_at_end'), poolSize: 2 });
  try {
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const target = testTarget({ orgId, name: 'web' });
    await store.createTarget(target);
    const agent = await registerTestAgent(store, 'one', { orgId });
    await store.createTask(testTask(target, { id: 't_end', createdAt: 1 }));
    await store.claimNextTask(agent, Date.now(), 60_000);
    await store.markStarted('t_end', agent.id, Date.now());
    const first = randomBytes(256 * 1024);
    const second = randomBytes(256 * 1024);
    for (const [at, part] of [
      [0, first],
      [first.length, second],
    ] as const) {
      const r = await store.appendOutput('t_end', agent.id, at, [frame(part)], keep);
      assert.ok(r !== 'not_held' && r.ok);
    }
    const end = first.length + second.length;
    // Count what the database sends back, on the real driver.
    const pool = store.db.pool;
    const query = pool.query.bind(pool);
    let rowsSent = 0;
    pool.query = (async (config: unknown) => {
      const result = await (query as (c: unknown) => Promise<{ rows: unknown[] }>)(config);
      rowsSent += result.rows.length;
      return result;
    }) as typeof pool.query;
    assert.deepEqual(await store.readOutput('t_end', end, 4 << 20), []);
    assert.equal(rowsSent, 0, 'the last chunk, which ends where the read starts, is not fetched');
    const tail = await store.readOutput('t_end', end - 10, 4 << 20);
    assert.ok(Buffer.concat(tail.map((f) => f.data)).equals(second.subarray(second.length - 10)));
    assert.equal(rowsSent, 1, 'a read inside the last chunk fetches that chunk only');
    const fromSecond = await store.readOutput('t_end', first.length, 4 << 20);
    assert.ok(Buffer.concat(fromSecond.map((f) => f.data)).equals(second));
    assert.equal(rowsSent, 2, 'a read at a chunk edge starts at that chunk, not the one before');
  } finally {
    await store.close();
  }
});

test('an append commits without waiting for the WAL flush; an ending waits, and is refused if the stored count moved back', async () => {
  // One connection, so every statement is one backend's, whose WAL counters are flushed on demand.
  const store = await PostgresStore.open({ url: await pgs.url('async_append'), poolSize: 1 });
  try {
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const target = testTarget({ orgId, name: 'web' });
    await store.createTarget(target);
    const agent = await registerTestAgent(store, 'one', { orgId });
    await store.createTask(testTask(target, { id: 't_async', createdAt: 1 }));
    await store.claimNextTask(agent, Date.now(), 60_000);
    // A backend reports its counters at most once a second unless asked (PostgreSQL 15).
    const walWrites = async (): Promise<number> => {
      await store.db.one('SELECT pg_stat_force_next_flush()');
      return Number((await store.db.one('SELECT wal_write FROM pg_stat_wal'))?.wal_write);
    };
    const before = await walWrites();
    let offset = 0;
    for (let i = 0; i < 100; i++) {
      const r = await store.appendOutput('t_async', agent.id, offset, [frame(Buffer.from(`line ${i}\n`))], keep);
      assert.ok(r !== 'not_held' && r.ok);
      offset = r.nextOffset;
    }
    // Committed one after another, each waiting for its flush, they would be 100 WAL writes at
    // least (the tests' cluster runs with fsync off, so count writes, not syncs); the WAL writer
    // writes them in a few (every 200 ms, wal_writer_delay).
    const appendWrites = (await walWrites()) - before;
    assert.ok(appendWrites < 50, `100 appends made ${appendWrites} WAL writes`);
    assert.equal((await store.db.one('SHOW synchronous_commit'))?.synchronous_commit, 'on', 'the setting is the append transaction’s only');

    const finish = { status: 'succeeded' as const, exitCode: 0, signal: null, reason: null, now: 5 };
    // As after a crash that undid the last append: the stored count is less than the one checked.
    assert.equal(await store.finishTask('t_async', agent.id, { ...finish, outputBytes: offset + 7 }, () => []), false);
    assert.equal((await store.getTaskForAgent('t_async', agent.id))?.status, 'running', 'not ended short');
    const beforeEnd = await walWrites();
    assert.ok(await store.finishTask('t_async', agent.id, { ...finish, outputBytes: offset }, () => []));
    const afterEnd = await walWrites();
    assert.ok(afterEnd > beforeEnd, 'the ending waited for its flush (and so for every append before it)');
    assert.equal(
      Buffer.concat((await store.readOutput('t_async', 0, 1 << 20)).map((f) => f.data))
        .toString()
        .split('\n').length,
      101,
    );
  } finally {
    await store.close();
  }
});

test('finish: output a database crash undid after the final status was checked is asked for again, not ended short', async () => {
  const store = await PostgresStore.open({ url: await pgs.url('finish_after_undo'), poolSize: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'ferry-pg-undo-'));
  const hub = new DispatchHub();
  try {
    const orgId = (await store.ensureOrg('acme', 1)).id;
    await store.createTarget(testTarget({ orgId, name: 'web', redact: 'none' }));
    const agent = await registerTestAgent(store, 'one', { orgId });
    let taskId = '';
    /** The task's counters before its last upload: what a crash that undid that upload leaves. */
    const undo: { before?: Row } = {};
    // The crash, as the database comes back from it: the last append's commit (not flushed when
    // it crashed) is undone, counters, digest state and rows together, between the final status's
    // check and its write.
    const undoLastAppend = async (): Promise<void> => {
      await store.db.run('DELETE FROM task_output WHERE task_id = ? AND start_offset >= ?', [taskId, undo.before?.output_bytes]);
      await store.db.run('UPDATE tasks SET output_bytes = ?, stored_bytes = ?, output_digest = ? WHERE id = ?', [
        undo.before?.output_bytes,
        undo.before?.stored_bytes,
        undo.before?.output_digest,
        taskId,
      ]);
    };
    let crash = false;
    const crashing = new Proxy(store, {
      get(target, key) {
        if (key === 'finishTask' && crash) {
          crash = false;
          return async (...args: Parameters<PostgresStore['finishTask']>) => (await undoLastAppend(), store.finishTask(...args));
        }
        const value: unknown = Reflect.get(target, key);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const config = loadServerConfig({ dataDir: dir }, {});
    const tasks = new TaskService({ store: crashing, hub, config, log: pino({ level: 'silent' }), audit: async () => {} });
    const { task } = await tasks.create(testAdmin(orgId), { target: 'web', script: 'echo' });
    taskId = task.id;
    assert.equal((await tasks.claim(agent, new AbortController().signal))?.id, taskId);
    await tasks.confirmStart(agent, taskId);
    const digest = new OutputDigest(nativeBlock);
    const upload = async (offset: number, text: string): Promise<number> => {
      const data = Buffer.from(text);
      const state = OutputDigest.fromState(digest.exportState(), nativeBlock);
      state.update(data);
      return tasks.appendOutput(agent, taskId, offset, [frame(data)], state.hex());
    };
    const advance = (text: string): void => {
      digest.update(Buffer.from(text));
    };
    assert.equal(await upload(0, 'hello'), 5);
    advance('hello');
    undo.before = await store.db.one('SELECT output_bytes, stored_bytes, output_digest FROM tasks WHERE id = ?', [taskId]);
    assert.equal(await upload(5, ' world'), 11);
    advance(' world');
    const report = { status: 'succeeded' as const, exitCode: 0, signal: null, reason: null, outputBytes: 11, outputDigest: digest.hex() };
    crash = true;
    await assert.rejects(tasks.finish(agent, taskId, report), (err: FerryError) => {
      assert.equal(err.code, 'FERRY_E_OUTPUT_GAP');
      assert.deepEqual(err.details, { expectedOffset: 5 });
      return true;
    });
    assert.equal((await store.getTaskForAgent(taskId, agent.id))?.status, 'running', 'not ended short');
    // The agent resends from its spool and reports again.
    const resend = OutputDigest.fromState(undo.before?.output_digest as string, nativeBlock);
    resend.update(Buffer.from(' world'));
    assert.equal(await tasks.appendOutput(agent, taskId, 5, [frame(Buffer.from(' world'))], resend.hex()), 11);
    await tasks.finish(agent, taskId, report);
    const ended = await store.getTaskForAgent(taskId, agent.id);
    assert.deepEqual([ended?.status, ended?.outputBytes], ['succeeded', 11]);
    assert.equal(Buffer.concat((await store.readOutput(taskId, 0, 1 << 20)).map((f) => f.data)).toString(), 'hello world');
  } finally {
    hub.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
