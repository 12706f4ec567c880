/**
 * Uploads of one task arriving out of order (an agent has two in flight, and the second can
 * reach the server first), through TaskService on both backends: an upload past the stored end
 * waits for the ones before it and is applied after them, in offset order, so the stored output
 * (redacted as a whole, a secret cut between two uploads included) and its digest are exactly
 * those of uploads sent one at a time; the wait is bounded in time (then the gap answer, as
 * before) and in how many uploads and bytes of a task may wait (beyond that, the gap answer at
 * once). And on two replicas of one PostgreSQL database: an upload landing on the replica that
 * is not storing the one before it waits there too, woken by the hubs' relay.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterEach, before, beforeEach, describe, test } from 'node:test';
import { FerryError, OutputDigest, Streams, type BlockHasher, type OutputFrame } from '@ferry/protocol';
import { DispatchHub } from '../src/dispatch.js';
import { redactText } from '../src/redaction/engine.js';
import type { Store } from '../src/store/types.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import { PgHubRelay } from '../src/store/postgres/notify.js';
import { closeOutputWorld, makeOutputWorld, runningTaskIn, serviceOn, type OutputWorld } from './helpers/output-world.js';
import { forEachStore, usePostgres, type TestBackend } from './helpers/stores.js';

const native: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();
const live = (): AbortSignal => new AbortController().signal;
const SECRET = `ghp_${'a1B2c3D4e5'.repeat(4)}`;

let w: OutputWorld;
let backend: TestBackend;
const makeWorld = (opened?: { store: Store; hub: DispatchHub }): Promise<OutputWorld> => makeOutputWorld(backend, 'ferry-ordered-uploads-', opened);
const runningTask = (): Promise<string> => runningTaskIn(w);

/** Log-like lines, about `bytes` long, with a secret cut at every `cut` (so it spans two uploads). */
function output(bytes: number, cuts: readonly number[]): Buffer {
  let text = '';
  for (let i = 0; text.length < bytes; i++) text += `line ${i} ${'x'.repeat(i % 70)}\n`;
  const raw = Buffer.from(text.slice(0, bytes));
  for (const cut of cuts) Buffer.from(` ${SECRET} `).copy(raw, cut - 10);
  return raw;
}

/** The upload of raw[from, to): 64 KiB frames, and the digest header of the output up to `to`. */
function uploadOf(raw: Buffer, from: number, to: number): { offset: number; frames: OutputFrame[]; digest: string } {
  const frames: OutputFrame[] = [];
  for (let at = from; at < to; at += 65536) frames.push({ stream: Streams.stdout, time: 1, data: raw.subarray(at, Math.min(to, at + 65536)) });
  return { offset: from, frames, digest: new OutputDigest(native).update(raw.subarray(0, to)).hex() };
}

function send(taskId: string, u: ReturnType<typeof uploadOf>): Promise<number> {
  return w.tasks.appendOutput(w.agent, taskId, u.offset, u.frames, u.digest);
}

/** Settles with the upload's outcome and when it came, so tests can compare order and time. */
async function timed(p: Promise<number>): Promise<{ at: number; next?: number; err?: unknown }> {
  try {
    const next = await p;
    return { at: performance.now(), next };
  } catch (err) {
    return { at: performance.now(), err };
  }
}

function gapOf(err: unknown): number | undefined {
  return err instanceof FerryError && err.code === 'FERRY_E_OUTPUT_GAP' ? (err.details as { expectedOffset: number }).expectedOffset : undefined;
}

async function readAll(taskId: string): Promise<Buffer> {
  const page = await w.tasks.readOutput(w.user, taskId, { offset: 0, waitSeconds: 0, maxBytes: 64 << 20 }, live());
  return Buffer.concat(page.frames.map((f) => f.data));
}

