/**
 * Task output in files, through TaskService against a real SQLite store: bytes go to one file
 * per task and reads seek by offset; bytes an append wrote but never committed are never read
 * and are cut back on start-up; output rows from before version 15 move into files; retention
 * removes the files. And the output digest, on both backends (SQLite and PostgreSQL): an
 * upload whose digest header does not match is refused with nothing stored, and a final status
 * is checked from the stored digest state by a server that saw none of the uploads (another
 * replica, or this one restarted).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { FRAME_HEADER_BYTES, FerryError, OutputDigest, Streams, encodeFrames, type BlockHasher, type OutputFrame } from '@ferry/protocol';
import type { UserPrincipal } from '../src/auth.js';
import { loadServerConfig } from '../src/config.js';
import { DispatchHub } from '../src/dispatch.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import type { AgentRow, AuditInput, Store } from '../src/store/types.js';
import { OutputRetention } from '../src/tasks/output-retention.js';
import { TaskService } from '../src/tasks/task-service.js';
import { registerTestAgent, testAdmin, testTarget } from './helpers/store-fixtures.js';
import { forEachStore } from './helpers/stores.js';

const native: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();
const digestOf = (data: Uint8Array): string => new OutputDigest(native).update(data).hex();
const live = (): AbortSignal => new AbortController().signal;
const frame = (data: Buffer | string): OutputFrame => ({ stream: Streams.stdout, time: Date.now(), data: Buffer.from(data) });
const READ_ALL = { offset: 0, waitSeconds: 0, maxBytes: 64 << 20 };

/** What the tests drive: a store, the task service on it, an organization admin and an agent. */
interface Served {
  store: Store;
  hub: DispatchHub;
  tasks: TaskService;
  user: UserPrincipal;
  agent: AgentRow;
}
interface World extends Served {
  dir: string;
  store: SqliteStore;
}
/** A world on either backend; `name` is its database, which a restart opens again. */
interface DigestWorld extends Served {
  name: string;
  dir: string;
}
let w: World;

function services(dir: string, store: Store): { hub: DispatchHub; tasks: TaskService; retention: OutputRetention } {
  const hub = new DispatchHub();
  const config = loadServerConfig({ dataDir: dir, outputRetention: '1h' }, {});
  const log = pino({ level: 'silent' });
  const audit = async (entry: Omit<AuditInput, 'at'>): Promise<void> => {
    await store.appendAudit({ ...entry, at: Date.now() });
  };
  return { hub, tasks: new TaskService({ store, hub, config, log, audit }), retention: new OutputRetention({ store, retentionSeconds: 3600, log, audit }) };
}

async function makeWorld(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-output-files-'));
  const store = new SqliteStore(join(dir, 'ferry.db'));
  const { hub, tasks } = services(dir, store);
  const org = await store.ensureOrg('default', Date.now());
  // Redaction off: these tests compare stored bytes with what was sent.
  assert.notEqual(await store.createTarget(testTarget({ orgId: org.id, name: 'box', redact: 'none' })), 'exists');
  return { dir, store, hub, tasks, user: testAdmin(org.id), agent: await registerTestAgent(store, 'one') };
}

/** Reopens the store on the same folder (a restart), with fresh services that saw no upload. */
async function restart(): Promise<void> {
  w.hub.close();
  await w.store.close();
  const store = new SqliteStore(join(w.dir, 'ferry.db'));
  w = { ...w, store, ...services(w.dir, store) };
}

async function runningTaskOf(s: Served): Promise<string> {
  const { task } = await s.tasks.create(s.user, { target: 'box', script: 'echo' });
  assert.equal((await s.tasks.claim(s.agent, live()))?.id, task.id);
  await s.tasks.confirmStart(s.agent, task.id);
  return task.id;
}
const runningTask = (): Promise<string> => runningTaskOf(w);

const fileOf = (taskId: string): string => join(w.dir, 'output', `${taskId}.out`);
const readAllOf = async (s: Served, taskId: string, offset = 0): Promise<Buffer> =>
  Buffer.concat((await s.tasks.readOutput(s.user, taskId, { ...READ_ALL, offset }, live())).frames.map((f) => f.data));
const readAll = (taskId: string, offset = 0): Promise<Buffer> => readAllOf(w, taskId, offset);
const finish = (outputBytes: number, outputDigest: string) => ({
  status: 'succeeded' as const,
  exitCode: 0,
  signal: null,
  reason: null,
  outputBytes,
  outputDigest,
});

function codeOf(err: unknown): string | undefined {
  return err instanceof FerryError ? err.code : undefined;
}

