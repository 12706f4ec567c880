/**
 * Finding the lines a rule could touch, on the raw bytes. Most output has no secret in it, and
 * turning every byte into a string and back (latin1) cost more than the rules themselves; this
 * scan reads the bytes two at a time (a Uint16Array over the Buffer) and looks each pair up in
 * one 64 KiB table. Every word of the secret hint is 3+ bytes long, so each of its occurrences
 * holds an aligned pair that is its first or its second pair; the personal hint's anchors are a
 * single `@`, `+` or `(`, or three digits. A pair that is in the table is then checked exactly,
 * byte by byte, at the one to three places where a hint could start. Only the lines with a
 * confirmed hint become strings and go through the rules (stages.ts), which check again.
 *
 * The answers are exact, not approximate: a line is reported if and only if the hint regexes
 * (SECRET_HINT case-insensitive, PERSONAL_HINT) match in it, which a test checks against them.
 */
import type { Buffer } from 'node:buffer';
import { BEGIN_RE, MAX_MARKER, SECRET_HINT_WORDS, SECRET_RULES } from './secret-rules.js';
import type { LineRule } from './rules.js';

/** Flags in the pair table: the pair is the first pair of a secret hint word (which starts at it)... */
const SECRET0 = 1;
/** ...or its second (the word starts a byte before it). */
const SECRET1 = 8;
const SECRET = SECRET0 | SECRET1;
const PERSONAL = 2;
/** `--`: a private key BEGIN marker may be near; the caller falls back to the full engine. */
const MARKER = 4;

/**
 * A byte as a case-insensitive regex without the `u` flag compares it with an ASCII letter:
 * A-Z as a-z, everything else as itself (no byte above 127 equals an ASCII letter there).
 */
const FOLD = new Uint8Array(256).map((_, b) => (b >= 65 && b <= 90 ? b | 0x20 : b));

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/** A hint word (folded bytes) and the bit of the secret rule it is a hint for. */
interface Word {
  readonly bytes: Uint8Array;
  readonly bit: number;
}

/** Each secret rule's bit in HintedLines.rules, by its index in SECRET_RULES. */
const RULE_BITS = new Map<LineRule, number>(SECRET_RULES.map((rule, i) => [rule, 2 ** i]));

/** The hint words by their first folded pair (first byte << 8 | second). */
const WORDS = wordsByPair();

function wordsByPair(): (readonly Word[] | undefined)[] {
  const byPair: (Word[] | undefined)[] = new Array<Word[] | undefined>(65536).fill(undefined);
  for (const [word, rule] of SECRET_HINT_WORDS) {
    const bytes = Uint8Array.from(word, (c) => FOLD[c.charCodeAt(0)] ?? 0);
    if (bytes.length < 3) throw new Error(`a hint word must be at least 3 bytes: ${word}`);
    const i = SECRET_RULES.findIndex((r) => r.name === rule);
    if (i === -1 || i > 30) throw new Error(`hint word ${word} names no secret rule: ${rule}`);
    const key = ((bytes[0] ?? 0) << 8) | (bytes[1] ?? 0);
    (byPair[key] ??= []).push({ bytes, bit: 2 ** i });
  }
  return byPair;
}

/** The bits of the rules whose hint words start at `x` (and end before `to`); 0 for none. */
function secretAt(b: Uint8Array, x: number, to: number): number {
  if (x + 3 > to) return 0;
  const list = WORDS[(FOLD[b[x]!]! << 8) | FOLD[b[x + 1]!]!];
  if (list === undefined) return 0;
  let bits = 0;
  for (const { bytes: w, bit } of list) {
    if (x + w.length > to) continue;
    let i = 2;
    while (i < w.length && FOLD[b[x + i]!] === w[i]) i++;
    if (i === w.length) bits |= bit;
  }
  return bits;
}

/**
 * Whether a secret rule can be passed over for text whose hinted lines hold the hint words of
 * `rules` (HintedLines.rules) only: true or false, or undefined for a rule that is not a secret
 * rule. A rule's marker holds no other rule's hint word (a test checks), so what earlier rules
 * did cannot give a later one a match.
 */
export function ruleAbsent(rule: LineRule, rules: number): boolean | undefined {
  const bit = RULE_BITS.get(rule);
  return bit === undefined ? undefined : (rules & bit) === 0;
}

