/**
 * Redacted output in pieces (OutputRedactor.pushPieces, and the server's transform built on
 * it): the pieces are exactly what `push` releases, cut where the unchanged lines (views of the
 * input) meet redacted or held text, so the server stores them without copying the chunk once
 * more. The transform turns a frame's pieces into frames of the same stream and time, in order,
 * small neighbours joined; the bytes of each stream are what the redactor releases. And the
 * byte scan, which reads two pairs of bytes at a time where they are 4-byte aligned, finds the
 * same lines wherever the bytes lie.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Streams, type OutputFrame, type RedactLevel, type StreamId } from '@ferry/protocol';
import { hintedLines } from '../src/redaction/byte-scan.js';
import { OutputRedactor } from '../src/redaction/redactor.js';
import { redactingTransform } from '../src/redaction/task-state.js';

const latin1 = (s: string) => Buffer.from(s, 'latin1');

const FRAGMENTS = [
  'ghp_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3HiJ',
  'AKIAIOSFODNN7EXAMPLE',
  'Authorization: Bearer abcdef0123456789xyz',
  'mail john.doe@example.org ',
  'card 4111 1111 1111 1111',
  '-----BEGIN RSA PRIVATE KEY-----\nMIIEvQIB\n-----END RSA PRIVATE KEY-----',
  ...['\n', '\r', '\r\n', ' ', 'ok', 'step done', 'ghp_', 'AK', '@', '+1 ', '12345'],
];
const fragment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...FRAGMENTS) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('latin1')) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', ' ', 'x\n'), fc.nat({ max: 400 })).map(([c, n]) => c.repeat(n)) },
);
const output = fc.array(fragment, { maxLength: 60 }).map((parts) => latin1(parts.join('')));
const level = fc.constantFrom<RedactLevel>('none', 'secrets', 'all');

describe('redacted output in pieces', () => {
  test('property: push by push, pushPieces gives what push gives, cut in non-empty pieces, and leaves the same state', () => {
    fc.assert(
      fc.property(output, level, fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 4 }), (input, lvl, sizes) => {
        const whole = new OutputRedactor(lvl);
        const pieces = new OutputRedactor(lvl);
        for (let at = 0, i = 0; at < input.length; i++) {
          const n = sizes[i % sizes.length] ?? 1;
          const chunk = input.subarray(at, at + n);
          const partial = i % 3 !== 2;
          const got = pieces.pushPieces(chunk, partial);
          assert.ok(
            got.every((p) => p.length > 0),
            'no empty piece',
          );
          assert.deepEqual(Buffer.concat(got), whole.push(chunk, partial));
          assert.equal(pieces.exportState(), whole.exportState());
          at += n;
        }
        assert.deepEqual(pieces.flush(), whole.flush());
      }),
      { numRuns: 800 },
    );
  });

  test('a chunk after a held partial line: the held line comes as its own piece, the rest as a view of the chunk', () => {
    const redactor = new OutputRedactor('secrets');
    assert.equal(redactor.push(latin1('first line\npartial '), false).toString('latin1'), 'first line\n');
    const chunk = latin1(`line end\n${'plain line\n'.repeat(5000)}`);
    const got = redactor.pushPieces(chunk, false);
    assert.deepEqual(
      got.map((p) => p.toString('latin1')),
      ['partial line end\n', 'plain line\n'.repeat(5000)],
    );
    assert.equal(got[1]?.buffer, chunk.buffer, 'the unchanged lines are the chunk itself, not a copy');
  });
});

/** Each stream's bytes as a redactor per stream releases them, frame by frame (the last frame of a stream in the upload releases its partial line). */
function reference(lvl: RedactLevel, uploads: readonly OutputFrame[][]): Map<StreamId, Buffer> {
  const redactors = new Map<StreamId, OutputRedactor>();
  const out = new Map<StreamId, Buffer[]>();
  for (const frames of uploads) {
    const last = new Map<StreamId, number>();
    frames.forEach((f, i) => last.set(f.stream, i));
    for (const [i, f] of frames.entries()) {
      const r = redactors.get(f.stream) ?? new OutputRedactor(f.stream === Streams.system ? 'none' : lvl);
      redactors.set(f.stream, r);
      out.set(f.stream, [...(out.get(f.stream) ?? []), r.push(Buffer.from(f.data), last.get(f.stream) === i)]);
    }
  }
  return byStream([...out].map(([stream, bufs]) => ({ stream, time: 0, data: Buffer.concat(bufs) })));
}

/** Each stream's bytes, for the streams that have any. */
function byStream(frames: readonly OutputFrame[]): Map<StreamId, Buffer> {
  const out = new Map<StreamId, Buffer[]>();
  for (const f of frames) if (f.data.length > 0) out.set(f.stream, [...(out.get(f.stream) ?? []), Buffer.from(f.data)]);
  return new Map([...out].map(([s, bufs]) => [s, Buffer.concat(bufs)]));
}

