/**
 * The agent collects V8's young generation every few MiB of task output, so the buffers Node
 * read the task's pipes into are freed while they are few, and runs one full collection once
 * output stops (output/reclaim.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferReclaimer } from '../src/output/reclaim.js';

test('a collection runs once per interval of output bytes, not per write', () => {
  const calls: string[] = [];
  const reclaimer = new BufferReclaimer((o) => calls.push(o?.type ?? 'full'), 1000, 60_000);
  for (let i = 0; i < 99; i++) reclaimer.note(64);
  assert.equal(calls.length, 6, '99 × 64 bytes is six intervals of 1000');
  assert.deepEqual(new Set(calls), new Set(['minor']));
});

test("V8's own collector is fetched on this Node without --expose-gc, and frees dead buffers", async () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'this test runs without --expose-gc');
  const arrayBuffers = (): number => process.memoryUsage().arrayBuffers;
  const before = arrayBuffers();
  for (let i = 0; i < 64; i++) Buffer.alloc(64 * 1024); // dead at once, as the pipe buffers are after the spool write
  assert.ok(arrayBuffers() - before >= 4 * 1024 * 1024, '4 MiB of dead buffers not yet freed');
  new BufferReclaimer(undefined, 1).note(1);
  // Backing stores may be freed by a helper thread just after the collection.
  for (let i = 0; i < 50 && arrayBuffers() - before >= 1024 * 1024; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(arrayBuffers() - before < 1024 * 1024, `freed: ${((arrayBuffers() - before) / 1048576).toFixed(1)} MiB still held`);
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'gc is not left on the global object');
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('one full collection once output stops, none while it flows or after a little of it', async () => {
  const calls: string[] = [];
  const reclaimer = new BufferReclaimer((o) => calls.push(o?.type ?? 'full'), 1000, 300);
  for (let i = 0; i < 8; i++) {
    reclaimer.note(400); // 3200 bytes in ~80 ms, never quiet for 300 ms: young collections at 1200 and 2400
    await sleep(10);
  }
  assert.deepEqual(calls, ['minor', 'minor'], 'no full collection while output flows');
  await sleep(600);
  assert.deepEqual(calls, ['minor', 'minor', 'full'], 'one full collection after 300 ms of quiet');
  await sleep(400);
  assert.equal(calls.length, 3, 'only one: nothing more while idle');

  reclaimer.note(10); // less than the interval since the last full collection
  await sleep(600);
  assert.equal(calls.length, 3, 'a few bytes of output do not earn a full collection');
});

test("the full collection is V8's full one: it frees what outlived young-generation collections", async () => {
  const reclaimer = new BufferReclaimer(undefined, 1, 50);
  let held: { bytes: number[] } | undefined = { bytes: new Array<number>(10_000).fill(7) };
  const ref = new WeakRef(held);
  // Two young-generation collections while it is alive move it to the old generation.
  reclaimer.note(1);
  reclaimer.note(1);
  await sleep(0); // a WeakRef's target is kept until the job that made it ends
  held = undefined;
  await sleep(0);
  reclaimer.note(1);
  await sleep(0);
  assert.notEqual(ref.deref(), undefined, 'a young-generation collection does not free an old object');
  await sleep(150);
  assert.equal(ref.deref(), undefined, 'the collection after 50 ms of quiet freed it');
  assert.equal(held, undefined);
});

test('uploads still reading the spool put the full collection off until they stop too', async () => {
  const calls: string[] = [];
  const reclaimer = new BufferReclaimer((o) => calls.push(o?.type ?? 'full'), 1000, 300);
  reclaimer.note(1000); // the task's output, all read at once
  for (let i = 0; i < 6; i++) {
    await sleep(100);
    reclaimer.touch(); // an upload reads its body from the spool: ~600 ms of uploads after the last byte read
  }
  assert.deepEqual(calls, ['minor'], 'no full collection while uploads go on');
  await sleep(600);
  assert.deepEqual(calls, ['minor', 'full'], 'one once uploads have stopped for 300 ms');
});
