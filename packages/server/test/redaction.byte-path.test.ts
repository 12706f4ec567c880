/**
 * The byte path (byte-scan.ts, Engine.feedBytes): complete lines without a hint go out as the
 * bytes they came as, hinted lines are redacted together, the held line's ends go through the
 * string engine. It must release exactly what the string engine releases, push by push: the
 * tests compare the two (`byteScan: false` is the reference) on generated output, and check the
 * scan's answers against the hint regexes. Also: hold points found through the first-characters
 * table equal the patterns' own answers, and no start pattern takes quadratic time on a long line.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { RedactLevel } from '@ferry/protocol';
import { hintedLines, PERSONAL_BYTE_HINT } from '../src/redaction/byte-scan.js';
import { LINE_HOLD_CAP, type RedactorOptions } from '../src/redaction/engine.js';
import { PERSONAL_HINT, PERSONAL_STARTS } from '../src/redaction/personal-rules.js';
import { OutputRedactor } from '../src/redaction/redactor.js';
import { redactionMarker } from '../src/redaction/rules.js';
import { SECRET_HINT, SECRET_HINT_WORDS, SECRET_RULES, SECRET_STARTS } from '../src/redaction/secret-rules.js';
import { redactLines, stagesFor } from '../src/redaction/stages.js';
import { holdPoint, patternOf, type Start } from '../src/redaction/starts.js';
import { PERSONAL_SAMPLES } from './helpers/redaction-samples.js';

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const text = (b: Buffer) => b.toString('latin1');

/** Pieces output is made of: secrets and their fragments, personal data, markers, breaks, binary. */
const FRAGMENTS = [
  'ghp_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3HiJ',
  'AKIAIOSFODNN7EXAMPLE',
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.Sfl',
  'Authorization: Bearer abcdef0123456789xyz',
  'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  'postgres://admin:s3cr3t@db.example.com',
  '"private_key": "MIIEvQIB\\nADANB"',
  'AccountKey=Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi==',
  'sk-proj-Ab3De6Gh9Jk2Mn5Pq8St1Vw4',
  'npm_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8',
  'xoxb-1234567890-abc',
  'glpat-Ab3De6Gh9Jk2Mn5Pq8St',
  'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
  'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
  'ferry_u_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi9Ab3De6Gh9J',
  '-----BEGIN RSA PRIVATE KEY-----',
  '-----END RSA PRIVATE KEY-----',
  '---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----',
  ...PERSONAL_SAMPLES,
  '+44 20 7946 0958',
  ...['\n', '\r', '\r\n', ' ', '\t', '"', "'", '=', ':', '-', '--', '_', '@', '+', '(', ')', '.', '/', '12345', '1234 567'],
  ...['ey', 'sk', 'AK', 'Bearer ', 'session_token=', 'SECRET', '://', 'ghp_', 'INFO step done', '2026-11-29 12:00:01.5'],
  ...['a@-b.cc', 'x@y.zz', '@x.yy', 'a@', '+1 ', '+12', '+1.2', '(555)', '555.123', '1234-567'],
];

const fragment = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...FRAGMENTS) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...FRAGMENTS), fc.nat()).map(([f, n]) => f.slice(0, n % (f.length + 1))) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', '1', '-', ' ', 'x'), fc.nat({ max: 300 })).map(([c, n]) => c.repeat(n)) },
);
const output = fc.array(fragment, { maxLength: 50 }).map((parts) => parts.join(''));

/** A copy of `s` at an odd or even address (the scan reads aligned pairs; both must work). */
function bytesAt(s: string, odd: boolean): Buffer {
  const b = latin1(s);
  if (!odd) return Buffer.from(b);
  const big = Buffer.alloc(b.length + 1);
  b.copy(big, 1);
  return big.subarray(1);
}

/** Each push's release, then the flush: pieces of `sizes` bytes in turn, `partial` varying, maybe through the exported state. */
function releases(level: RedactLevel, input: Buffer, sizes: readonly number[], viaState: boolean, options: RedactorOptions): string[] {
  let redactor = new OutputRedactor(level, options);
  const out: string[] = [];
  for (let at = 0, i = 0; at < input.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    out.push(text(redactor.push(input.subarray(at, at + n), i % 3 !== 2)));
    if (viaState) redactor = OutputRedactor.fromState(level, redactor.exportState(), options);
    at += n;
  }
  out.push(text(redactor.flush()));
  return out;
}

