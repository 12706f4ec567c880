/**
 * The spool builds each upload's body straight from its file (frames are stored in the wire
 * format) and keeps the output digest as frames are appended. Checked against the protocol's
 * own decoder and OutputDigest: chunks cut anywhere (mid-frame, mid-block) give back every
 * byte in order, and the digest at any offset, before and after the spool is recovered from
 * disk, is the one the server computes.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIGEST_BLOCK_BYTES, OutputDigest, Streams, decodeFrames, type BlockHasher, type StreamId } from '@ferry/protocol';
import { TaskSpool } from '../src/output/spool.js';

const nativeBlock: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();
const reference = (bytes: Uint8Array): string => new OutputDigest(nativeBlock).update(bytes).hex();

/** Appends frames of varied sizes (1 byte to 150 KiB) on two streams; returns what was written. */
function fill(spool: TaskSpool, count: number): { stream: StreamId; data: Buffer }[] {
  const written: { stream: StreamId; data: Buffer }[] = [];
  const sizes = [1, 7, 4096, 65_536, 65_535, 150_000, 13, 70_000];
  for (let i = 0; i < count; i++) {
    const stream = i % 5 === 4 ? Streams.stderr : Streams.stdout;
    const data = randomBytes(sizes[i % sizes.length]!);
    spool.append(stream, data, 1_700_000_000_000 + i);
    written.push({ stream, data });
  }
  return written;
}

function withSpool(fn: (dir: string, spool: TaskSpool) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-spool-'));
  const spool = TaskSpool.create(dir, 't_spoolchunks0');
  try {
    fn(dir, spool);
  } finally {
    spool.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('chunks read from any offset, of any size, give back every byte of every stream in order', () => {
  withSpool((_dir, spool) => {
    const written = fill(spool, 40);
    const all = Buffer.concat(written.map((w) => w.data));
    const streamOf = Buffer.concat(written.map((w) => Buffer.alloc(w.data.length, w.stream)));
    for (const [startAt, maxBytes] of [
      [0, 1 << 20],
      [3, 100_000],
      [65_537, 65_536],
      [5, 1],
      [all.length - 10, 1 << 20],
    ] as const) {
      const got: Buffer[] = [];
      const streams: Buffer[] = [];
      let scratch = Buffer.alloc(maxBytes + 64 * 13);
      for (let at = startAt; at < spool.bytesProduced;) {
        const chunk = spool.readChunk(at, maxBytes, 4096, scratch);
        const frames = decodeFrames(chunk.body);
        for (let i = 1; i < frames.length; i++) assert.notEqual(frames[i]!.stream, frames[i - 1]!.stream, 'adjacent frames of one stream are merged');
        const length = frames.reduce((n, f) => n + f.data.length, 0);
        assert.ok(length > 0 && length <= maxBytes, `a chunk of ${length} bytes (at most ${maxBytes})`);
        assert.equal(chunk.end, at + length);
        for (const f of frames) {
          got.push(Buffer.from(f.data));
          streams.push(Buffer.alloc(f.data.length, f.stream));
        }
        at = chunk.end;
        scratch = Buffer.alloc(maxBytes + 64 * 13); // the body is a view of the scratch: keep what was read
      }
      assert.ok(Buffer.concat(got).equals(all.subarray(startAt)), `bytes from ${startAt} in chunks of ${maxBytes}`);
      assert.ok(Buffer.concat(streams).equals(streamOf.subarray(startAt)), `streams from ${startAt} in chunks of ${maxBytes}`);
    }
  });
});

test("the spool's digest at any offset is the protocol's OutputDigest, also after recovery from disk", () => {
  withSpool((dir, spool) => {
    const empty = spool.digestAt(0);
    assert.equal(empty, reference(new Uint8Array(0)));
    const all = Buffer.concat(fill(spool, 30).map((w) => w.data));
    const offsets = [0, 1, DIGEST_BLOCK_BYTES - 1, DIGEST_BLOCK_BYTES, DIGEST_BLOCK_BYTES + 1, 3 * DIGEST_BLOCK_BYTES, 200_001, all.length - 1, all.length];
    for (const at of offsets) assert.equal(spool.digestAt(at), reference(all.subarray(0, at)), `digest at ${at}`);
    spool.close();
    const recovered = TaskSpool.recover(dir, 't_spoolchunks0');
    try {
      assert.equal(recovered.bytesProduced, all.length);
      for (const at of offsets) assert.equal(recovered.digestAt(at), reference(all.subarray(0, at)), `digest at ${at} after recovery`);
      const frames = decodeFrames(recovered.readChunk(0, all.length, 4096).body);
      assert.ok(Buffer.concat(frames.map((f) => f.data)).equals(all), 'the recovered spool reads back byte-exact');
    } finally {
      recovered.close();
    }
  });
});
