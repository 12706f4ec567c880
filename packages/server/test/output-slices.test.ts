/**
 * Uploads are stored in slices of bounded work, one slice per turn of the event loop: the
 * slices hold every byte in order (long frames cut, empty ones dropped) and turns are handed
 * out one at a time, in order, with I/O between them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Streams, frameBytes, type OutputFrame } from '@ferry/protocol';
import { OutputTurns, outputSlices } from '../src/tasks/output-slices.js';

const KIB = 1024;

function frame(bytes: number, stream: OutputFrame['stream'] = Streams.stdout): OutputFrame {
  return { stream, time: 1, data: Buffer.alloc(bytes, 0x61) };
}

test('slices keep every byte in order, cut long frames and drop empty ones', () => {
  const frames = [frame(10), frame(0), frame(2500 * KIB, Streams.stderr), frame(5)];
  const slices = outputSlices(frames);
  assert.equal(slices.length, 3);
  assert.ok(slices.every((s) => frameBytes(s) <= 1024 * KIB && s.length <= 128));
  const flat = slices.flat();
  assert.equal(frameBytes(flat), frameBytes(frames));
  assert.deepEqual(Buffer.concat(flat.map((f) => f.data)), Buffer.concat(frames.map((f) => f.data)));
  assert.ok(flat.every((f) => f.data.length > 0));
  assert.deepEqual([...new Set(flat.slice(1, -1).map((f) => f.stream))], [Streams.stderr], 'a cut frame keeps its stream');
});

test('many tiny frames are sliced by count; no frames make one empty slice', () => {
  const slices = outputSlices(Array.from({ length: 1000 }, () => frame(1)));
  assert.deepEqual(
    slices.map((s) => s.length),
    [128, 128, 128, 128, 128, 128, 128, 104],
  );
  assert.deepEqual(outputSlices([]), [[]]);
});

test('slices after the first start on a 64 KiB edge of the output (where the output digest cuts its blocks)', () => {
  const start = 100_000; // 34_464 bytes into the second block
  const slices = outputSlices([frame(3000 * KIB)], start);
  const sizes = slices.map((s) => frameBytes(s));
  assert.equal(sizes[0], 1024 * KIB - (start % (64 * KIB)), 'the first slice ends on an edge, at most 1 MiB from the edge before it');
  let at = start + sizes[0];
  for (const size of sizes.slice(1, -1)) {
    assert.equal(at % (64 * KIB), 0);
    assert.equal(size, 1024 * KIB);
    at += size;
  }
  assert.equal(
    sizes.reduce((a, b) => a + b, 0),
    3000 * KIB,
  );
});

test('an agent upload of 1 MiB that starts on a block edge is one slice, wherever the edge is', () => {
  for (const start of [0, 64 * KIB, 5 * 64 * KIB, 1000 * 64 * KIB]) {
    const upload = Array.from({ length: 16 }, () => frame(64 * KIB));
    assert.deepEqual(
      outputSlices(upload, start).map((s) => frameBytes(s)),
      [1024 * KIB],
      `from ${start}`,
    );
  }
});

test('frames split by count continue to a block edge, so every slice but the last ends on one', () => {
  const slices = outputSlices([...Array.from({ length: 128 }, () => frame(100)), frame(2048 * KIB)]);
  const ends = slices.map((_, i) => frameBytes(slices.slice(0, i + 1).flat()));
  assert.equal(ends[0], 128 * 100);
  assert.equal(ends[1]! % (64 * KIB), 0);
  assert.equal(ends[1], 1024 * KIB);
});

test('turns come one at a time, in order, each in its own turn of the event loop', async () => {
  const turns = new OutputTurns();
  let loops = 0;
  let spinning = true;
  const spin = (): void => {
    loops++;
    if (spinning) setImmediate(spin);
  };
  setImmediate(spin);
  const seen: [number, number][] = [];
  await Promise.all([1, 2, 3, 4].map((n) => turns.next().then(() => seen.push([n, loops]))));
  spinning = false;
  assert.deepEqual(
    seen.map(([n]) => n),
    [1, 2, 3, 4],
  );
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]![1] > seen[i - 1]![1], `turns ${i} and ${i + 1} shared a turn of the loop`);
});
