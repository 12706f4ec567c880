/**
 * The agent collects V8's young generation every few MiB of task output, so the buffers Node
 * read the task's pipes into are freed while they are few (output/reclaim.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferReclaimer } from '../src/output/reclaim.js';

test('a collection runs once per interval of output bytes, not per write', () => {
  const calls: string[] = [];
  const reclaimer = new BufferReclaimer((o) => calls.push(o.type), 1000);
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