// SQLite only: these are about its output files (a file per task, bytes cut back on start-up,
// a damaged folder, rows of older versions moved into files). PostgreSQL keeps output in chunk
// rows; its reads at any offset and retention are in store.contract.test.ts and
// output-retention.test.ts, which run on both backends.
describe('task output in files', () => {
  beforeEach(async () => {
    w = await makeWorld();
  });
  afterEach(async () => {
    w.hub.close();
    await w.store.close();
    rmSync(w.dir, { recursive: true, force: true });
  });

  test('each task has one file holding exactly its stored bytes; reads from any offset seek into it', async () => {
    const id = await runningTask();
    const a = Buffer.alloc(200_000, 'a');
    const b = Buffer.from('tail of the output\n');
    await w.tasks.appendOutput(w.agent, id, 0, [frame(a)], digestOf(a));
    const all = Buffer.concat([a, b]);
    await w.tasks.appendOutput(w.agent, id, a.length, [frame(b)], digestOf(all));
    assert.deepEqual(readFileSync(fileOf(id)), all);
    assert.deepEqual(await readAll(id), all);
    for (const offset of [1, 65_535, 65_536, 199_999, 200_005]) assert.deepEqual(await readAll(id, offset), all.subarray(offset), `from ${offset}`);
    assert.equal((await readAll(id, all.length)).length, 0);
  });

  test('a read lays its frames out as their encoding (one buffer, header then bytes), from any offset', async () => {
    const id = await runningTask();
    const frames = [frame('first line\n'), { ...frame('an error\n'), stream: Streams.stderr }, frame(Buffer.alloc(70_000, 'x'))];
    const all = Buffer.concat(frames.map((f) => f.data));
    await w.tasks.appendOutput(w.agent, id, 0, frames, digestOf(all));
    for (const offset of [0, 3, 11, 15, 50_000]) {
      const read = (await w.tasks.readOutput(w.user, id, { ...READ_ALL, offset }, live())).frames;
      assert.deepEqual(Buffer.concat(read.map((f) => f.data)), all.subarray(offset), `from ${offset}`);
      // What the answer to a reader sends as it is (http/route.ts): the bytes before the first
      // frame's data up to the last one's end are exactly the frames' encoding.
      const first = read[0]!.data;
      const encoded = encodeFrames(read);
      assert.deepEqual(Buffer.from(first.buffer, first.byteOffset - FRAME_HEADER_BYTES, encoded.length), Buffer.from(encoded), `from ${offset}`);
    }
  });

  test('bytes an append wrote but did not commit are never read, and are cut back when the store opens', async () => {
    const id = await runningTask();
    const data = Buffer.from('committed line\n');
    await w.tasks.appendOutput(w.agent, id, 0, [frame(data)], digestOf(data));
    appendFileSync(fileOf(id), 'bytes of an append that crashed before its commit'); // as a crash would leave them
    assert.deepEqual(await readAll(id), data);
    await restart();
    assert.equal(statSync(fileOf(id)).size, data.length);
    // The next append goes where the recorded output ends.
    const more = Buffer.from('more\n');
    await w.tasks.appendOutput(w.agent, id, data.length, [frame(more)], digestOf(Buffer.concat([data, more])));
    assert.deepEqual(readFileSync(fileOf(id)), Buffer.concat([data, more]));
  });

  test('a file cut short (a power failure) is kept; reading its missing part fails instead of answering nothing', async () => {
    const id = await runningTask();
    const data = Buffer.from('first line\nsecond line\n');
    await w.tasks.appendOutput(w.agent, id, 0, [frame(data)], digestOf(data));
    truncateSync(fileOf(id), 5);
    await restart();
    assert.equal(statSync(fileOf(id)).size, 5, 'a short file is not cut further or removed');
    await assert.rejects(readAll(id), /ends before its recorded length/);
  });

  test('files of tasks whose output is gone are removed on start-up; retention removes the file of an expired task', async () => {
    const id = await runningTask();
    const data = Buffer.from('to expire\n');
    await w.tasks.appendOutput(w.agent, id, 0, [frame(data)], digestOf(data));
    await w.tasks.finish(w.agent, id, finish(data.length, digestOf(data)));
    writeFileSync(join(w.dir, 'output', 't_nobody.out'), 'left by a crash between a retention pass and its removals');
    await restart();
    assert.ok(!existsSync(join(w.dir, 'output', 't_nobody.out')));
    assert.ok(existsSync(fileOf(id)));
    const { retention } = services(w.dir, w.store);
    const quota = await w.store.orgOutputBytes(w.user.orgId);
    assert.equal(quota, data.length);
    await retention.sweep(Date.now() + 2 * 3600_000);
    assert.ok(!existsSync(fileOf(id)), 'the expired output file is removed');
    assert.equal(await w.store.orgOutputBytes(w.user.orgId), 0);
    assert.equal((await readAll(id)).length, 0);
  });

  test('output stored in rows before version 15 moves into files when the store opens', async () => {
    const id = await runningTask();
    const data = Buffer.from('stored by an older version\n');
    await w.tasks.appendOutput(w.agent, id, 0, [frame(data)], digestOf(data));
    await w.store.close();
    // Put it back the way version 14 stored it: a row with the bytes, no file.
    const db = new Database(join(w.dir, 'ferry.db'));
    db.prepare(
      'INSERT INTO task_output (task_id, start_offset, end_offset, stream, time, data) SELECT task_id, start_offset, end_offset, stream, time, ? FROM task_output_frames',
    ).run(data);
    db.prepare('DELETE FROM task_output_frames').run();
    db.close();
    rmSync(fileOf(id));
    w.store = new SqliteStore(join(w.dir, 'ferry.db'));
    w = { ...w, ...services(w.dir, w.store) };
    assert.deepEqual(readFileSync(fileOf(id)), data);
    assert.deepEqual(await readAll(id), data);
    const check = new Database(join(w.dir, 'ferry.db'), { readonly: true });
    assert.equal((check.prepare('SELECT COUNT(*) AS n FROM task_output').get() as { n: number }).n, 0);
    check.close();
  });
});

