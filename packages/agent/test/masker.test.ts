/**
 * The streaming secret masker: every form of a value, any chunking, merging of overlapping
 * matches, minimal hold-back, byte-exact pass-through of everything else (invalid UTF-8
 * included), wrapped base64/hex and the release rule, several streams masked together (a value
 * split across stdout and stderr), property tests against a brute-force reference, and
 * throughput figures. The forms as real tools print them are in masker.encodings.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { SecretMasker } from '../src/output/masker.js';
import { secretForms } from '../src/output/mask-forms.js';
import { bashPrintfQ } from '../src/output/form-encoders.js';
import type { MaskerStream } from '../src/output/masker-stream.js';
import { measureMaskerThroughput, sampleOutput, sampleSecrets } from '../../../bench/fixtures/masker-fixtures.mjs';
import { ByteAutomaton } from '../src/output/aho-corasick.js';
import { TurnCopies } from '../src/output/turn-copies.js';

const MASK = '***';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Pushes the chunks through a fresh stream and flushes; returns each push's output and the whole. */
function run(masker: SecretMasker, chunks: Buffer[]): { outs: Buffer[]; all: Buffer } {
  const s = masker.forStream();
  const outs = chunks.map((c) => s.push(c));
  outs.push(s.flush());
  return { outs, all: Buffer.concat(outs) };
}

function maskStr(values: string[], text: string | Buffer, chunks?: number[]): string {
  const data = typeof text === 'string' ? Buffer.from(text) : text;
  return run(new SecretMasker(values), split(data, chunks ?? [])).all.toString();
}

/** Cuts data at the given offsets (taken modulo length + 1, sorted, deduplicated). */
function split(data: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(data.subarray(prev, c));
    prev = c;
  }
  out.push(data.subarray(prev));
  return out;
}

// The reference model, written independently of the masker from its specification:
// - an exact form matches where its bytes occur;
// - a wrappable form (base64, hex) matches where its characters occur in order with runs of at
//   most 2 separator bytes (space, tab, CR, LF) between them, `-` standing for `+` and `_` for `/`;
//   its masked part starts after every line break that comes before its 8th character;
// - the union of all matches is masked, touching spans joined, one mask per union.
const SEPARATOR = new Set([0x20, 0x09, 0x0d, 0x0a]);
const canon = (b: number): number => (b === 0x2d ? 0x2b : b === 0x5f ? 0x2f : b);
const WRAP_MIN_CHARS = 8;

interface Forms {
  exact: Buffer[];
  wrappable: Buffer[];
}

/** Every byte pattern the masker should look for. */
function formsOf(values: string[], minLength = 6): Forms {
  const all = values.map((v) => secretForms(v, minLength));
  const uniq = (xs: string[]): Buffer[] => [...new Set(xs)].map((f) => Buffer.from(f));
  return { exact: uniq(all.flatMap((f) => f.exact)), wrappable: uniq(all.flatMap((f) => f.wrappable)) };
}
const allForms = (f: Forms): Buffer[] => [...f.exact, ...f.wrappable];

/** Where an occurrence of wrappable form p that starts at i ends, or -1 (a prefix: `partial`, ends at data's end). */
function wrappedEnd(data: Buffer, i: number, p: Buffer, partial = false): number {
  let q = i;
  for (let j = 0; j < p.length; j++) {
    let run = 0;
    while (j > 0 && q < data.length && SEPARATOR.has(data[q]!)) {
      run++;
      q++;
    }
    if (run > 2) return -1;
    if (q >= data.length) return partial ? q : -1;
    if (canon(data[q]!) !== p[j]) return -1;
    q++;
  }
  return partial ? -1 : q; // a whole form is a match, not a pending prefix
}

/** The release rule: the start of the masked part of a wrapped occurrence [a, e). */
function clipped(data: Buffer, a: number, e: number): number {
  let from = a;
  let chars = 0;
  for (let p = a; p < e;) {
    if (!SEPARATOR.has(data[p]!)) {
      chars++;
      if (chars >= WRAP_MIN_CHARS) return from;
      p++;
      continue;
    }
    let q = p;
    while (q < e && SEPARATOR.has(data[q]!)) q++;
    if (data.subarray(p, q).some((b) => b === 0x0a || b === 0x0d)) {
      from = q;
      chars = 0;
    }
    p = q;
  }
  return from;
}

/** Every region the reference masks. */
function regionsOf(data: Buffer, forms: Forms): [number, number][] {
  const spans: [number, number][] = [];
  for (const p of forms.exact) {
    for (let i = data.indexOf(p); i !== -1; i = data.indexOf(p, i + 1)) spans.push([i, i + p.length]);
  }
  for (const p of forms.wrappable) {
    for (let i = 0; i < data.length; i++) {
      const e = wrappedEnd(data, i, p);
      if (e !== -1) spans.push([clipped(data, i, e), e]);
    }
  }
  return spans;
}

/** Masks the union of the spans, touching spans joined, one mask each. */
function maskSpans(data: Buffer, spans: [number, number][], mask = MASK): Buffer {
  spans = [...spans].sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [a, b] of spans) {
    const last = merged[merged.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  const out: Buffer[] = [];
  let at = 0;
  for (const [a, b] of merged) {
    out.push(data.subarray(at, a), Buffer.from(mask));
    at = b;
  }
  out.push(data.subarray(at));
  return Buffer.concat(out);
}

/** Brute force: what the masker should output for the whole of `data`. */
function reference(data: Buffer, forms: Forms, mask = MASK): Buffer {
  return maskSpans(data, regionsOf(data, forms), mask);
}

/** How many bytes the masker should hold back after `data` when nothing in it matched. */
function referenceHeld(data: Buffer, forms: Forms): number {
  let safe = data.length;
  for (const p of forms.exact) {
    for (let l = Math.min(p.length - 1, data.length); l > data.length - safe; l--) {
      if (data.subarray(data.length - l).equals(p.subarray(0, l))) safe = data.length - l;
    }
  }
  for (let i = 0; i < data.length; i++) {
    if (SEPARATOR.has(data[i]!) || !forms.wrappable.some((p) => wrappedEnd(data, i, p, true) !== -1)) continue;
    safe = Math.min(safe, clipped(data, i, data.length));
    break; // the earliest start is the longest pending string
  }
  return data.length - safe;
}

/** The stable inner part of base64 (std) of `value` placed at byte offset k of a larger stream. */
function stableBase64(value: string, k: number): string {
  const n = Buffer.byteLength(value);
  const enc = Buffer.concat([Buffer.alloc(k, 0x78), Buffer.from(value)]).toString('base64');
  return enc.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + n)) / 6));
}
const toUrlSafe = (b64: string) => b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

// ---------------------------------------------------------------------------------------------
// Unit tests, one per form and behaviour