/** `n` digits from `x`, all before `to`. */
function digitsAt(b: Uint8Array, x: number, n: number, to: number): boolean {
  if (x + n > to) return false;
  for (let i = x; i < x + n; i++) if (!isDigit(b[i]!)) return false;
  return true;
}

const isEmailLocal = (c: number): boolean =>
  (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || isDigit(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
const isDomainStart = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || isDigit(c) || c === 45;

/**
 * Whether personal data could start its match around `x`: PERSONAL_BYTE_HINT, which is
 * PERSONAL_HINT (`@|\+[1-9]|\([0-9]{3}\)|[0-9]{3}(?:...)`) narrowed where every personal rule
 * needs more: an `@` with an address character either side (redactEmails needs a local part and
 * a domain), a `+` and a digit followed by a digit or a separator (both phone rules that start
 * with `+` do). `from` is where the line (or range) starts.
 */
function personalAt(b: Uint8Array, x: number, from: number, to: number): boolean {
  if (x < from || x >= to) return false;
  const c = b[x]!;
  if (c === 64) return x > from && x + 1 < to && isEmailLocal(b[x - 1]!) && isDomainStart(b[x + 1]!);
  if (c === 43) {
    if (x + 2 >= to || b[x + 1]! < 49 || b[x + 1]! > 57) return false;
    const n = b[x + 2]!;
    return isDigit(n) || n === 32 || n === 46 || n === 45;
  }
  if (c === 40) return digitsAt(b, x + 1, 3, to) && x + 4 < to && b[x + 4] === 41;
  if (!digitsAt(b, x, 3, to) || x + 3 >= to) return false;
  const d = b[x + 3]!;
  if (isDigit(d)) {
    if (digitsAt(b, x + 4, 9, to)) return true;
    const sep = b[x + 4];
    return (sep === 32 || sep === 45) && digitsAt(b, x + 5, 3, to);
  }
  return (d === 46 || d === 45) && digitsAt(b, x + 4, 3, to);
}

/** The hint personalAt finds, as a regex (for the tests): each alternative is a substring of every match of some personal rule. */
export const PERSONAL_BYTE_HINT = String.raw`[A-Za-z0-9._%+-]@[A-Za-z0-9-]|\+[1-9][0-9 .-]|\([0-9]{3}\)|[0-9]{3}(?:[0-9](?:[0-9]{9}|[ -][0-9]{3})|[.-][0-9]{3})`;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The pair table: for each (first byte | second byte << 8), what it may be part of. */
const TABLE = buildTable();

function buildTable(): Uint8Array {
  const firstPairs = new Set<number>();
  const secondPairs = new Set<number>();
  for (const [word] of SECRET_HINT_WORDS) {
    const f = Array.from(word, (c) => FOLD[c.charCodeAt(0)] ?? 0);
    firstPairs.add(((f[0] ?? 0) << 8) | (f[1] ?? 0));
    secondPairs.add(((f[1] ?? 0) << 8) | (f[2] ?? 0));
  }
  const table = new Uint8Array(65536);
  const single = (c: number) => c === 64 || c === 43 || c === 40; // @ + (
  for (let lo = 0; lo < 256; lo++) {
    for (let hi = 0; hi < 256; hi++) {
      let flags = 0;
      const folded = ((FOLD[lo] ?? 0) << 8) | (FOLD[hi] ?? 0);
      if (firstPairs.has(folded)) flags |= SECRET0;
      if (secondPairs.has(folded)) flags |= SECRET1;
      if (single(lo) || single(hi) || (isDigit(lo) && isDigit(hi))) flags |= PERSONAL;
      if (lo === 45 && hi === 45) flags |= MARKER;
      // A Uint16Array reads the byte at the lower address as the low byte on little-endian machines.
      table[LITTLE_ENDIAN ? lo | (hi << 8) : (lo << 8) | hi] = flags;
    }
  }
  return table;
}

/** Where to look for the line breaks a hinted line ends at: `\n` only, as stages.ts splits lines. */
const NL = 10;
const CR = 13;

export interface HintedLines {
  /** [start, end) of each hinted `\n`-line (clipped to the range), in order, not overlapping. */
  readonly lines: number[];
  /** The bits (ruleAbsent) of the secret rules whose hint words occur in those lines. */
  readonly rules: number;
  /** Per line (one for each pair in `lines`): the bits of the secret rules whose hint words occur in it (or a few more). */
  readonly masks: number[];
  /**
   * Where the lines looked at end: the range's end, or the start of the line (after a `\n` or
   * a `\r`) in which a private key BEGIN marker may start, which the caller leaves to the engine.
   */
  readonly stop: number;
}

/**
 * The `\n`-lines of `buf[from, to)` in which a hint of the level's stages occurs, up to the line
 * in which a private key BEGIN marker may start (`stop`). `from` must be the start of a line (no
 * hint continues from before it) and `to` the end of one.
 */
export function hintedLines(buf: Buffer, from: number, to: number, personal: boolean): HintedLines {
  const lines: number[] = [];
  const masks: number[] = [];
  if (to <= from) return { lines, rules: 0, masks, stop: to };
  let rules = 0;
  const mask = SECRET | MARKER | (personal ? PERSONAL : 0);
  // Pairs at even addresses: the view needs them aligned. `a` is the first pair's offset in buf.
  const a = from + ((buf.byteOffset + from) & 1);
  const n = (to - a) >> 1;
  const pairs = pairScan(buf, a, n);
  let lineEnd = from; // the hinted lines so far end here
  const hints: number[] = []; // where each hinted line's first hint starts
  // The first byte, when it is not the first of a pair: only a one-byte anchor can start there
  // unseen (a word of 3+ bytes also has the next pair).
  if (a > from && personal && personalAt(buf, from, from, to)) {
    lineEnd = hit(buf, from, from, to, lines);
    hints.push(from);
    masks.push(0);
  }
  for (let k = nextPair(pairs, 0, mask); k !== -1; k = nextPair(pairs, k + 1, mask)) {
    const flags = TABLE[pairs.pairs[k]!]! & mask;
    const e = a + 2 * k;
    if (flags & MARKER && mayBegin(buf, e, from, to)) return stopAt(lineStart(buf, Math.max(from, e - 4), from), hints, lines, masks, rules);
    const words = flags & SECRET ? (e - 1 >= from && flags & SECRET1 ? secretAt(buf, e - 1, to) : 0) | (flags & SECRET0 ? secretAt(buf, e, to) : 0) : 0;
    rules |= words;
    // Words at e - 1 or e belong to the hinted line so far, or to the one they start (or both, for all we know here).
    if (words !== 0 && e - 1 < lineEnd && masks.length > 0) masks[masks.length - 1]! |= words;
    if (e + 1 < lineEnd) continue; // in a line already hinted (looked at still, for its words and a BEGIN marker)
    const x = hintAround(buf, e, flags, from, Math.max(from, lineEnd), to);
    if (x !== -1) {
      lineEnd = hit(buf, x, from, to, lines);
      hints.push(x);
      masks.push(words);
    }
  }
  // The last byte, when it is not in a whole pair: as for the first.
  if (a + 2 * n < to && personal && to - 1 >= lineEnd && personalAt(buf, to - 1, from, to)) {
    hit(buf, to - 1, from, to, lines);
    masks.push(0);
  }
  return { lines, rules, masks, stop: to };
}

/** The start of the line (after a `\n` or `\r`, not before `from`) that holds `x`. */
function lineStart(buf: Buffer, x: number, from: number): number {
  if (x <= from) return from;
  return Math.max(from, buf.lastIndexOf(NL, x - 1) + 1, buf.lastIndexOf(CR, x - 1) + 1);
}

/**
 * The answer when the lines from `stop` on are left to the engine: the hinted lines before it,
 * the last one cut there (or left out if its hint lies past the cut: a `\r` ends lines too).
 */
function stopAt(stop: number, hints: number[], lines: number[], masks: number[], rules: number): HintedLines {
  while (lines.length > 0 && (hints[hints.length - 1] ?? 0) >= stop) {
    lines.length -= 2;
    masks.length -= 1;
    hints.length -= 1;
  }
  if (lines.length > 0 && (lines[lines.length - 1] ?? 0) > stop) lines[lines.length - 1] = stop;
  return { lines, rules, masks, stop };
}

/**
 * The aligned pairs of a range, and the same bytes as 32-bit words (two pairs each) where they
 * are 4-byte aligned: `quads[q]` holds pairs `first + 2q` and `first + 2q + 1`.
 */
interface PairScan {
  readonly pairs: Uint16Array;
  readonly quads: Uint32Array;
  readonly first: number;
}

/** The `n` pairs from `buf[a]` (`buf.byteOffset + a` even). */
function pairScan(buf: Buffer, a: number, n: number): PairScan {
  const pairs = new Uint16Array(buf.buffer, buf.byteOffset + a, n);
  const first = ((buf.byteOffset + a) & 3) === 0 ? 0 : 1;
  const words = Math.max(0, (n - first) >> 1);
  // Without a whole word the view's start could lie past the buffer's end: no view then.
  const quads = words === 0 ? new Uint32Array(0) : new Uint32Array(buf.buffer, buf.byteOffset + a + 2 * first, words);
  return { pairs, quads, first };
}

/**
 * The next pair at or after `k` with a flag of `mask`, or -1: the loop that sees every byte,
 * kept small. Two pairs per read (a 32-bit word, both halves looked up: which half is which
 * does not matter for "either has a flag"), then the pair found, one at a time: a quarter less
 * CPU than a pair per read.
 */
function nextPair(scan: PairScan, k: number, mask: number): number {
  const table = TABLE;
  const { pairs, quads, first } = scan;
  const n = pairs.length;
  // Up to the first pair that starts a word, one pair at a time.
  for (; k < n && (k < first || ((k - first) & 1) === 1); k++) if ((table[pairs[k]!]! & mask) !== 0) return k;
  let q = (k - first) >> 1;
  for (const words = quads.length; q < words; q++) {
    const w = quads[q]!;
    if (((table[w & 0xffff]! | table[w >>> 16]!) & mask) !== 0) break;
  }
  // The word found (one of its pairs has the flag), or the pair after the last word.
  for (k = Math.max(k, first + 2 * q); k < n; k++) if ((table[pairs[k]!]! & mask) !== 0) return k;
  return -1;
}

/** Where a hint starts around the pair at `e` (a secret word at e - 1 or e, a personal anchor at e - 1, e or e + 1), not before `min`; -1 if none. */
function hintAround(buf: Buffer, e: number, flags: number, from: number, min: number, to: number): number {
  // Two digits without a digit either side begin no personal hint (every digit one needs three in
  // a row; an `@`, `+` or `(` just before them is a candidate of its own pair): most numbers in logs.
  if (flags & PERSONAL && isDigit(buf[e]!) && isDigit(buf[e + 1]!) && !(e > from && isDigit(buf[e - 1]!)) && !(e + 2 < to && isDigit(buf[e + 2]!))) {
    flags &= ~PERSONAL;
  }
  if (e - 1 >= min && ((flags & SECRET1 && secretAt(buf, e - 1, to) !== 0) || (flags & PERSONAL && personalAt(buf, e - 1, from, to)))) return e - 1;
  if (e >= min && ((flags & SECRET0 && secretAt(buf, e, to) !== 0) || (flags & PERSONAL && personalAt(buf, e, from, to)))) return e;
  if (flags & PERSONAL && e + 1 >= min && personalAt(buf, e + 1, from, to)) return e + 1;
  return -1;
}

/** Adds the `\n`-line holding `x` (clipped to [from, to)) to `lines`; returns its end. */
function hit(buf: Buffer, x: number, from: number, to: number, lines: number[]): number {
  const start = Math.max(from, buf.lastIndexOf(NL, x) + 1);
  const nl = buf.indexOf(NL, x);
  const end = nl === -1 || nl >= to ? to : nl + 1;
  lines.push(start, end);
  return end;
}

/** Whether a BEGIN marker could start around the `--` at `e` (a superset: any marker in a window around it). */
function mayBegin(buf: Buffer, e: number, from: number, to: number): boolean {
  const start = Math.max(from, e - 4);
  BEGIN_RE.lastIndex = 0;
  return BEGIN_RE.test(buf.toString('latin1', start, Math.min(to, e + 2 + MAX_MARKER)));
}