/**
 * The output digest is store behaviour (the state is stored with the output), so these run on
 * both backends. A "restart" is another server that saw none of the uploads: on SQLite the store
 * reopened on its file, on PostgreSQL a second store on the same database (another replica; the
 * first stays open, as a replica would).
 */
forEachStore('output digest', (backend) => {
  let d: DigestWorld;
  let worlds = 0;

  async function restartDigest(): Promise<void> {
    d.hub.close();
    if (backend.kind === 'sqlite') await d.store.close();
    const store = await backend.open(d.name);
    d = { ...d, store, ...services(d.dir, store) };
  }

  beforeEach(async () => {
    const name = `digest_${++worlds}`;
    const dir = mkdtempSync(join(tmpdir(), 'ferry-output-digest-'));
    const store = await backend.open(name);
    const org = await store.ensureOrg('default', Date.now());
    assert.notEqual(await store.createTarget(testTarget({ orgId: org.id, name: 'box', redact: 'none' })), 'exists');
    d = { name, dir, store, ...services(dir, store), user: testAdmin(org.id), agent: await registerTestAgent(store, 'one') };
  });
  afterEach(async () => {
    d.hub.close();
    await d.store.close();
    rmSync(d.dir, { recursive: true, force: true });
  });

  test('an upload whose digest does not match is refused and nothing of it is stored; the right one is then accepted', async () => {
    const id = await runningTaskOf(d);
    const data = Buffer.alloc(300_000, 'x'); // several slices: none of them may be stored
    await assert.rejects(d.tasks.appendOutput(d.agent, id, 0, [frame(data)], digestOf(Buffer.from('something else'))), (err) => {
      assert.equal(codeOf(err), 'FERRY_E_OUTPUT_DIGEST');
      return true;
    });
    assert.equal((await d.store.getTask(d.user.orgId, id))?.outputBytes, 0);
    assert.equal((await readAllOf(d, id)).length, 0);
    assert.equal(await d.tasks.appendOutput(d.agent, id, 0, [frame(data)], digestOf(data)), data.length);
    assert.deepEqual(await readAllOf(d, id), data);
  });

  test('a resend overlapping what is stored is checked for its whole length and only the new part stored', async () => {
    const id = await runningTaskOf(d);
    const data = Buffer.from('0123456789abcdef');
    await d.tasks.appendOutput(d.agent, id, 0, [frame(data.subarray(0, 10))], digestOf(data.subarray(0, 10)));
    assert.equal(await d.tasks.appendOutput(d.agent, id, 4, [frame(data.subarray(4))], digestOf(data)), data.length);
    assert.deepEqual(await readAllOf(d, id), data);
    // The same upload once more (its answer was lost): nothing new, no error.
    assert.equal(await d.tasks.appendOutput(d.agent, id, 4, [frame(data.subarray(4))], digestOf(data)), data.length);
    assert.deepEqual(await readAllOf(d, id), data);
  });

  test('a server that saw none of the uploads checks the final digest from the stored state', async () => {
    const id = await runningTaskOf(d);
    const a = Buffer.alloc(100_000, 'p');
    const b = Buffer.from('partial block\n');
    const all = Buffer.concat([a, b]);
    await d.tasks.appendOutput(d.agent, id, 0, [frame(a)], digestOf(a));
    await restartDigest(); // another replica, or this one restarted: no digest in memory
    // An upload whose digest is wrong is refused there too (checked from the stored state).
    await assert.rejects(d.tasks.appendOutput(d.agent, id, a.length, [frame(b)], digestOf(b)), (err) => codeOf(err) === 'FERRY_E_OUTPUT_DIGEST');
    await d.tasks.appendOutput(d.agent, id, a.length, [frame(b)], digestOf(all));
    await restartDigest();
    await assert.rejects(d.tasks.finish(d.agent, id, finish(all.length, digestOf(a))), (err) => codeOf(err) === 'FERRY_E_OUTPUT_MISMATCH');
    await d.tasks.finish(d.agent, id, finish(all.length, digestOf(all)));
    const ended = await d.store.getTask(d.user.orgId, id);
    assert.equal(ended?.status, 'succeeded');
    assert.equal(ended.outputDigest, null, 'the state (with raw bytes of the output) is not kept after the end');
    assert.deepEqual(await readAllOf(d, id), all);
  });
});