describe("the server's transform", () => {
  const frameArb = fc.record({ stream: fc.constantFrom<StreamId>(Streams.stdout, Streams.stderr, Streams.system), data: output, time: fc.nat() });
  const uploadsArb = fc.array(fc.array(frameArb, { maxLength: 6 }), { minLength: 1, maxLength: 4 });

  test('property: each stream gets what its redactor releases; every frame keeps the stream and time of the frame it came from, in order', () => {
    fc.assert(
      fc.property(uploadsArb, fc.constantFrom<RedactLevel>('secrets', 'all'), (uploads, lvl) => {
        const transform = redactingTransform(lvl);
        let state: string | null = null;
        const stored: OutputFrame[] = [];
        for (const frames of uploads) {
          const result = transform(frames, state);
          state = result.state;
          // Frames come out in the order of the frames they came from, with their stream and time.
          let from = 0;
          for (const f of result.frames) {
            if (f.stream !== Streams.system) assert.ok(f.data.length > 0, 'no empty frame');
            const source = frames.findIndex((s, i) => i >= from && s.stream === f.stream && s.time === f.time);
            assert.notEqual(source, -1, 'a frame comes from an input frame at or after the previous one');
            from = source;
          }
          stored.push(...result.frames);
        }
        assert.deepEqual(byStream(stored), reference(lvl, uploads));
      }),
      { numRuns: 400 },
    );
  });

  test('a 64 KiB frame after a held partial line is stored without a copy; small pieces are joined', () => {
    const transform = redactingTransform('secrets');
    // `AK` may begin an AWS key: held until the next upload says how the line goes on.
    const first = transform(
      [
        { stream: Streams.stdout, time: 1, data: latin1('a\npartial AK') },
        { stream: Streams.stderr, time: 2, data: latin1('e') },
      ],
      null,
    );
    assert.equal(byStream(first.frames).get(Streams.stdout)?.toString(), 'a\npartial ');
    const body = latin1(`end\n${'x'.repeat(99)}\n`.repeat(640).slice(0, 65536));
    const second = transform([{ stream: Streams.stdout, time: 3, data: body }], first.state);
    assert.equal(second.frames.length, 2);
    assert.equal(second.frames[0]?.data.toString(), 'AKend\n');
    assert.equal(second.frames[1]?.data.buffer, body.buffer, 'the unchanged lines are a view of the upload');
    assert.ok(second.frames.every((f) => f.stream === Streams.stdout && f.time === 3));
    // Short lines around a redacted one: one frame, not one per piece.
    const third = transform([{ stream: Streams.stdout, time: 4, data: latin1(`ok\ntoken AKIAIOSFODNN7EXAMPLE\nok\n`) }], second.state);
    assert.equal(third.frames.length, 1);
  });
});

describe('the byte scan at every alignment', () => {
  test('property: the same hinted lines, rules and stop whichever pairs start a 32-bit word (address mod 4), wherever the range starts', () => {
    fc.assert(
      fc.property(output, fc.boolean(), fc.nat({ max: 7 }), (input, personal, cut) => {
        // The pairs are the same at addresses 2 apart (where a BEGIN marker's `--` pair lies moves
        // the stop at odd distances, which is allowed); only which of them start a word differs.
        const seen: string[] = [];
        for (let shift = 0; shift < 4; shift++) {
          const room = Buffer.alloc(input.length + 8);
          input.copy(room, shift);
          const buf = room.subarray(shift, shift + input.length);
          // The scan needs a line start and a line end: from after the first break at or past `cut`.
          const nl = input.indexOf(10, Math.min(cut, input.length));
          const from = nl === -1 ? 0 : nl + 1;
          const to = input.lastIndexOf(10) + 1;
          if (to <= from) return;
          seen.push(JSON.stringify(hintedLines(buf, from, to, personal)));
        }
        assert.equal(seen[2], seen[0], 'even addresses');
        assert.equal(seen[3], seen[1], 'odd addresses');
      }),
      { numRuns: 1500 },
    );
  });

  test('a hint word at each place of an aligned word is found', () => {
    for (let at = 0; at < 12; at++) {
      for (let shift = 0; shift < 4; shift++) {
        const line = `${'x'.repeat(at)}ghp_token\n`;
        const room = Buffer.alloc(line.length + 4);
        room.write(line, shift, 'latin1');
        const got = hintedLines(room.subarray(shift, shift + line.length), 0, line.length, false);
        assert.deepEqual(got.lines, [0, line.length], `at ${at}, shift ${shift}`);
      }
    }
  });
});