describe('the byte path releases what the string engine releases', () => {
  test('property: push by push, at every level, chunking, alignment, cap, and through the exported state', () => {
    fc.assert(
      fc.property(
        output,
        fc.constantFrom<RedactLevel>('secrets', 'all'),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.boolean(),
        fc.option(fc.record({ lineHoldCap: fc.integer({ min: 16, max: 300 }), keyHoldCap: fc.integer({ min: 1, max: 300 }) }), { nil: undefined }),
        (s, level, sizes, viaState, odd, caps) => {
          const input = bytesAt(s, odd);
          const expected = releases(level, input, sizes, viaState, { ...caps, byteScan: false });
          assert.deepEqual(releases(level, input, sizes, viaState, { ...caps }), expected);
        },
      ),
      { numRuns: 1500 },
    );
  });

  test('a secret split across two uploads, with complete lines before and after it, is redacted whole and not shown early', () => {
    const token = 'ghp_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3HiJ';
    const before = 'line one\nline two with https://example.com/x\n\rprogress 10%\rtoken ';
    const after = ' done\nnext line\n\rprogress 20%';
    for (let i = 0; i <= token.length; i++) {
      const out = releases('secrets', latin1(before + token + after), [before.length + i, 10_000], false, {});
      assert.equal(out.join(''), `${before}[REDACTED:github-token]${after}`, `split at ${i}`);
      assert.ok(!(out[0] ?? '').includes('ghp_'), `split at ${i}: ${JSON.stringify(out[0])}`);
    }
  });

  test('complete lines go out at once and only the start of a possible match is held; \\r ends a line', () => {
    const redactor = new OutputRedactor('secrets');
    assert.equal(text(redactor.push(latin1('ok 1\nok 2\r[###  ] 40% key AKIA'))), 'ok 1\nok 2\r[###  ] 40% key ');
    assert.equal(redactor.heldBytes, 4);
    assert.equal(text(redactor.push(latin1('IOSFODNN7EXAMPLE\r[#### ] 60%'))), `${redactionMarker('aws-access-key')}\r[#### ] 60%`);
    assert.equal(redactor.heldBytes, 0);
  });

  test('binary output passes unchanged and a secret inside it is redacted; unchanged lines come back as the same bytes', () => {
    const noise = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 2654435761) >>> 24));
    const secret = latin1('\nAuthorization: Basic dXNlcjpwYXNzd29yZA==\n');
    const input = Buffer.concat([noise, secret, noise]);
    const expected = Buffer.concat(releases('secrets', input, [65_536], false, { byteScan: false }).map(latin1));
    const got = Buffer.concat(releases('secrets', input, [65_536], false, {}).map(latin1));
    assert.ok(got.equals(expected));
    assert.ok(got.includes(latin1(`Authorization: ${redactionMarker('authorization-header')}\n`)));
    assert.equal(got.length, input.length - 'Basic dXNlcjpwYXNzd29yZA=='.length + redactionMarker('authorization-header').length);
    // Lines without a hint are a view of the input, not a copy.
    const lines = latin1('plain line\n'.repeat(1000));
    const released = new OutputRedactor('secrets').push(lines);
    assert.equal(released.buffer, lines.buffer);
  });
});