test('raw value: masked anywhere in the output, the rest unchanged', () => {
  const v = 'hunter2-secret';
  assert.equal(maskStr([v], `password=${v}\n`), 'password=***\n');
  assert.equal(maskStr([v], `${v}`), '***');
  assert.equal(maskStr([v], `${v} and ${v}!`), '*** and ***!');
  assert.equal(maskStr([v], 'nothing to see here\n'), 'nothing to see here\n');
  assert.equal(maskStr([v], 'hunter2-secre hunter2-secreT'), 'hunter2-secre hunter2-secreT');
});

test('raw value split across pushes at every possible split point (2 and 3 pieces, and byte by byte)', () => {
  const v = 'sk_live_4f9a8b7c6d5e';
  const masker = new SecretMasker([v]);
  const text = Buffer.from(`token: ${v} (expires soon) ${v}`);
  const expected = 'token: *** (expires soon) ***';
  for (let i = 0; i <= text.length; i++) {
    assert.equal(run(masker, [text.subarray(0, i), text.subarray(i)]).all.toString(), expected, `split at ${i}`);
  }
  for (let i = 0; i <= text.length; i++) {
    for (let j = i; j <= text.length; j++) {
      assert.equal(run(masker, [text.subarray(0, i), text.subarray(i, j), text.subarray(j)]).all.toString(), expected);
    }
  }
  const bytes = [...text].map((b) => Buffer.from([b]));
  assert.equal(run(masker, bytes).all.toString(), expected);
});

test('four-lane scan of large chunks: values on and near lane boundaries, in every lane', () => {
  const v = 'lane-boundary-secret';
  const masker = new SecretMasker([v, 'other-secret-12345'], { laneMinBytes: 4 });
  const filler = Buffer.from('plain log text with some lane- and secret- prefixes; ');
  for (const total of [64, 65, 66, 67, 200, 4099]) {
    const q = total >> 2;
    const base = Buffer.alloc(total);
    for (let i = 0; i < total; i++) base[i] = filler[i % filler.length]!;
    for (const lane of [0, 1, 2, 3]) {
      for (let d = -v.length - 1; d <= 2; d++) {
        const at = lane * q + d;
        if (at < 0 || at + v.length > total) continue;
        const input = Buffer.from(base);
        input.write(v, at);
        const expected = reference(input, formsOf([v, 'other-secret-12345']));
        assert.deepEqual(run(masker, [input]).all, expected, `total ${total} lane ${lane} d ${d}`);
        assert.deepEqual(run(masker, [input.subarray(0, 7), input.subarray(7)]).all, expected);
      }
    }
  }
});

test('hold-back is exactly the longest suffix that is a prefix of some form, nothing else is delayed', () => {
  const v = 'correct-horse-battery';
  const masker = new SecretMasker([v]);
  const forms = formsOf([v]);
  const s = masker.forStream();
  let consumed = Buffer.alloc(0);
  let emitted = Buffer.alloc(0);
  for (const piece of ['log line one\n', 'the value is corr', 'ect-hor', 'se-batter', 'x and then cor', 'rect', '\n', 'done']) {
    consumed = Buffer.concat([consumed, Buffer.from(piece)]);
    emitted = Buffer.concat([emitted, s.push(Buffer.from(piece))]);
    const held = referenceHeld(consumed, forms);
    assert.equal(s.heldBytes, held, `after ${JSON.stringify(piece)}`);
    assert.deepEqual(emitted, consumed.subarray(0, consumed.length - held));
  }
  emitted = Buffer.concat([emitted, s.flush()]);
  assert.deepEqual(emitted, consumed);
  // A complete value in the middle of a push: the text after it comes out at once.
  const t = masker.forStream();
  assert.equal(t.push(Buffer.from(`a ${v} b\n`)).toString(), 'a *** b\n');
  assert.equal(t.heldBytes, 0);
  assert.equal(t.flush().length, 0);
});

test('multi-line value: each line masked, and the whitespace-normalized value', () => {
  const v = 'first-line-secret\r\nsecond-line-secret\n   third-line-secret  \nab\n';
  const m = new SecretMasker([v]);
  assert.equal(m.maskString(`raw: ${v}`), 'raw: ***');
  assert.equal(m.maskString('got first-line-secret\ngot second-line-secret\ngot third-line-secret\n'), 'got ***\ngot ***\ngot ***\n');
  assert.equal(m.maskString('[first-line-secret second-line-secret third-line-secret ab]'), '[***]'); // echo $X
  assert.equal(m.maskString('ab cd ab'), 'ab cd ab'); // a line too short to mask on its own
  assert.ok(secretForms(v).exact.includes('first-line-secret second-line-secret third-line-secret ab'));
  assert.ok(!secretForms(v).exact.includes('ab'));
  // A single-line value with a trailing newline (read from a file) is masked without it too.
  assert.equal(maskStr(['value-from-file\n'], 'echo value-from-file;'), 'echo ***;');
});

test('base64, standard and URL-safe, at all three alignments (the stable part never appears)', () => {
  const v = 'p4ss>>w0rd??~~ÿþ-secret'; // encodes with '+' and '/' at every alignment
  const m = new SecretMasker([v]);
  for (let k = 0; k < 3; k++) {
    const stable = stableBase64(v, k);
    assert.ok(/[+/]/.test(stable), `alignment ${k} should exercise the URL-safe alphabet`);
    for (const prefix of [Buffer.alloc(k, 0x78), randomBytes(k), Buffer.from('user:'.slice(0, k))]) {
      for (const suffix of ['', 'x', 'xy', 'xyz', '\u0000\u00ff']) {
        const plain = Buffer.concat([prefix, Buffer.from(v), Buffer.from(suffix)]);
        const std = plain.toString('base64');
        const url = toUrlSafe(std);
        const out = m.maskString(`Authorization: Basic ${std}\nurl=${url}\n`);
        assert.ok(!out.includes(stable), `std k=${k} ${JSON.stringify(out)}`);
        assert.ok(!out.includes(toUrlSafe(stable)), `url k=${k} ${JSON.stringify(out)}`);
        assert.ok(out.startsWith('Authorization: Basic ') && out.includes('***'));
      }
    }
  }
  // Embedded at every offset of a larger base64 document (e.g. a kubectl secret manifest).
  for (let pad = 0; pad < 6; pad++) {
    const doc = Buffer.from(`${'-'.repeat(pad)}{"user":"deploy","password":"${v}","port":5432}`).toString('base64');
    const out = maskStr([v], `data: ${doc}\n`, [7, 19, 33]);
    for (let k = 0; k < 3; k++) assert.ok(!out.includes(stableBase64(v, k)));
    assert.ok(out.includes('***'));
  }
  // The spec's example shapes.
  for (const pre of ['', 'x', 'xx']) {
    const stable = stableBase64(v, pre.length);
    assert.ok(!maskStr([v], Buffer.from(pre + v).toString('base64')).includes(stable));
    assert.ok(!maskStr([v], Buffer.from(pre + v).toString('base64url')).includes(toUrlSafe(stable)));
  }
});