async function finishAndCheck(taskId: string, raw: Buffer): Promise<void> {
  const outputDigest = new OutputDigest(native).update(raw).hex();
  await w.tasks.finish(w.agent, taskId, { status: 'succeeded', exitCode: 0, signal: null, reason: null, outputBytes: raw.length, outputDigest });
  const expected = Buffer.from(redactText('secrets', raw.toString('latin1')), 'latin1');
  assert.ok(expected.includes('[REDACTED:github-token]'), 'the output held a secret cut between uploads');
  assert.ok(!expected.includes(SECRET.slice(0, 12)));
  assert.ok((await readAll(taskId)).equals(expected), 'the stored output is the whole output redacted as one');
}

const settledWithin = async (p: Promise<unknown>, ms: number): Promise<boolean> => {
  let settled = false;
  void p.finally(() => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, ms));
  return settled;
};

forEachStore('ordered uploads', (b) => {
  before(() => {
    backend = b;
  });

  describe('uploads of a task arriving out of order', () => {
    beforeEach(async () => {
      w = await makeWorld();
    });
    afterEach(() => closeOutputWorld(w));

    test('an upload that arrives before the one it follows waits for it and is applied after it', { timeout: 20_000 }, async () => {
      const id = await runningTask();
      const mib = 1 << 20;
      const raw = output(3 * mib, [mib, 2 * mib]);
      // The third part arrives first, then the second, then the first.
      const third = timed(send(id, uploadOf(raw, 2 * mib, raw.length)));
      const second = timed(send(id, uploadOf(raw, mib, 2 * mib)));
      assert.equal(await settledWithin(Promise.race([third, second]), 150), false, 'both wait: nothing before them is stored');
      const first = await timed(send(id, uploadOf(raw, 0, mib)));
      const [s, t] = await Promise.all([second, third]);
      assert.deepEqual([first.next, s.next, t.next, s.err, t.err], [mib, 2 * mib, raw.length, undefined, undefined]);
      assert.ok(first.at <= s.at && s.at <= t.at, 'answered in offset order');
      await finishAndCheck(id, raw);
    });

    test('an append committed while the waiting upload reads the task still wakes it (no 1 s stall)', { timeout: 20_000 }, async () => {
      const id = await runningTask();
      const raw = output(200_000, [100_000]);
      // The waiting upload's service reads the task slowly: each read's answer (taken when it
      // starts) comes 200 ms late, so the append before it commits, and wakes, during a read.
      const slow = new Proxy(w.store, {
        get(target, key) {
          if (key === 'getTaskForAgent') {
            return async (...args: Parameters<Store['getTaskForAgent']>) => {
              const row = await target.getTaskForAgent(...args);
              await new Promise((resolve) => setTimeout(resolve, 200));
              return row;
            };
          }
          const value: unknown = Reflect.get(target, key);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const waiting = serviceOn(slow, w.hub, w.dir);
      const u = uploadOf(raw, 100_000, raw.length);
      const sent = performance.now();
      const second = timed(waiting.appendOutput(w.agent, id, u.offset, u.frames, u.digest));
      // While its first read of the task is under way (before it could start waiting).
      await new Promise((resolve) => setTimeout(resolve, 80));
      assert.equal(await send(id, uploadOf(raw, 0, 100_000)), 100_000);
      const s = await second;
      assert.equal(s.next, raw.length, String(s.err));
      assert.ok(s.at - sent < 850, `woken by the append, not by the wait's end (${(s.at - sent).toFixed(0)} ms)`);
      await finishAndCheck(id, raw);
    });

    test('the wait is bounded: with nothing before it, an upload gets the gap answer after about a second', { timeout: 20_000 }, async () => {
      const id = await runningTask();
      const raw = output(200_000, [100_000]);
      const sent = performance.now();
      const ahead = await timed(send(id, uploadOf(raw, 100_000, raw.length)));
      assert.equal(gapOf(ahead.err), 0, `the gap answer names where the server is (${String(ahead.err)})`);
      const waited = ahead.at - sent;
      assert.ok(waited >= 900 && waited < 5000, `it waited for the bound (${waited.toFixed(0)} ms)`);
      assert.equal((await readAll(id)).length, 0, 'nothing of it was stored');
      // Sent again in order, all of it is stored.
      assert.equal(await send(id, uploadOf(raw, 0, 100_000)), 100_000);
      assert.equal(await send(id, uploadOf(raw, 100_000, raw.length)), raw.length);
      await finishAndCheck(id, raw);
    });

    test('at most two uploads of a task, and 4 MiB of them, wait: more gets the gap answer at once', { timeout: 20_000 }, async () => {
      const id = await runningTask();
      const k = 100_000;
      const raw = output(4 * k, [k, 3 * k]);
      const d = timed(send(id, uploadOf(raw, 3 * k, 4 * k)));
      const c = timed(send(id, uploadOf(raw, 2 * k, 3 * k)));
      assert.equal(await settledWithin(Promise.race([c, d]), 150), false, 'the two wait');
      const sent = performance.now();
      const refused = await timed(send(id, uploadOf(raw, k, 2 * k)));
      assert.equal(gapOf(refused.err), 0, 'a third waiting upload is refused');
      assert.ok(refused.at - sent < 500, `at once (${(refused.at - sent).toFixed(0)} ms)`);
      // Its sender resends it once the first is in: the waiting two are applied after it.
      assert.equal(await send(id, uploadOf(raw, 0, k)), k);
      assert.equal(await send(id, uploadOf(raw, k, 2 * k)), 2 * k);
      const [cc, dd] = await Promise.all([c, d]);
      assert.deepEqual([cc.next, dd.next], [3 * k, 4 * k]);
      await finishAndCheck(id, raw);

      // Bytes: one waiting upload of over 4 MiB is refused at once too.
      const id2 = await runningTask();
      const big = output(6 << 20, [1 << 20]);
      const start = performance.now();
      const over = await timed(send(id2, uploadOf(big, 1 << 20, big.length)));
      assert.equal(gapOf(over.err), 0);
      assert.ok(over.at - start < 500, `at once (${(over.at - start).toFixed(0)} ms)`);
    });
  });
});

const postgres = usePostgres();

/** A replica: its own store (pool) and hub, whose wake-ups cross to the others through its relay, as server.ts wires them. */
async function replica(url: string): Promise<{ store: PostgresStore; hub: DispatchHub; relay: PgHubRelay }> {
  const store = await PostgresStore.open({ url, poolSize: 4 });
  const holder: { hub?: DispatchHub } = {};
  const relay = new PgHubRelay({ db: store.db, url, deliver: (signal) => holder.hub?.receive(signal), resync: () => holder.hub?.wakeEveryone() });
  // No re-check of its own within the test: only a relayed wake-up can end the wait early.
  const hub = new DispatchHub({ relay, recheckMs: 60_000 });
  holder.hub = hub;
  await relay.start();
  return { store, hub, relay };
}

describe('uploads of a task on two replicas (PostgreSQL)', () => {
  test('an upload landing on the other replica waits there, woken by the relay, and is applied after the one before it', { timeout: 20_000 }, async () => {
    const url = await postgres.url('replicas');
    const [one, two] = [await replica(url), await replica(url)];
    try {
      w = await makeWorld(one);
      const other = { tasks: serviceOn(two.store, two.hub, w.dir) };
      const id = await runningTask();
      const mib = 1 << 20;
      const raw = output(2 * mib, [mib]);
      const u = uploadOf(raw, mib, raw.length);
      const sent = performance.now();
      const second = timed(other.tasks.appendOutput(w.agent, id, u.offset, u.frames, u.digest));
      assert.equal(await settledWithin(second, 150), false, 'it waits on its replica');
      assert.equal(await send(id, uploadOf(raw, 0, mib)), mib);
      const s = await second;
      assert.equal(s.next, raw.length, String(s.err));
      assert.ok(s.at - sent < 900, `woken by the relay, not by its wait running out (${(s.at - sent).toFixed(0)} ms)`);
      await finishAndCheck(id, raw);
      rmSync(w.dir, { recursive: true, force: true });
    } finally {
      for (const r of [one, two]) {
        r.hub.close();
        await r.relay.close();
        await r.store.close();
      }
    }
  });
});
