/**
 * PostgreSQL output chunk rows: compressed with lz4 where the server has it (every connection of
 * the store's pool asks for it), and read back the same as rows compressed with pglz (stored
 * by a server that did not ask, or before it did). Against a real PostgreSQL 15 built with lz4.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Streams, type OutputFrame } from '@ferry/protocol';
import { PostgresStore } from '../src/store/postgres/index.js';
import type { OutputTransform } from '../src/store/types.js';
import { registerTestAgent, testTarget, testTask } from './helpers/store-fixtures.js';
import { usePostgres } from './helpers/stores.js';

const pgs = usePostgres();
const keep: OutputTransform = (fresh, state) => ({ frames: [...fresh], state });
/** Log-like text, well compressible, long enough to be compressed (over 2 KiB). */
const logText = (from: number): Buffer => Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${from + i}: all good\n`).join(''));
const frame = (data: Buffer): OutputFrame => ({ stream: Streams.stdout, time: 1, data });

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