describe('the byte scan finds exactly the hinted lines', () => {
  const secretHint = new RegExp(SECRET_HINT, 'i');
  const personalHint = new RegExp(PERSONAL_BYTE_HINT);
  const word = fc
    .constantFrom(...SECRET_HINT_WORDS.map(([w]) => w))
    .chain((w) =>
      fc.array(fc.boolean(), { minLength: w.length, maxLength: w.length }).map((up) => [...w].map((c, i) => (up[i] ? c.toUpperCase() : c)).join('')),
    );
  const noise = fc.uint8Array({ maxLength: 50 }).map((b) => Buffer.from(b).toString('latin1'));
  const personalBits = fc.constantFrom('@', '+', '(', ')', '1', '123', '-', '.', ' ', 'a', '_', 'x@y', '+1', '+44 ', '(555)', '\n');
  const lineText = fc.array(fc.oneof(noise, word, fc.constantFrom(...FRAGMENTS), personalBits, personalBits), { maxLength: 14 }).map((p) => p.join(''));

  test('property: a `\\n`-line is reported if and only if a secret hint or the personal byte hint is in it; its rules include every word found', () => {
    fc.assert(
      fc.property(lineText, fc.boolean(), fc.boolean(), (s, personal, odd) => {
        const end = s.lastIndexOf('\n') + 1 || s.length;
        const buf = bytesAt(s, odd);
        const got = hintedLines(buf, 0, end, personal);
        // It stops only at the start of a line in which a BEGIN marker starts, and never after one.
        const begin = /-----BEGIN |---- BEGIN SSH2/.exec(s.slice(0, end));
        if (got.stop < end) assert.ok(begin && got.stop <= begin.index, `stopped at ${got.stop} in ${JSON.stringify(s)}`);
        if (begin) assert.ok(got.stop <= begin.index, `went past a BEGIN marker at ${begin.index}: ${JSON.stringify(s)}`);
        const lines = s.slice(0, got.stop).split(/(?<=\n)/);
        const expected: number[] = [];
        let at = 0;
        for (const l of lines) {
          if (secretHint.test(l) || (personal && personalHint.test(l))) expected.push(at, at + l.length);
          at += l.length;
        }
        assert.deepEqual(got.lines, expected, JSON.stringify(s));
        for (const [w, rule] of SECRET_HINT_WORDS) {
          if (!s.slice(0, got.stop).toLowerCase().includes(w.toLowerCase())) continue;
          const i = SECRET_RULES.findIndex((r) => r.name === rule);
          assert.ok(got.rules & (2 ** i), `${rule} (${w}) missing from the rules of ${JSON.stringify(s)}`);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('property: a line the personal byte hint passes over is one no personal rule changes', () => {
    const personalish = fc
      .array(fc.constantFrom('@', '+', '(', ')', '1', '55', '123', '4567', '.', '-', ' ', 'a', 'b.c', 'x@y', '+1', '+44 ', 'ex.com', '\t'), { maxLength: 16 })
      .map((p) => p.join(''));
    const narrowed = new RegExp(PERSONAL_BYTE_HINT);
    // Without the prefilter: every personal rule runs on the line.
    const personal = stagesFor('all', false).slice(1);
    const wide = new RegExp(PERSONAL_HINT);
    let narrowedOut = 0;
    fc.assert(
      fc.property(personalish, (line) => {
        if (narrowed.test(line)) return;
        if (wide.test(line)) narrowedOut++;
        assert.equal(redactLines(personal, line), line, JSON.stringify(line));
      }),
      { numRuns: 3000 },
    );
    assert.ok(narrowedOut > 100, `only ${narrowedOut} lines had a personal hint the byte hint passes over`);
  });

  test("no rule's marker holds another rule's hint word (so passing over rules by the words found is exact)", () => {
    for (const rule of SECRET_RULES) {
      const marker = redactionMarker(rule.name).toLowerCase();
      for (const [w, owner] of SECRET_HINT_WORDS) {
        if (owner !== rule.name) assert.ok(!marker.includes(w.toLowerCase()), `${marker} holds ${w}, a hint for ${owner}`);
      }
    }
  });
});

describe('hold points', () => {
  /** The patterns' own answer: each run as a global regex from `from`, the leftmost wins. */
  function reference(starts: readonly RegExp[], s: string, from: number): number {
    let at = s.length;
    for (const re of starts) {
      re.lastIndex = from;
      const m = re.exec(s);
      if (m && m.index < at) at = m.index;
    }
    return at;
  }
  // The starts written as functions (linear time), as the patterns they stand for.
  const asPatterns = (starts: readonly Start[]): RegExp[] => starts.map(patternOf);
  const tail = fc
    .array(fc.oneof(fc.constantFrom(...FRAGMENTS), fc.constantFrom('a', 'b.c', '@', 'x@y.z', '1', ' ', '/', 'é')), { maxLength: 10 })
    .map((p) => p.join(''));

  test('property: found through the first-characters table, the same place as the patterns find', () => {
    const all = [...SECRET_STARTS, ...PERSONAL_STARTS];
    fc.assert(
      fc.property(tail, fc.nat(), (s, n) => {
        const from = s.length ? n % (s.length + 1) : 0;
        assert.equal(holdPoint(SECRET_STARTS, s, from), reference(asPatterns(SECRET_STARTS), s, from), JSON.stringify(s));
        assert.equal(holdPoint(all, s, from), reference(asPatterns(all), s, from), JSON.stringify(s));
      }),
      { numRuns: 3000 },
    );
  });

  test('adversarial lines a line cap long take milliseconds (a run of letters at level all took seconds, a repeated label a third of one)', () => {
    const n = LINE_HOLD_CAP - 100;
    const repeat = (s: string, end: string) => s.repeat(Math.floor(n / s.length)) + end;
    for (const line of [
      repeat('a', '/ '),
      repeat('eyJ.', '!'),
      repeat('authorization: x ', '"'),
      repeat('AccountKey=', '!'),
      repeat('sessiontoken=', '!'),
      repeat('awssecretkey=', '!'),
      repeat('bearer ', '!'),
      repeat('1234 567 ', 'x'),
      repeat('a.', '@b'),
    ]) {
      const redactor = new OutputRedactor('all');
      redactor.push(latin1('warm up\n'));
      const started = process.cpuUsage();
      redactor.push(latin1(line));
      redactor.push(latin1('x'));
      redactor.flush();
      const used = process.cpuUsage(started);
      const ms = (used.user + used.system) / 1000;
      assert.ok(ms < 150, `${ms} ms of CPU for ${line.slice(0, 20)}...`);
    }
  });
});
