/**
 * A live reader (`ferry run`, `task logs --follow`: long-polled reads by offset) against uploads
 * racing it, through TaskService on both backends: it gets every byte, in order, exactly as a
 * read after the end gives them (redacted as a whole), whatever the uploads' and reads' sizes;
 * and a reader an upload wakes is served after that upload has been answered, so the agent's
 * next upload does not wait behind the reader's read. A waiting reader gets a line at once, and
 * bulk output gathered into reads of up to 4 MiB.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, before, beforeEach, describe, test } from 'node:test';
import { OutputDigest, Streams, type BlockHasher, type OutputFrame } from '@ferry/protocol';
import { redactText } from '../src/redaction/engine.js';
import { closeOutputWorld, makeOutputWorld, runningTaskIn, type OutputWorld } from './helpers/output-world.js';
import { forEachStore, type TestBackend } from './helpers/stores.js';

const native: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();
const live = (): AbortSignal => new AbortController().signal;
const SECRET = `ghp_${'a1B2c3D4e5'.repeat(4)}`;

let w: OutputWorld;
let backend: TestBackend;
const makeWorld = (): Promise<OutputWorld> => makeOutputWorld(backend, 'ferry-live-reader-');
const runningTask = (): Promise<string> => runningTaskIn(w);

/** Uploads `bytes` of stdout at the task's current end (one call, so one wake-up), with its digest header. */
async function uploadAt(taskId: string, digest: OutputDigest, offset: number, data: Buffer): Promise<number> {
  const frames: OutputFrame[] = [];
  for (let f = 0; f < data.length; f += 65536) frames.push({ stream: Streams.stdout, time: Date.now(), data: data.subarray(f, f + 65536) });
  digest.update(data);
  return w.tasks.appendOutput(w.agent, taskId, offset, frames, digest.hex());
}

/**
 * Counts the hub's output waits; with `untimed`, a wait shorter than a second (a reader gathering
 * bulk output) waits for its wake-up alone, so a slow machine cannot end it before the test's
 * next upload. `waits` resolves once `n` waits have begun.
 */
function watchWaits(untimed: boolean): { count: () => number; waits: (n: number) => Promise<void> } {
  const wait = w.hub.waitForOutput.bind(w.hub);
  let count = 0;
  const listeners: (() => void)[] = [];
  w.hub.waitForOutput = (taskId, timeoutMs, signal) => {
    count += 1;
    for (const l of listeners.splice(0)) l();
    return wait(taskId, untimed && timeoutMs < 1000 ? 60_000 : timeoutMs, signal);
  };
  const waits = async (n: number): Promise<void> => {
    while (count < n) await new Promise<void>((resolve) => listeners.push(resolve));
  };
  return { count: () => count, waits };
}

/** A fixed-seed generator, so a failure can be run again. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Log-like output: lines of letters and binary noise, a secret now and then, sometimes split across uploads. */
function output(bytes: number, r: () => number): Buffer {
  const parts: Buffer[] = [];
  for (let n = 0; n < bytes;) {
    const x = r();
    const part =
      x < 0.02
        ? Buffer.from(`token ${SECRET} end\n`)
        : x < 0.3
          ? Buffer.from(Array.from({ length: Math.floor(r() * 3000) }, () => Math.floor(r() * 256)))
          : Buffer.from(`${'step '.repeat(Math.floor(r() * 40))}done ${n}\n`);
    parts.push(part);
    n += part.length;
  }
  return Buffer.concat(parts).subarray(0, bytes);
}

/** Uploads `raw` in pieces of random sizes (frames of up to 64 KiB, as the agent's pipe reads give), each with its digest header. */
async function upload(taskId: string, raw: Buffer, r: () => number): Promise<void> {
  const digest = new OutputDigest(native);
  for (let at = 0; at < raw.length;) {
    const size = Math.min(raw.length - at, 1 + Math.floor(r() * 1.5 * 2 ** 20));
    const frames: OutputFrame[] = [];
    for (let f = at; f < at + size; f += 65536)
      frames.push({ stream: Streams.stdout, time: Date.now(), data: raw.subarray(f, Math.min(at + size, f + 65536)) });
    digest.update(raw.subarray(at, at + size));
    await w.tasks.appendOutput(w.agent, taskId, at, frames, digest.hex());
    at += size;
    // Sometimes the next upload comes at once, sometimes after the reader had a turn or two.
    if (r() < 0.5) await new Promise((resolve) => setImmediate(resolve));
  }
  await w.tasks.finish(w.agent, taskId, { status: 'succeeded', exitCode: 0, signal: null, reason: null, outputBytes: raw.length, outputDigest: digest.hex() });
}

/** Follows the output as a live reader does: from where the last read ended, waiting for more, until it is complete. */
async function follow(taskId: string, r: () => number): Promise<{ bytes: Buffer; reads: number }> {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  let reads = 0;
  for (;;) {
    const maxBytes = r() < 0.5 ? 4 << 20 : 1 + Math.floor(r() * 300_000);
    const page = await w.tasks.readOutput(w.user, taskId, { offset, waitSeconds: 10, maxBytes }, live());
    reads += 1;
    for (const f of page.frames) {
      assert.equal(f.stream, Streams.stdout);
      chunks.push(f.data);
    }
    assert.equal(page.nextOffset, offset + page.frames.reduce((n, f) => n + f.data.length, 0), 'nextOffset is where the bytes it gave end');
    offset = page.nextOffset;
    if (page.complete) return { bytes: Buffer.concat(chunks), reads };
  }
}