test('base64 forms too short to be safe are skipped; the raw value is still masked', () => {
  const { exact, wrappable } = secretForms('abcdef');
  for (const f of [...exact, ...wrappable]) assert.ok(f.length >= 6, f);
  assert.ok(exact.includes('abcdef'));
  assert.ok(wrappable.includes('YWJjZGVm')); // alignment 0, 8 characters
  assert.ok(!wrappable.includes('YmNkZWY')); // 'bcdef' (the value without its first byte) is shorter than 6
  assert.equal(new Set(exact).size, exact.length);
  assert.equal(new Set(wrappable).size, wrappable.length);
});

test('URL-encoded: encodeURIComponent, + for space, and form encoding', () => {
  const v = "p@ss w/rd&x=1?ö!'()~";
  const m = new SecretMasker([v]);
  const forms = [encodeURIComponent(v), encodeURIComponent(v).replace(/%20/g, '+'), new URLSearchParams({ t: v }).toString().slice(2)];
  assert.equal(new Set(forms).size, 3);
  for (const f of forms) {
    assert.equal(m.maskString(`GET https://example.com/cb?token=${f}&next=1 200`), 'GET https://example.com/cb?token=***&next=1 200');
  }
});

test('JSON-escaped: JSON.stringify without quotes, and the ASCII-only / Go / PHP variants', () => {
  const v = 'he said "hi" \\ C:\\path\n\ttab é €/<x>&';
  const m = new SecretMasker([v]);
  assert.equal(m.maskString(JSON.stringify({ password: v, n: 1 })), '{"password":"***","n":1}');
  const python = JSON.stringify(v)
    .slice(1, -1)
    .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  assert.equal(m.maskString(`{"password": "${python}"}`), '{"password": "***"}');
  const go = JSON.stringify(v).slice(1, -1).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  assert.equal(m.maskString(`{"password":"${go}"}`), '{"password":"***"}');
  const php = JSON.stringify(v).slice(1, -1).replace(/\//g, '\\/');
  assert.equal(m.maskString(`{"password":"${php}"}`), '{"password":"***"}');
});

test("shell-quoted: '...' with '\\'' escapes, and bash printf %q", () => {
  const v = "it's a s3cret; $HOME & more";
  const m = new SecretMasker([v]);
  const single = `'${v.replace(/'/g, `'\\''`)}'`;
  assert.equal(single, `'it'\\''s a s3cret; $HOME & more'`);
  assert.equal(m.maskString(`+ curl -u ${single} https://x\n`), "+ curl -u '***' https://x\n");
  const q = bashPrintfQ(v);
  assert.equal(q, "it\\'s\\ a\\ s3cret\\;\\ \\$HOME\\ \\&\\ more");
  assert.equal(m.maskString(`exec env X=${q} cmd`), 'exec env X=*** cmd');
  // $'...' style for values with control characters: only the inside is a form.
  assert.equal(bashPrintfQ("tab\there\u001b[0m'"), "tab\\there\\E[0m\\'");
  assert.equal(maskStr(['line1-secret\nline2'], "X=$'line1-secret\\nline2'"), "X=$'***'");
  assert.equal(bashPrintfQ('#x~y:~z=~'), '\\#x~y:\\~z=\\~');
});

test('bashPrintfQ agrees with the real bash on random values', (t) => {
  const probe = spawnSync('bash', ['-c', 'printf %q x'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip('no bash on this host');
    return;
  }
  const unit = fc.constantFrom(...Array.from('aZ09 !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~\t\n\r\u001b\u0001\u007f\u0085\u00a0\u2028\u0e00\u200béé€😀'));
  const values = fc.sample(fc.string({ unit, minLength: 1, maxLength: 12 }), { numRuns: 300, seed: 42 });
  const res = spawnSync('bash', ['-c', 'for a in "$@"; do printf "%q\\0" "$a"; done', '_', ...values], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C.UTF-8' },
  });
  assert.equal(res.status, 0, res.stderr);
  const got = res.stdout.split('\0').slice(0, -1);
  assert.equal(got.length, values.length);
  values.forEach((v, i) => {
    const ours = bashPrintfQ(v);
    const expected = got[i]!;
    assert.ok(expected === ours || expected === `$'${ours}'`, `${JSON.stringify(v)}: bash ${expected}, ours ${ours}`);
  });
});

test('overlapping and adjacent matches merge into one mask', () => {
  const a = 'abcdefgh';
  const b = 'efghijkl';
  assert.equal(maskStr([a, b], 'xx abcdefghijkl yy'), 'xx *** yy'); // overlap
  assert.equal(maskStr([a, b], 'xx abcdefghefghijkl yy'), 'xx *** yy'); // adjacent
  assert.equal(maskStr([a, b], 'xx abcdefghabcdefgh yy'), 'xx *** yy'); // same value twice, adjacent
  assert.equal(maskStr([a, b], 'xx abcdefgh-efghijkl yy'), 'xx ***-*** yy'); // one byte apart: two masks
  assert.equal(maskStr([a, 'cdefgh'], 'xx abcdefgh yy cdefgh'), 'xx *** yy ***'); // nested
  assert.equal(maskStr(['bcdefg', 'abcdefghij'], '_abcdefghij_'), '_***_'); // shorter one seen first
  assert.equal(maskStr(['ghijkl', 'abcdefghi', 'defghijklmnop'], '<abcdefghijklmnop>'), '<***>'); // chain
  const masker = new SecretMasker([a, b, 'ijklmnop']);
  const text = Buffer.from('1 abcdefghijklmnop 2 efghijklabcdefgh 3');
  for (let i = 0; i <= text.length; i++) {
    for (let j = i; j <= text.length; j += 3) {
      assert.equal(run(masker, [text.subarray(0, i), text.subarray(i, j), text.subarray(j)]).all.toString(), '1 *** 2 *** 3');
    }
  }
});

test('values shorter than 6 characters are not masked and are reported by index', () => {
  const m = new SecretMasker(['abc', 'long-enough-secret', '', '12345', '123456', 'abc']);
  assert.deepEqual(m.skipped, [0, 2, 3, 5]);
  assert.equal(m.maskString('abc 12345 123456 long-enough-secret'), 'abc 12345 *** ***');
  const none = new SecretMasker(['short']);
  assert.deepEqual(none.skipped, [0]);
  assert.equal(none.patternCount, 0);
  const custom = new SecretMasker(['abc', 'abcd'], { minLength: 4, mask: '[masked]' });
  assert.deepEqual(custom.skipped, [0]);
  assert.equal(custom.maskString('abc abcd'), 'abc [masked]');
});

test('invalid UTF-8 passes through unchanged, also around a masked value', () => {
  const v = 'secret-π-value';
  const junk = Buffer.from([0xff, 0xfe, 0x80, 0xc3, 0x28, 0x61, 0xed, 0xa0, 0x80, 0xf0, 0x9f, 0x98]);
  const m = new SecretMasker([v]);
  for (let i = 0; i <= junk.length; i++) assert.deepEqual(run(m, [junk.subarray(0, i), junk.subarray(i)]).all, junk);
  const input = Buffer.concat([junk, Buffer.from(v), junk, Buffer.from(v).subarray(0, 8), junk]);
  const expected = Buffer.concat([junk, Buffer.from(MASK), junk, Buffer.from(v).subarray(0, 8), junk]);
  for (let i = 0; i <= input.length; i++) assert.deepEqual(run(m, [input.subarray(0, i), input.subarray(i)]).all, expected);
  // A value split inside a multi-byte character.
  const pi = Buffer.from(v).indexOf(0x80);
  assert.deepEqual(run(m, [Buffer.from(v).subarray(0, pi), Buffer.from(v).subarray(pi)]).all.toString(), MASK);
});

test('no maskable value: push returns the very chunk, flush nothing', () => {
  for (const values of [[], ['short'], ['']]) {
    const m = new SecretMasker(values);
    const s = m.forStream();
    const chunk = randomBytes(1000);
    assert.equal(s.push(chunk), chunk);
    assert.equal(s.flush().length, 0);
    assert.equal(m.push(chunk), chunk);
  }
});

test('streams from one masker are independent; flush resets a stream for reuse; the masker has a default stream', () => {
  const v = 'shared-automaton-secret';
  const m = new SecretMasker([v], { mask: '<hidden>' });
  const out: MaskerStream = m.forStream();
  const err: MaskerStream = m.forStream();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  o.push(out.push(Buffer.from('out: shared-auto')));
  e.push(err.push(Buffer.from('err: maton-secret '))); // would complete the value only if state leaked across streams
  o.push(out.push(Buffer.from('maton-secret!')));
  e.push(err.push(Buffer.from('shared-automaton-secret')));
  o.push(out.flush());
  e.push(err.flush());
  assert.equal(Buffer.concat(o).toString(), 'out: <hidden>!');
  assert.equal(Buffer.concat(e).toString(), 'err: maton-secret <hidden>');
  assert.equal(Buffer.concat([out.push(Buffer.from(`again ${v}`)), out.flush()]).toString(), 'again <hidden>');
  assert.equal(Buffer.concat([m.push(Buffer.from(`default ${v.slice(0, 5)}`)), m.push(Buffer.from(v.slice(5))), m.flush()]).toString(), 'default <hidden>');
});

test('long values (certificate-sized) with a tiny dense table: masked, every form, any chunking', () => {
  const body = randomBytes(1800)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n');
  const pem = `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
  for (const denseBudget of [1, 64, undefined]) {
    const m = new SecretMasker([pem, 'another-secret-value'], { denseBudget });
    const text = Buffer.from(`cat key.pem:\n${pem}json: ${JSON.stringify({ key: pem })}\nb64: ${Buffer.from(pem).toString('base64')}\n`);
    const expected = reference(text, formsOf([pem, 'another-secret-value']));
    for (const cuts of [[], [100, 1000, 2500], Array.from({ length: 60 }, (_, i) => i * 97)]) {
      assert.deepEqual(run(m, split(text, cuts)).all, expected);
    }
    const out = run(m, [text]).all.toString();
    for (const line of pem.split('\n')) if (line.length >= 6) assert.ok(!out.includes(line), line);
  }
});

// ---------------------------------------------------------------------------------------------
// Property tests

const secretUnit = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...'abcdefghXYZ0189-_.'.split('')) },
  { weight: 1, arbitrary: fc.constantFrom(' ', '\n', '\t', "'", '"', '\\', '/', '+', '=', '%', '&', '?', 'é', '€', '😀') },
);
/** 1 to 3 values; no '*' in them, so the mask text can never help spell one. */
const secretsArb = fc.array(fc.string({ unit: secretUnit, minLength: 6, maxLength: 18 }), { minLength: 1, maxLength: 3 });

type Piece =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'noise'; text: string }
  | { kind: 'form'; pick: number }
  | { kind: 'partial'; pick: number; cut: number }
  | { kind: 'wrapped'; pick: number; breaks: { at: number; sep: string }[] };
/** Near misses: base64/hex characters and separators. */
const noiseArb = fc.string({ unit: fc.constantFrom(...'YWJjZGV6162aAbB+/-_=\n\n  \t\r'.split('')), maxLength: 12 });
const sepArb = fc.constantFrom('\n', '\r\n', '\n ', ' ', '  ', '\t', '\n\n\n', '   ');
const pieceArb: fc.Arbitrary<Piece> = fc.oneof(
  fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 12 }) }),
  fc.record({ kind: fc.constant('noise' as const), text: noiseArb }),
  fc.record({ kind: fc.constant('form' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('partial' as const), pick: fc.nat(), cut: fc.nat() }),
  fc.record({ kind: fc.constant('wrapped' as const), pick: fc.nat(), breaks: fc.array(fc.record({ at: fc.nat(), sep: sepArb }), { maxLength: 4 }) }),
);
const cutsArb = fc.array(fc.nat({ max: 10_000 }), { maxLength: 10 });

function assemble(pieces: Piece[], forms: Forms): Buffer {
  const all = allForms(forms);
  return Buffer.concat(
    pieces.map((p) => {
      switch (p.kind) {
        case 'bytes':
          return Buffer.from(p.bytes);
        case 'noise':
          return Buffer.from(p.text);
        case 'form':
          return all[p.pick % all.length]!;
        case 'partial': {
          const f = all[p.pick % all.length]!;
          return f.subarray(0, p.cut % f.length); // a proper prefix
        }
        case 'wrapped': {
          if (forms.wrappable.length === 0) return Buffer.alloc(0);
          const f = forms.wrappable[p.pick % forms.wrappable.length]!.toString('latin1');
          const at = [...new Set(p.breaks.map((b) => (b.at % (f.length - 1)) + 1))].sort((a, b) => a - b);
          let text = '';
          let prev = 0;
          at.forEach((a, i) => {
            text += f.slice(prev, a) + p.breaks[i]!.sep;
            prev = a;
          });
          return Buffer.from(text + f.slice(prev), 'latin1');
        }
      }
    }),
  );
}

/** True if some form occurs in `out` as the reference would match it. */
function anyFormIn(out: Buffer, forms: Forms): Buffer | undefined {
  for (const p of forms.exact) if (out.includes(p)) return p;
  for (const p of forms.wrappable) for (let i = 0; i < out.length; i++) if (wrappedEnd(out, i, p) !== -1) return p;
  return undefined;
}

test('property: no registered value or form survives, whatever the chunking', () => {
  fc.assert(
    fc.property(secretsArb, fc.array(pieceArb, { maxLength: 14 }), cutsArb, (values, pieces, cuts) => {
      const forms = formsOf(values);
      fc.pre(allForms(forms).length > 0);
      const input = assemble(pieces, forms);
      const out = run(new SecretMasker(values), split(input, cuts)).all;
      for (const v of values) assert.ok(!out.includes(Buffer.from(v)), `value ${JSON.stringify(v)} in ${JSON.stringify(out.toString('latin1'))}`);
      const left = anyFormIn(out, forms);
      assert.equal(left, undefined, `form ${JSON.stringify(left?.toString())} in ${JSON.stringify(out.toString('latin1'))}`);
    }),
    { numRuns: 1500 },
  );
});

test('property: output without secrets passes byte-for-byte, holding back only a pending prefix', () => {
  fc.assert(
    fc.property(
      secretsArb,
      fc.array(
        pieceArb.filter((p) => p.kind !== 'form' && p.kind !== 'wrapped'),
        { maxLength: 14 },
      ),
      cutsArb,
      (values, pieces, cuts) => {
        const forms = formsOf(values);
        fc.pre(allForms(forms).length > 0);
        const input = assemble(pieces, forms);
        fc.pre(regionsOf(input, forms).length === 0);
        const s = new SecretMasker(values).forStream();
        let consumed = 0;
        let emitted: Buffer[] = [];
        for (const chunk of split(input, cuts)) {
          emitted.push(s.push(chunk));
          consumed += chunk.length;
          const held = referenceHeld(input.subarray(0, consumed), forms);
          const sofar = Buffer.concat(emitted);
          emitted = [sofar];
          assert.equal(s.heldBytes, held);
          assert.deepEqual(sofar, input.subarray(0, consumed - held));
        }
        assert.deepEqual(Buffer.concat([...emitted, s.flush()]), input);
      },
    ),
    { numRuns: 1500 },
  );
});

test('property: output is independent of chunk boundaries and equals the brute-force reference', () => {
  fc.assert(
    fc.property(secretsArb, fc.array(pieceArb, { maxLength: 14 }), cutsArb, cutsArb, fc.constantFrom(4, 4096), (values, pieces, cuts1, cuts2, laneMinBytes) => {
      const forms = formsOf(values);
      fc.pre(allForms(forms).length > 0);
      const input = assemble(pieces, forms);
      const m = new SecretMasker(values, { laneMinBytes });
      const a = run(m, split(input, cuts1)).all;
      const b = run(m, split(input, cuts2)).all;
      assert.deepEqual(a, b);
      assert.deepEqual(a, reference(input, forms));
    }),
    { numRuns: 1500 },
  );
});

test('property: dense overlaps (tiny alphabet, short values, tiny dense table, four-lane scan) still equal the reference', () => {
  const small = fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c'), minLength: 2, maxLength: 8 }), { minLength: 1, maxLength: 6 });
  const text = fc.array(fc.constantFrom(...'aabbc-YWJi6162\n '.split('')), { maxLength: 60 }).map((cs) => Buffer.from(cs.join('')));
  fc.assert(
    fc.property(small, text, cutsArb, fc.constantFrom(1, 1, 8, 1 << 20), fc.constantFrom(4, 4, 4096), (values, input, cuts, denseBudget, laneMinBytes) => {
      const m = new SecretMasker(values, { minLength: 2, denseBudget, laneMinBytes });
      const out = run(m, split(input, cuts)).all;
      assert.deepEqual(out, reference(input, formsOf(values, 2)));
      assert.deepEqual(out, run(m, [input]).all);
    }),
    { numRuns: 3000 },
  );
});

// ---------------------------------------------------------------------------------------------
// Several streams masked together (stdout and stderr of one task)

type Push = [stream: 'out' | 'err', bytes: Buffer];
/** The chunks read in one event-loop turn, in read order. */
type Turn = Push[];
/** A turn, a bare push (a turn of its own), or a tick of the clock. */
type Step = Turn | Push | 'tick';

const asTurn = (t: Turn | Push): Turn => (typeof t[0] === 'string' ? [t as Push] : (t as Turn));

/**
 * Runs the steps through a fresh group (each chunk cut at the given offsets: more chunks, same
 * turn), ends the streams; returns each stream's output.
 */
function runGroup(m: SecretMasker, steps: Step[], cuts: number[] = [], endFirst: 'out' | 'err' = 'out', borrowed = false): Record<'out' | 'err', Buffer> {
  const g = m.forStreams(['out', 'err'] as const);
  const got: Record<'out' | 'err', Buffer[]> = { out: [], err: [] };
  // What the masker returns is written out at once by the task runner: copied here, as it may be a view of the turn's store.
  const take = (r: ['out' | 'err', Buffer][]): void => r.forEach(([id, b]) => got[id].push(Buffer.from(b)));
  const turn = new TurnCopies<'out' | 'err'>();
  let scribble = 0;
  for (const step of steps) {
    if (step === 'tick') take(g.tick());
    else if (!borrowed) take(g.pushTurn(asTurn(step).flatMap(([id, bytes]) => split(bytes, cuts).map((c): Push => [id, c]))));
    else {
      // As the task runner gets them: each chunk a view of one read buffer the next read overwrites, copied into the turn.
      for (const [id, bytes] of asTurn(step)) {
        for (const c of split(bytes, cuts)) {
          const read = BORROWED_READ.subarray(0, c.length);
          c.copy(read);
          turn.add(id, read);
          read.fill(0x7e);
        }
      }
      const parts = turn.take();
      scribble = parts.reduce((n, [, b]) => n + b.length, 0);
      take(g.pushTurn(parts));
      // The next turn's copies overwrite this one's: nothing the masker kept may still point into them.
      turn.add('out', Buffer.alloc(scribble, 0x7e));
      turn.take();
    }
  }
  take(g.end(endFirst));
  take(g.end(endFirst === 'out' ? 'err' : 'out'));
  return { out: Buffer.concat(got.out), err: Buffer.concat(got.err) };
}

/** The pipes' shared read buffer, as executor/pipe-reader.ts lends it. */
const BORROWED_READ = Buffer.alloc(1 << 20);

const isLineBreak = (b: number | undefined): boolean => b === 0x0a || b === 0x0d;

/** Characters of wrappable form p matched by all of data[i..] (a prefix of p, separator runs of at most 2 skipped), or -1. */
function projectedPrefix(data: Buffer, i: number, p: Buffer): number {
  let chars = 0;
  let run = 0;
  for (let k = i; k < data.length; k++) {
    if (SEPARATOR.has(data[k]!)) {
      if (chars === 0 || ++run > 2) return -1;
      continue;
    }
    run = 0;
    if (chars >= p.length || canon(data[k]!) !== p[chars]) return -1;
    chars++;
  }
  return chars;
}

/** The most characters of a form (its beginning) that `data` ends with: the automata's depth at its end. */
function formPrefixEnds(data: Buffer, forms: Forms): number {
  let best = 0;
  for (const p of forms.exact) {
    for (let l = Math.min(p.length, data.length); l > best; l--) if (data.subarray(data.length - l).equals(p.subarray(0, l))) best = l;
  }
  for (let i = 0; i < data.length; i++) for (const p of forms.wrappable) best = Math.max(best, projectedPrefix(data, i, p));
  return best;
}

/**
 * Brute force for several streams: each stream's own matches, and every match across a seam:
 * X[..p) ++ Y[q..] where p is a write end of a part of X (its end; inside it, just before a line
 * break where 3 or more characters of a form end, or anywhere 8 or more do), q a write start of
 * a part of Y (its start, or just after a line break inside it), the parts read with at most one
 * tick between.
 */
function referenceGroup(steps: Step[], forms: Forms): Record<'out' | 'err', Buffer> {
  const data = { out: Buffer.alloc(0), err: Buffer.alloc(0) };
  const parts: { id: 'out' | 'err'; start: number; end: number; turn: number; tick: number }[] = [];
  let turn = 0;
  let tick = 0;
  for (const step of steps) {
    if (step === 'tick') tick++;
    if (step === 'tick' || asTurn(step).every(([, b]) => b.length === 0)) continue;
    turn++;
    for (const [id, b] of asTurn(step)) {
      if (b.length === 0) continue;
      const part = parts.find((p) => p.id === id && p.turn === turn);
      if (part) part.end += b.length;
      else parts.push({ id, start: data[id].length, end: data[id].length + b.length, turn, tick });
      data[id] = Buffer.concat([data[id], b]);
    }
  }
  const spans: Record<'out' | 'err', [number, number][]> = { out: regionsOf(data.out, forms), err: regionsOf(data.err, forms) };
  for (const xp of parts) {
    for (const yp of parts) {
      if (xp.id === yp.id || Math.abs(xp.tick - yp.tick) > 1) continue;
      const x = data[xp.id];
      const y = data[yp.id];
      const ends = [xp.end];
      for (let p = xp.start + 1; p < xp.end; p++) {
        const depth = formPrefixEnds(x.subarray(0, p), forms);
        if ((isLineBreak(x[p]) && !isLineBreak(x[p - 1]) && depth >= 3) || depth >= 8) ends.push(p);
      }
      const starts = [yp.start];
      for (let q = yp.start + 1; q < yp.end; q++) if (isLineBreak(y[q - 1]) && !isLineBreak(y[q])) starts.push(q);
      for (const p of ends) {
        for (const q of starts) {
          for (const [a, b] of regionsOf(Buffer.concat([x.subarray(0, p), y.subarray(q)]), forms)) {
            if (a < p) spans[xp.id].push([a, Math.min(b, p)]);
            if (b > p) spans[yp.id].push([q + Math.max(a, p) - p, q + b - p]);
          }
        }
      }
    }
  }
  return { out: maskSpans(data.out, spans.out), err: maskSpans(data.err, spans.err) };
}

test('a value split across stdout and stderr is masked on both; one interrupted by the other stream is masked on its own', () => {
  const v = 'hunter2-Correct-Horse-Battery-9';
  const m = new SecretMasker([v]);
  // printf %s "${S:0:10}"; printf %s "${S:10}" >&2
  assert.deepEqual(
    runGroup(m, [
      ['out', Buffer.from(`x ${v.slice(0, 10)}`)],
      ['err', Buffer.from(`${v.slice(10)} y`)],
    ]),
    {
      out: Buffer.from('x ***'),
      err: Buffer.from('*** y'),
    },
  );
  // A stderr line between two writes of one value on stdout.
  assert.deepEqual(
    runGroup(m, [
      ['out', Buffer.from(v.slice(0, 12))],
      ['err', Buffer.from('warning: slow\n')],
      ['out', Buffer.from(`${v.slice(12)}\n`)],
    ]),
    {
      out: Buffer.from('***\n'),
      err: Buffer.from('warning: slow\n'),
    },
  );
  // Its base64 split the same way (the head on stderr this time).
  const b64 = Buffer.from(v).toString('base64');
  const r = runGroup(m, [
    ['err', Buffer.from(`b64: ${b64.slice(0, 9)}`)],
    ['out', Buffer.from(`${b64.slice(9)}\n`)],
  ]);
  const unstable = b64.slice(Math.floor((8 * Buffer.byteLength(v)) / 6)); // the last character mixes in the padding
  assert.deepEqual(r, { out: Buffer.from(`***${unstable}\n`), err: Buffer.from('b64: ***') });
});

test('a value split across the streams is masked on both, whatever the reads joined and in whichever order they came', () => {
  const v = 'hunter2-Correct-Horse-Battery-9';
  const m = new SecretMasker([v]);
  for (const turn of [
    [
      ['err', Buffer.from(`${v.slice(10)}\n`)],
      ['out', Buffer.from(`== step\n${v.slice(0, 10)}`)],
    ],
    [
      ['out', Buffer.from(`== step\n${v.slice(0, 10)}`)],
      ['err', Buffer.from(`${v.slice(10)}\n`)],
    ],
  ] as Turn[]) {
    assert.deepEqual(runGroup(m, [turn, ['out', Buffer.from('\n')]]), { out: Buffer.from('== step\n***\n'), err: Buffer.from('***\n') });
  }
  // The head read together with what stdout wrote after the tail (the `echo`), the tail in the next turn.
  assert.deepEqual(
    runGroup(m, [
      ['out', Buffer.from(`== step\n${v.slice(0, 10)}\nok\n`)],
      ['err', Buffer.from(`${v.slice(10)}\n`)],
    ]),
    {
      out: Buffer.from('== step\n***\nok\n'),
      err: Buffer.from('***\n'),
    },
  );
  // The head ending inside a read that goes on with a later write of its stream.
  assert.deepEqual(
    runGroup(m, [
      ['err', Buffer.from(`${v.slice(0, 12)}more\n`)],
      ['out', Buffer.from(`${v.slice(12)}\n`)],
    ]),
    {
      out: Buffer.from('***\n'),
      err: Buffer.from('***more\n'),
    },
  );
  // Parts with a tick between are still joined; with two, not.
  assert.deepEqual(runGroup(m, [['out', Buffer.from(`x ${v.slice(0, 10)}`)], 'tick', ['err', Buffer.from(v.slice(10))]]), {
    out: Buffer.from('x ***'),
    err: Buffer.from('***'),
  });
  assert.deepEqual(runGroup(m, [['out', Buffer.from(`x ${v.slice(0, 10)}`)], 'tick', 'tick', ['err', Buffer.from(v.slice(10))]]), {
    out: Buffer.from(`x ${v.slice(0, 10)}`),
    err: Buffer.from(v.slice(10)),
  });
});

test('property: turns, reads that join writes, ticks: equal to the reference over every seam', () => {
  const fragmentArb = fc.record({
    piece: pieceArb.filter((p) => p.kind === 'form' || p.kind === 'wrapped'),
    cuts: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
    streams: fc.array(fc.constantFrom('out' as const, 'err' as const), { minLength: 4, maxLength: 4 }),
    noise: fc.array(fc.option(fc.tuple(fc.constantFrom('out' as const, 'err' as const), noiseArb), { freq: 2 }), { minLength: 4, maxLength: 4 }),
  });
  fc.assert(
    fc.property(
      secretsArb,
      fc.array(fragmentArb, { minLength: 1, maxLength: 2 }),
      fc.array(fc.boolean(), { maxLength: 16 }),
      cutsArb,
      (values, fragments, breaks, cuts) => {
        const forms = formsOf(values);
        fc.pre(allForms(forms).length > 0);
        const pushes: Push[] = [];
        for (const f of fragments) {
          split(assemble([f.piece], forms), f.cuts).forEach((part, i) => {
            pushes.push([f.streams[i]!, part]);
            const n = f.noise[i];
            if (n) pushes.push([n[0], Buffer.from(n[1])]);
          });
        }
        // Group consecutive pushes into turns (a new turn where `breaks` says so), with a tick now and then.
        const turns: Step[] = [];
        pushes.forEach((p, i) => {
          const b = breaks.length === 0 ? true : breaks[i % breaks.length]!;
          if (i > 0 && !b) (turns[turns.length - 1] as Turn).push(p);
          else {
            if (i % 3 === 2) turns.push('tick');
            turns.push([p]);
          }
        });
        const m = new SecretMasker(values, { laneMinBytes: 4 });
        const got = runGroup(m, turns, cuts);
        const want = referenceGroup(turns, forms);
        assert.deepEqual(got.out.toString('latin1'), want.out.toString('latin1'));
        assert.deepEqual(got.err.toString('latin1'), want.err.toString('latin1'));
      },
    ),
    { numRuns: 1500 },
  );
});

test('the end of one stream keeps back what the other stream may still complete', () => {
  const v = 'hunter2-Correct-Horse-Battery-9';
  const g = new SecretMasker([v]).forStreams(['out', 'err'] as const);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const take = (r: ['out' | 'err', Buffer][]): void => r.forEach(([id, b]) => (id === 'out' ? out : err).push(b));
  take(g.push('out', Buffer.from(`pw: ${v.slice(0, 10)}`)));
  take(g.end('out'));
  assert.equal(Buffer.concat(out).toString(), ''); // held for the next turn
  take(g.push('err', Buffer.from(`${v.slice(10)}\n`)));
  take(g.end('err'));
  assert.equal(Buffer.concat(out).toString(), 'pw: ***');
  assert.equal(Buffer.concat(err).toString(), '***\n');
});

test('property: several streams equal the reference, whatever the chunking and the order the streams end', () => {
  const pushArb = fc.array(fc.tuple(fc.constantFrom('out' as const, 'err' as const), fc.array(pieceArb, { maxLength: 4 })), { maxLength: 8 });
  fc.assert(
    fc.property(secretsArb, pushArb, cutsArb, fc.constantFrom('out' as const, 'err' as const), (values, spec, cuts, endFirst) => {
      const forms = formsOf(values);
      fc.pre(allForms(forms).length > 0);
      const pushes: Push[] = spec.map(([id, pieces]) => [id, assemble(pieces, forms)]);
      const m = new SecretMasker(values, { laneMinBytes: 4 });
      const got = runGroup(m, pushes, cuts, endFirst);
      const want = referenceGroup(pushes, forms);
      assert.deepEqual(got.out.toString('latin1'), want.out.toString('latin1'));
      assert.deepEqual(got.err.toString('latin1'), want.err.toString('latin1'));
    }),
    { numRuns: 1500 },
  );
});

test('property: borrowed chunks (one reused read buffer, copied per turn by TurnCopies) give the reference too', () => {
  const pushArb = fc.array(fc.tuple(fc.constantFrom('out' as const, 'err' as const), fc.array(pieceArb, { maxLength: 4 })), { maxLength: 8 });
  const stepsArb = fc.array(fc.oneof(fc.constant('tick' as const), fc.constant('turn' as const)), { maxLength: 8 });
  fc.assert(
    fc.property(secretsArb, pushArb, stepsArb, cutsArb, fc.constantFrom('out' as const, 'err' as const), (values, spec, shape, cuts, endFirst) => {
      const forms = formsOf(values);
      fc.pre(allForms(forms).length > 0);
      // Pushes grouped into turns of up to three, with ticks between as `shape` says.
      const pushes: Push[] = spec.map(([id, pieces]) => [id, assemble(pieces, forms)]);
      const steps: Step[] = [];
      for (let i = 0, k = 0; i < pushes.length; k++) {
        if (shape[k % Math.max(1, shape.length)] === 'tick') steps.push('tick');
        steps.push(pushes.slice(i, i + 1 + (k % 3)));
        i += 1 + (k % 3);
      }
      const m = new SecretMasker(values, { laneMinBytes: 4 });
      const got = runGroup(m, steps, cuts, endFirst, true);
      const want = referenceGroup(steps, forms);
      assert.deepEqual(got.out.toString('latin1'), want.out.toString('latin1'));
      assert.deepEqual(got.err.toString('latin1'), want.err.toString('latin1'));
      assert.deepEqual(got, runGroup(m, steps, cuts, endFirst));
    }),
    { numRuns: 1500 },
  );
});

test('property: forms cut into fragments scattered over both streams, with noise between, equal the reference', () => {
  const fragmentArb = fc.record({
    piece: pieceArb.filter((p) => p.kind === 'form' || p.kind === 'wrapped'),
    cuts: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
    streams: fc.array(fc.constantFrom('out' as const, 'err' as const), { minLength: 4, maxLength: 4 }),
    noise: fc.array(fc.option(fc.tuple(fc.constantFrom('out' as const, 'err' as const), noiseArb), { freq: 2 }), { minLength: 4, maxLength: 4 }),
  });
  fc.assert(
    fc.property(secretsArb, fc.array(fragmentArb, { minLength: 1, maxLength: 3 }), cutsArb, (values, fragments, cuts) => {
      const forms = formsOf(values);
      fc.pre(allForms(forms).length > 0);
      const pushes: Push[] = [];
      for (const f of fragments) {
        const text = assemble([f.piece], forms);
        split(text, f.cuts).forEach((part, i) => {
          pushes.push([f.streams[i]!, part]);
          const n = f.noise[i];
          if (n) pushes.push([n[0], Buffer.from(n[1])]);
        });
      }
      const m = new SecretMasker(values, { laneMinBytes: 4 });
      const got = runGroup(m, pushes, cuts);
      const want = referenceGroup(pushes, forms);
      assert.deepEqual(got.out.toString('latin1'), want.out.toString('latin1'));
      assert.deepEqual(got.err.toString('latin1'), want.err.toString('latin1'));
    }),
    { numRuns: 1500 },
  );
});

test('ordinary lines come out at once on one stream, and at the second tick in a group (100 secrets)', () => {
  const secrets = sampleSecrets(100);
  const m = new SecretMasker(secrets);
  const lines = sampleOutput(256 * 1024)
    .toString('latin1')
    .split(/(?<=\n)/)
    .slice(0, -1);
  const s = m.forStream();
  const g = m.forStreams(['out', 'err'] as const);
  const text = (r: ['out' | 'err', Buffer][]): [string, string][] => r.map(([sid, b]) => [sid, b.toString('latin1')]);
  lines.forEach((line, i) => {
    assert.equal(s.push(Buffer.from(line, 'latin1')).toString('latin1'), line);
    // Several streams: output waits for the second tick after it arrived.
    const id = i % 3 === 0 ? 'err' : 'out';
    assert.deepEqual(text(g.push(id, Buffer.from(line, 'latin1'))), []);
    assert.deepEqual(text(g.tick()), []);
    assert.deepEqual(text(g.tick()), [[id, line]]);
  });
  // Both streams between two ticks: both go out at the second tick after.
  assert.deepEqual(text(g.push('out', Buffer.from('a line on stdout\n'))), []);
  assert.deepEqual(text(g.push('err', Buffer.from('a line on stderr\n'))), []);
  assert.deepEqual(text(g.tick()), []);
  assert.deepEqual(text(g.tick()), [
    ['out', 'a line on stdout\n'],
    ['err', 'a line on stderr\n'],
  ]);
  // A line that ends with a few characters that begin a secret's base64 is not held either.
  const b64 = Buffer.from(secrets[0]!).toString('base64');
  assert.equal(s.push(Buffer.from(`tail ${b64.slice(0, 7)}\n`)).toString(), `tail ${b64.slice(0, 7)}\n`);
});

test('hold-back stays within the bound while the output really resembles a form', () => {
  const v = randomBytes(600).toString('base64'); // a long value: its forms are long
  const m = new SecretMasker([v]);
  const s = m.forStream();
  const b64 = Buffer.from(v).toString('base64');
  s.push(Buffer.from(b64.slice(0, 500).replace(/(.{64})/g, '$1\r\n')));
  assert.ok(s.heldBytes > 400 && s.heldBytes <= m.maxHoldBack, `${s.heldBytes} of at most ${m.maxHoldBack}`);
  assert.equal(s.push(Buffer.from('!\n')).toString(), `${b64.slice(0, 500).replace(/(.{64})/g, '$1\r\n')}!\n`); // not the value after all
  assert.equal(s.heldBytes, 0);
});

test('deep (sparse) states follow failure links into other patterns', () => {
  // "axyzw" is deep; its failure link must lead to "yzw" so that "yzwv" is found.
  for (const denseBudget of [1, 4, undefined]) {
    const m = new SecretMasker(['axyzwq', 'xyzk', 'yzwv'], { minLength: 4, denseBudget });
    assert.equal(m.maskString('.axyzwv.'), '.ax***.');
    assert.equal(m.maskString('.axyzwq.xyzk'), '.***.***');
    const text = Buffer.from('-axyzwv-axyzwq-xyxyzk-yzyzwv');
    for (let i = 0; i <= text.length; i++) assert.equal(run(m, [text.subarray(0, i), text.subarray(i)]).all.toString(), '-ax***-***-xy***-yz***');
  }
});

test('automaton over arbitrary bytes (all 256 byte values in patterns) reports every longest match', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 8 }),
      fc.uint8Array({ maxLength: 200 }),
      fc.constantFrom(1, 1 << 20),
      (pats, tail, denseBudget) => {
        const all = Uint8Array.from({ length: 256 }, (_, i) => i);
        const patterns = [...pats, all];
        const data = Buffer.concat([Buffer.from(tail), Buffer.from(patterns[0]!), Buffer.from(tail)]);
        const a = new ByteAutomaton(patterns, { denseBudget, laneMinBytes: 4 });
        const got: string[] = [];
        a.scan(data, 0, 0, { match: (end, len) => got.push(`${end}:${len}`) });
        const want: string[] = [];
        for (let end = 1; end <= data.length; end++) {
          let best = 0;
          for (const p of patterns) if (p.length <= end && data.subarray(end - p.length, end).equals(p)) best = Math.max(best, p.length);
          if (best > 0) want.push(`${end}:${best}`);
        }
        assert.deepEqual(got, want);
      },
    ),
    { numRuns: 500 },
  );
});

test('automaton: statesAlong agrees with stepping byte by byte (deep states, separator runs)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c'), minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 6 }),
      fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', '\n', 'x'), maxLength: 80 }),
      fc.constantFrom(1, 4, 1 << 20),
      fc.boolean(),
      (pats, text, denseBudget, withSeparators) => {
        const a = new ByteAutomaton(
          pats.map((p) => Buffer.from(p)),
          withSeparators ? { denseBudget, separators: [0x20, 0x0a], maxSkip: 2 } : { denseBudget },
        );
        const data = Buffer.from(text);
        const states = new Int32Array(data.length + 1);
        a.statesAlong(data, 0, data.length, 0, states);
        let s = 0;
        for (let k = 0; k < data.length; k++) {
          assert.equal(states[k], s, `before byte ${k}`);
          s = a.stepByte(s, data[k]!);
        }
        assert.equal(states[data.length], s);
        assert.equal(a.scan(data, 0, 0, { match: () => undefined }), s);
      },
    ),
    { numRuns: 1000 },
  );
});

// ---------------------------------------------------------------------------------------------
// Throughput (printed, not asserted)

test('throughput with 0, 10 and 100 secrets over ~50 MB of log-like output', () => {
  const secrets = sampleSecrets(100);
  const text = sampleOutput(1 << 20);
  // The sample really is secret-free and the secrets really are found in it.
  const m = new SecretMasker(secrets);
  assert.deepEqual(m.maskBuffer(text), text);
  const withSecret = Buffer.concat([text.subarray(0, 5000), Buffer.from(secrets[42]!), text.subarray(5000, 9000)]);
  assert.ok(!m.maskBuffer(withSecret).includes(Buffer.from(secrets[42]!)));
  const build0 = performance.now();
  const built = new SecretMasker(secrets);
  const buildMs = performance.now() - build0;
  const lines = [
    `masker: 100 secrets -> ${built.patternCount} patterns, automaton ${(built.automatonBytes / 2 ** 20).toFixed(1)} MiB, built in ${buildMs.toFixed(1)} ms`,
  ];
  for (const n of [0, 10, 100]) {
    const mibs = measureMaskerThroughput(SecretMasker, n, 50);
    assert.ok(Number.isFinite(mibs) && mibs > 0);
    lines.push(`masker: ${n} secrets: ${mibs.toFixed(0)} MiB/s (${((mibs * 2 ** 20) / 1e6).toFixed(0)} MB/s)`);
  }
  for (const l of lines) console.log(l);
});
