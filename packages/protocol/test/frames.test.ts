/**
 * Output framing: what goes in comes out, however the bytes are split on the way; a truncated
 * or malformed buffer is refused with a clear error; Node's Buffer and Uint8Array decode alike.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FRAME_HEADER_BYTES, FrameDecoder, Streams, decodeFrames, encodeFrames, frameBytes, type OutputFrame, type StreamId } from '../src/frames.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Frames as plain values, so a Buffer-backed and a Uint8Array-backed frame compare equal. */
const plain = (frames: readonly OutputFrame[]): { stream: number; time: number; data: number[] }[] =>
  frames.map((f) => ({ stream: f.stream, time: f.time, data: [...f.data] }));

const SAMPLE: OutputFrame[] = [
  { stream: Streams.stdout, time: 1_700_000_000_123, data: text('hello\n') },
  { stream: Streams.stderr, time: 1_700_000_000_124.5, data: text('warning: é ✓\n') },
  { stream: Streams.system, time: 0, data: new Uint8Array(0) },
  { stream: Streams.stdout, time: 1_700_000_001_000, data: new Uint8Array([0, 255, 0xc3, 0x28, 10]) },
];

const frameArb: fc.Arbitrary<OutputFrame> = fc.record({
  stream: fc.constantFrom<StreamId>(Streams.stdout, Streams.stderr, Streams.system),
  time: fc.double({ noNaN: true, noDefaultInfinity: true }),
  data: fc.uint8Array({ maxLength: 64 }),
});

describe('output frames', () => {
  it('round-trips: decode(encode(frames)) gives the frames back', () => {
    assert.deepEqual(plain(decodeFrames(encodeFrames(SAMPLE))), plain(SAMPLE));
  });

  it('round-trips any frames (property)', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 8 }), (frames) => {
        const bytes = encodeFrames(frames);
        assert.equal(bytes.length, frames.length * FRAME_HEADER_BYTES + frameBytes(frames));
        assert.deepEqual(plain(decodeFrames(bytes)), plain(frames));
      }),
    );
  });

  it('encodes the documented header: stream, u32 BE length, f64 BE time', () => {
    const bytes = encodeFrames([{ stream: Streams.stderr, time: 1.5, data: text('ab') }]);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    assert.equal(view.getUint8(0), 2);
    assert.equal(view.getUint32(1), 2);
    assert.equal(view.getFloat64(5), 1.5);
    assert.deepEqual([...bytes.subarray(FRAME_HEADER_BYTES)], [...text('ab')]);
  });

  it('decodes incrementally with the input split at every position', () => {
    const bytes = encodeFrames(SAMPLE);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new FrameDecoder();
      const frames = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))];
      assert.deepEqual(plain(frames), plain(SAMPLE), `split at ${cut}`);
      assert.equal(decoder.pendingBytes(), 0);
    }
  });

  it('decodes incrementally one byte at a time, holding back only the incomplete frame', () => {
    const bytes = encodeFrames(SAMPLE);
    const decoder = new FrameDecoder();
    const frames: OutputFrame[] = [];
    for (let i = 0; i < bytes.length; i++) {
      frames.push(...decoder.push(bytes.subarray(i, i + 1)));
      assert.ok(decoder.pendingBytes() < FRAME_HEADER_BYTES + 32, `byte ${i}: holds ${decoder.pendingBytes()} bytes`);
    }
    assert.deepEqual(plain(frames), plain(SAMPLE));
  });

  it('decodes any split of any frames the same (property)', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), (frames, cuts) => {
        const bytes = encodeFrames(frames);
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const decoder = new FrameDecoder();
        const out: OutputFrame[] = [];
        let from = 0;
        for (const to of [...points, bytes.length]) {
          out.push(...decoder.push(bytes.subarray(from, to)));
          from = to;
        }
        assert.deepEqual(plain(out), plain(frames));
      }),
    );
  });

  it('refuses truncated input: a cut header or a cut body', () => {
    const bytes = encodeFrames(SAMPLE.slice(0, 2));
    for (const end of [1, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES + 2, bytes.length - 1]) {
      assert.throws(() => decodeFrames(bytes.subarray(0, end)), /truncated output frame/, `cut at ${end}`);
    }
    assert.deepEqual(decodeFrames(new Uint8Array(0)), []);
  });

  it('refuses an unknown stream', () => {
    const bytes = encodeFrames([{ stream: Streams.stdout, time: 1, data: text('x') }]);
    for (const stream of [0, 4, 255]) {
      const bad = bytes.slice();
      bad[0] = stream;
      assert.throws(() => decodeFrames(bad), new RegExp(`unknown stream ${stream}`));
    }
  });

  it('refuses a time that is not a finite number', () => {
    for (const time of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const bytes = encodeFrames([{ stream: Streams.stdout, time, data: text('x') }]);
      assert.throws(() => decodeFrames(bytes), /time is not a finite number/);
    }
  });

  it('decodes a Node Buffer to the same frames as a Uint8Array, including a Buffer that is a slice of a larger one', () => {
    const bytes = encodeFrames(SAMPLE);
    const pool = Buffer.alloc(bytes.length + 20, 0xaa);
    Buffer.from(bytes).copy(pool, 7);
    const slice = pool.subarray(7, 7 + bytes.length);
    assert.deepEqual(plain(decodeFrames(Buffer.from(bytes))), plain(decodeFrames(bytes)));
    assert.deepEqual(plain(decodeFrames(slice)), plain(SAMPLE));
    const decoder = new FrameDecoder();
    const pieces = [...decoder.push(slice.subarray(0, 20)), ...decoder.push(slice.subarray(20))];
    assert.deepEqual(plain(pieces), plain(SAMPLE));
  });

  it('decodes frames encoded from a view into a larger buffer', () => {
    const backing = new Uint8Array(100).fill(7);
    const data = backing.subarray(10, 15);
    assert.deepEqual(plain(decodeFrames(encodeFrames([{ stream: Streams.stdout, time: 2, data }]))), [{ stream: 1, time: 2, data: [7, 7, 7, 7, 7] }]);
  });
});