forEachStore('live reader', (b) => {
  before(() => {
    backend = b;
  });

  describe('a live reader', () => {
    beforeEach(async () => {
      w = await makeWorld();
    });
    afterEach(() => closeOutputWorld(w));

    for (const seed of [1, 2, 3]) {
      test(`gets every byte, in order, while uploads race it (seed ${seed})`, { timeout: 60_000 }, async () => {
        const r = prng(seed);
        const raw = output(6 * 2 ** 20, r);
        const id = await runningTask();
        const [{ bytes, reads }] = await Promise.all([follow(id, prng(seed + 100)), upload(id, raw, r)]);
        const expected = Buffer.from(redactText('secrets', raw.toString('latin1')), 'latin1');
        assert.ok(expected.includes('[REDACTED:github-token]'), 'the output held secrets to redact');
        assert.equal(bytes.length, expected.length);
        assert.ok(bytes.equals(expected), 'the followed bytes are the whole redacted output');
        assert.ok(reads > 3, `the reader followed along (${reads} reads)`);
      });
    }

    test('an upload is answered before the reader it wakes is served', { timeout: 10_000 }, async () => {
      const id = await runningTask();
      let woken = false;
      const wait = w.hub.waitForOutput.bind(w.hub);
      let waiting!: () => void;
      const started = new Promise<void>((resolve) => (waiting = resolve));
      w.hub.waitForOutput = (...args) => {
        waiting();
        return wait(...args).then(() => {
          woken = true;
        });
      };
      const reader = w.tasks.readOutput(w.user, id, { offset: 0, waitSeconds: 10, maxBytes: 1 << 20 }, live());
      await started;
      const data = Buffer.from('hello\n');
      await w.tasks.appendOutput(w.agent, id, 0, [{ stream: Streams.stdout, time: Date.now(), data }], new OutputDigest(native).update(data).hex());
      assert.equal(woken, false, 'the reader is still waiting when the upload is answered');
      const page = await reader;
      assert.equal(woken, true);
      assert.equal(Buffer.concat(page.frames.map((f) => f.data)).toString(), 'hello\n');
    });

    test('a waiting reader gets a line at once: it does not wait to gather more', { timeout: 10_000 }, async () => {
      const id = await runningTask();
      const waits = watchWaits(true);
      const reader = w.tasks.readOutput(w.user, id, { offset: 0, waitSeconds: 10, maxBytes: 4 << 20 }, live());
      await waits.waits(1);
      await uploadAt(id, new OutputDigest(native), 0, Buffer.from('first line\n'));
      // Were it gathering, its wait would last until the next upload (watchWaits), and this would time out.
      const page = await reader;
      assert.equal(Buffer.concat(page.frames.map((f) => f.data)).toString(), 'first line\n');
      assert.equal(waits.count(), 1, 'one wait: for the line, none after it');
    });

    test('bulk output is gathered into one read of up to 4 MiB', { timeout: 30_000 }, async () => {
      const id = await runningTask();
      const digest = new OutputDigest(native);
      const raw = Buffer.alloc(5 << 20, 'output of a busy task\n');
      const waits = watchWaits(true);
      const reader = w.tasks.readOutput(w.user, id, { offset: 0, waitSeconds: 10, maxBytes: 4 << 20 }, live());
      await waits.waits(1);
      let at = await uploadAt(id, digest, 0, raw.subarray(0, 1 << 20)); // an agent's upload: 1 MiB
      await waits.waits(2); // woken, the reader waits for more rather than answer with 1 MiB
      at = await uploadAt(id, digest, at, raw.subarray(at, 5 << 20));
      const page = await reader;
      const got = Buffer.concat(page.frames.map((f) => f.data));
      assert.equal(got.length, 4 << 20, 'one read of 4 MiB, not one per upload');
      assert.ok(got.equals(raw.subarray(0, 4 << 20)));
      assert.equal(page.nextOffset, 4 << 20);
      // A read that does not wait is answered at once with what is stored.
      const rest = await w.tasks.readOutput(w.user, id, { offset: page.nextOffset, waitSeconds: 0, maxBytes: 4 << 20 }, live());
      assert.ok(Buffer.concat(rest.frames.map((f) => f.data)).equals(raw.subarray(4 << 20)));
      assert.equal(at, 5 << 20);
    });

    test('a reader gathering bulk output is answered at once when the task ends', { timeout: 30_000 }, async () => {
      const id = await runningTask();
      const digest = new OutputDigest(native);
      const waits = watchWaits(true);
      const reader = w.tasks.readOutput(w.user, id, { offset: 0, waitSeconds: 10, maxBytes: 4 << 20 }, live());
      await waits.waits(1);
      const bytes = await uploadAt(id, digest, 0, Buffer.alloc(1 << 20, 0x61));
      await waits.waits(2);
      await w.tasks.finish(w.agent, id, { status: 'succeeded', exitCode: 0, signal: null, reason: null, outputBytes: bytes, outputDigest: digest.hex() });
      const page = await reader;
      assert.equal(page.nextOffset, 1 << 20);
      assert.equal(page.complete, true, 'the read that gathered the last output says it is complete');
    });
  });
});
