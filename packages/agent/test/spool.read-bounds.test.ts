/**
 * The spool hands the uploader bounded chunks: at most `maxFrames` frames (the server takes
 * MAX_UPLOAD_FRAMES per upload) and `maxBytes` bytes, and reading chunk after chunk from where
 * the last one ended gives back every byte of every stream, in order, exactly once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Streams, decodeFrames } from '@ferry/protocol';
import { TaskSpool } from '../src/output/spool.js';

test('finely interleaved stdout and stderr are read back in chunks of bounded frames, byte-exact', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-spool-'));
  const spool = TaskSpool.create(dir, 't_spoolbounds0');
  try {
    const written: { stream: number; byte: number }[] = [];
    for (let i = 0; i < 10_000; i++) {
      const stream = i % 3 === 0 ? Streams.stderr : Streams.stdout; // runs of one and two frames
      const byte = i % 251;
      spool.append(stream, Buffer.from([byte]));
      written.push({ stream, byte });
    }
    const read: { stream: number; byte: number }[] = [];
    for (let at = 0; at < spool.bytesProduced;) {
      const chunk = spool.readChunk(at, 1 << 20, 64);
      const frames = decodeFrames(chunk.body);
      assert.ok(frames.length > 0 && frames.length <= 64, `a chunk of ${frames.length} frames`);
      for (const f of frames) for (const byte of f.data) read.push({ stream: f.stream, byte });
      assert.equal(chunk.end, at + frames.reduce((n, f) => n + f.data.length, 0), 'the chunk ends where its frames do');
      at = chunk.end;
    }
    assert.deepEqual(read, written);
    const small = spool.readChunk(0, 10, 64);
    assert.equal(
      decodeFrames(small.body).reduce((n, f) => n + f.data.length, 0),
      10,
      'maxBytes still bounds the chunk',
    );
  } finally {
    void spool.remove();
    rmSync(dir, { recursive: true, force: true });
  }
});
