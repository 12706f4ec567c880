/**
 * The streaming matcher. Output arrives as ordered chunks of raw bytes with boundaries
 * anywhere. Everything here works on latin1 ("binary") strings, one char per byte, so invalid
 * UTF-8 passes through unchanged and every offset is a byte offset. Each match is replaced by
 * `[REDACTED:<rule>]`; the bytes around it are kept.
 *
 * How the stream is cut (all of it decided by the content alone, never by where chunks end, so
 * output is identical for every chunking of the same input):
 * - Single-line rules never match across `\n` or `\r`, so complete lines (a `\r` ends one too:
 *   progress bars) are redacted as they arrive.
 * - The incomplete last line is released at once up to the leftmost point where a match could
 *   still begin (starts.ts); only that suffix waits for more bytes. Each upload does this, so a
 *   progress line streams at the agent's flush rate while `ghp_Ab3` + `De6...` in two uploads is
 *   still one match. The released start of the line stays held as context (the rules see the
 *   line from its start), so the line's pieces come out exactly as the whole line would.
 * - A line that reaches LINE_HOLD_CAP (64 KiB) bytes without a line break is cut there anyway,
 *   so a stream without newlines cannot grow memory. The cut goes just after the last space or
 *   tab in the final 1/16 of the window when there is one, else at exactly the cap; nothing past
 *   the start of that final 1/16 is released before the cut. Each piece is redacted on its own,
 *   so a secret that straddles such a cut can escape its rule. A BEGIN marker (below) that
 *   starts before the cap is never cut through; to know there is none, up to 128 bytes past the
 *   cap may be held.
 * - Private key blocks span lines. From a `-----BEGIN ... PRIVATE KEY-----` marker the stream is
 *   held until the matching `-----END ... PRIVATE KEY-----` (any END variant); the whole block
 *   becomes one marker. If no END arrives within KEY_HOLD_CAP (16 KiB) of the BEGIN, the 16 KiB
 *   from BEGIN are redacted anyway (fail closed) and scanning carries on after them. An
 *   unterminated block at the end of the stream is redacted to the end.
 *
 * States: text mode (holding at most an incomplete line, part of it maybe released) ⇄ key mode
 * (holding a block from its BEGIN). What is held is small (usually the incomplete last line; at
 * most 64 KiB + 128 bytes) and restorable (`held`, `released`, `inKeyBlock`, `restore`), because
 * the server keeps nothing in memory between a task's uploads: redactor.ts serializes it.
 *
 * Speed: each line is first scanned for per-stage hints (stages.ts); only lines with a hint go
 * through the rules.
 */
import type { RedactLevel } from '@ferry/protocol';
import { BEGIN_AT, BEGIN_RE, END_RE, KEY_MARKER, MAX_MARKER } from './secret-rules.js';
import { Buffer } from 'node:buffer';
import { hintedLines, ruleAbsent, type HintedLines } from './byte-scan.js';
import { redactHintedLines, redactLines, stagesFor, type Stage } from './stages.js';
import { holdPoint, type Start } from './starts.js';

/** Longest incomplete line held back before it is processed anyway. */
export const LINE_HOLD_CAP = 64 * 1024;
/** Longest private key block held back waiting for its END line before failing closed. */
export const KEY_HOLD_CAP = 16 * 1024;

export interface RedactorOptions {
  /** Longest incomplete line held back; default LINE_HOLD_CAP. Smaller values are for tests. */
  readonly lineHoldCap?: number;
  /** Longest private key block held back; default KEY_HOLD_CAP. Smaller values are for tests. */
  readonly keyHoldCap?: number;
  /** Skip lines without a rule's hint (default true; false exists to test that it changes nothing). */
  readonly prefilter?: boolean;
  /**
   * Take complete lines without a hint straight from the bytes (byte-scan.ts), default true;
   * false sends every byte through the string engine (the reference the tests compare with).
   */
  readonly byteScan?: boolean;
}

interface Caps {
  readonly line: number;
  readonly key: number;
}

function resolveCaps(options: RedactorOptions | undefined): Caps {
  const line = options?.lineHoldCap ?? LINE_HOLD_CAP;
  const key = options?.keyHoldCap ?? KEY_HOLD_CAP;
  if (!Number.isSafeInteger(line) || line < 16) throw new RangeError(`lineHoldCap must be an integer >= 16, got ${line}`);
  if (!Number.isSafeInteger(key) || key < 1) throw new RangeError(`keyHoldCap must be an integer >= 1, got ${key}`);
  return { line, key };
}

/** One pass over the held text: where it has got to, and what it released. */
interface Scan {
  readonly p: string;
  /** Everything before this was released (now or by an earlier pass). */
  pos: number;
  /** Start of the current segment (after a line break, a cut or a key block): held text starts here. */
  seg: number;
  /** As the engine's fields of the same name, during the pass. */
  beginScan: number;
  endScan: number;
  readonly out: string[];
  /** The stream ends here: release everything. */
  readonly final: boolean;
  /** Release the incomplete last line up to where a match could begin (else hold all of it). */
  readonly partial: boolean;
}

/** Where a line that reached the cap is cut: after the last blank in the final 1/16, else at the cap. */
function softCut(p: string, lineStart: number, cap: number): number {
  const hard = lineStart + cap;
  const floor = hard - (cap >> 4);
  for (let i = hard - 1; i >= floor; i--) {
    const c = p.charCodeAt(i);
    if (c === 32 || c === 9) return i + 1;
  }
  return hard;
}

/** The next `\n` or `\r` at or after a position, each searched for once per pass. */
class LineBreaks {
  private nl = -2;
  private cr = -2;

  constructor(private readonly p: string) {}

  next(from: number): number {
    if (this.nl !== -1 && this.nl < from) this.nl = this.p.indexOf('\n', from);
    if (this.cr !== -1 && this.cr < from) this.cr = this.p.indexOf('\r', from);
    if (this.nl === -1) return this.cr;
    return this.cr === -1 ? this.nl : Math.min(this.nl, this.cr);
  }
}

/** A streaming matcher for one stream at one level (not `none`, which needs no matching). */
export class Engine {
  private parts: string[] = [];
  private length = 0;
  /** The held-back text starts with a BEGIN marker whose END has not been seen. */
  private inKey = false;
  /** Text mode: how many bytes at the start of the held text were released already (context for what follows). */
  private done = 0;
  /** Text mode: no BEGIN marker starts before this offset of the held-back text. */
  private beginScan = 0;
  /** Key mode: no END marker starts before this offset. */
  private endScan = 0;
  private readonly starts: readonly Start[];

  constructor(
    private readonly stages: readonly Stage[],
    private readonly caps: Caps,
    /** Byte path (feedBytes) on, and whether it looks for personal-data hints too (level all). */
    private readonly byteScan: { readonly personal: boolean } | null = null,
  ) {
    this.starts = startsOf(stages);
  }

  get held(): string {
    if (this.parts.length > 1) this.parts = [this.parts.join('')];
    return this.parts[0] ?? '';
  }

  /** Bytes at the start of `held` that were released already (kept as context for the rules). */
  get released(): number {
    return this.done;
  }

  get inKeyBlock(): boolean {
    return this.inKey;
  }

  restore(held: string, inKey: boolean, released = 0): void {
    if (inKey) {
      BEGIN_AT.lastIndex = 0;
      if (!BEGIN_AT.test(held)) throw new Error('redaction state is corrupt: a key block does not start with a BEGIN marker');
    }
    if (!Number.isSafeInteger(released) || released < 0 || released > held.length || (inKey && released > 0)) {
      throw new Error('redaction state is corrupt: the released count does not fit the held bytes');
    }
    this.parts = held ? [held] : [];
    this.length = held.length;
    this.inKey = inKey;
    this.done = released;
    this.beginScan = 0;
    this.endScan = 0;
  }

  /**
   * Takes the next bytes; returns what is final. With `partial` (the last bytes of an upload)
   * the incomplete last line is released too, up to where a match could begin; without it,
   * only complete lines are, so many small frames in one upload cost little each.
   */
  feed(s: string, partial = true): string {
    if (s) {
      this.parts.push(s);
      this.length += s.length;
    }
    // Nothing else can be released until a line completes or a cap is reached.
    const cap = this.inKey ? this.caps.key : this.caps.line + MAX_MARKER;
    if (!partial && s.indexOf('\n') === -1 && s.indexOf('\r') === -1 && this.length < cap) return '';
    return this.length === 0 ? '' : this.run(false, partial);
  }

  /** `feed` without its shortcut: for the end of a chunk whose earlier lines `feed` did not see. */
  private take(s: string, partial: boolean): string {
    if (s) {
      this.parts.push(s);
      this.length += s.length;
    }
    return this.length === 0 ? '' : this.run(false, partial);
  }

  /**
   * `feed` on bytes, with the same result: the complete lines of the chunk that no rule could
   * touch go out as they came (a view of `chunk`, no string made of them); the rest goes
   * through the string engine. The line that continues what was held, and the incomplete last line, always
   * do (they are where the hold-back is decided); so do the complete lines when one of them may
   * hold a private key BEGIN marker or reach the line cap. The lines in between are redacted
   * one by one where byte-scan.ts finds a hint, as `feed` would redact them (rules never match
   * across a line break, and it redacts whole lines in one piece).
   */
  feedBytes(chunk: Buffer, partial = true): Buffer {
    return joined(this.feedPieces(chunk, partial));
  }

  /**
   * `feedBytes` as the pieces it would join, in order: views of `chunk` (the lines no rule
   * touched) and buffers of redacted text, none empty. Joining them copies every byte of the
   * chunk again (a line held from the previous chunk nearly always comes first), so the server
   * stores them as they are (task-state.ts).
   */
  feedPieces(chunk: Buffer, partial = true): Buffer[] {
    const first = this.byteScan && !this.inKey ? nextBreak(chunk, 0) : -1;
    if (first === -1) return new Pieces(chunk).text(this.feed(chunk.toString('latin1'), partial)).done();
    const out = new Pieces(chunk);
    let from = 0;
    if (this.length > 0) {
      out.text(this.take(chunk.toString('latin1', 0, first + 1), false));
      from = first + 1;
      if (this.length > 0) return out.text(this.take(chunk.toString('latin1', from), partial)).done();
    }
    const end = lastBreak(chunk) + 1;
    if (end > from && !linesUnder(chunk, from, end, this.caps.line)) return out.text(this.take(chunk.toString('latin1', from), partial)).done();
    for (;;) {
      const hinted = hintedLines(chunk, from, end, this.byteScan?.personal ?? false);
      if (hinted.lines.length > 0) from = this.redactHinted(chunk, hinted, from, out);
      out.raw(from, hinted.stop);
      if (hinted.stop === end) break;
      // From a line that may hold a BEGIN marker, the string engine takes over: to the end of
      // the line with the next END marker, and if the block is closed there, bytes again after it.
      const after = lineAfterEnd(chunk, hinted.stop, end);
      const upTo = after === -1 ? chunk.length : after;
      out.text(this.take(chunk.toString('latin1', hinted.stop, upTo), upTo === chunk.length ? partial : false));
      if (upTo === chunk.length) return out.done();
      if (this.length > 0) return out.text(this.take(chunk.toString('latin1', upTo), partial)).done();
      from = upTo;
    }
    if (end < chunk.length) {
      const tail = chunk.toString('latin1', end);
      const released = this.take(tail, partial);
      if (tail.startsWith(released)) out.raw(end, end + released.length);
      else out.text(released);
    }
    return out.done();
  }

  /**
   * The hinted lines (byte-scan.ts), redacted in groups of lines with the same hint words, each
   * group as one text with only the rules those words call for (the rules' fixed costs paid
   * once per group; rules never match across a `\n`, and each piece but a group's last ends
   * with one, so a group's result is its pieces' redactions one after another); the bytes
   * between them go out as they are. Returns where the last hinted line ends.
   */
  private redactHinted(chunk: Buffer, hinted: HintedLines, from: number, out: Pieces): number {
    const { lines, masks } = hinted;
    const count = lines.length / 2;
    const pieces: string[] = [];
    for (let i = 0; i < count; i++) pieces.push(chunk.toString('latin1', lines[2 * i], lines[2 * i + 1]));
    const redacted = new Array<string>(count);
    const groups = new Map<number, number[]>();
    for (let i = 0; i < count; i++) {
      // A piece without a `\n` at its end (the range's last, ended by a `\r`) goes alone: in a group it could not be told apart.
      const key = pieces[i]?.endsWith('\n') ? (masks[i] ?? -1) : -2 - i;
      const group = groups.get(key);
      if (group) group.push(i);
      else groups.set(key, [i]);
    }
    for (const [key, members] of groups) {
      const mask = key < 0 ? (masks[members[0] ?? 0] ?? -1) : key;
      const whole = members.map((i) => pieces[i]).join('');
      const result = redactHintedLines(this.stages, whole, (rule) => ruleAbsent(rule, mask));
      let at = 0;
      for (const [k, i] of members.entries()) {
        const nl = k === members.length - 1 ? -1 : result.indexOf('\n', at);
        const next = nl === -1 ? result.length : nl + 1;
        redacted[i] = result === whole ? (pieces[i] ?? '') : result.slice(at, next);
        at = next;
      }
    }
    for (let i = 0; i < count; i++) {
      const start = lines[2 * i] ?? 0;
      const stop = lines[2 * i + 1] ?? 0;
      out.raw(from, start);
      if (redacted[i] === pieces[i]) out.raw(start, stop);
      else out.text(redacted[i] ?? '');
      from = stop;
    }
    return from;
  }

  finish(): string {
    const out = this.run(true, true);
    this.restore('', false);
    return out;
  }

  /** Releases what is final in the held text; what could still be part of a match stays held. */
  private run(final: boolean, partial: boolean): string {
    const p = this.held;
    const scan: Scan = { p, pos: this.done, seg: 0, beginScan: this.beginScan, endScan: this.endScan, out: [], final, partial };
    let more = true;
    while (more && scan.pos < p.length) more = this.inKey ? this.stepKey(scan) : this.stepText(scan);
    const rest = scan.seg === 0 ? p : p.slice(scan.seg);
    this.parts = rest ? [rest] : [];
    this.length = rest.length;
    this.done = scan.pos - scan.seg;
    this.beginScan = Math.max(0, scan.beginScan - scan.seg);
    this.endScan = Math.max(0, scan.endScan - scan.seg);
    return scan.out.length === 1 ? (scan.out[0] ?? '') : scan.out.join('');
  }

  /** Key mode: the block ends at its END, or fails closed at the cap. False: wait for more input. */
  private stepKey(scan: Scan): boolean {
    const { p, pos } = scan;
    const limit = Math.min(p.length, pos + this.caps.key);
    END_RE.lastIndex = Math.max(pos + 1, scan.endScan);
    const m = END_RE.exec(limit === p.length ? p : p.slice(0, limit));
    if (m) scan.pos = m.index + m[0].length;
    else if (limit === pos + this.caps.key)
      scan.pos = limit; // fail closed: no END within the cap
    else if (scan.final)
      scan.pos = p.length; // unterminated at end of stream
    else {
      scan.endScan = Math.max(pos + 1, limit - MAX_MARKER);
      return false;
    }
    scan.out.push(KEY_MARKER);
    this.inKey = false;
    scan.seg = scan.pos;
    scan.beginScan = scan.pos;
    return true;
  }

  /**
   * Text mode: releases whole lines (a `\r` ends one too: no rule matches across it), up to a
   * BEGIN marker or a cut of an over-long line, then the incomplete last line up to where a match
   * could begin. False: wait for more input.
   */
  private stepText(scan: Scan): boolean {
    const { p, final } = scan;
    const lineCap = this.caps.line;
    BEGIN_RE.lastIndex = Math.max(scan.pos, scan.beginScan);
    const bm = BEGIN_RE.exec(p);
    const b = bm ? bm.index : -1;
    scan.beginScan = bm ? b : Math.max(scan.pos, p.length - MAX_MARKER);
    const breaks = new LineBreaks(p);
    for (let ls = scan.seg; ;) {
      // The released start of a line holds no line break: search from where release got to.
      const br = breaks.next(Math.max(ls, scan.pos));
      const lineEnd = br === -1 ? p.length : br;
      // A BEGIN that starts before its line's cap wins over cutting the line.
      if (b >= 0 && b < lineEnd && b < ls + lineCap) return this.enterKey(scan, b);
      if (lineEnd - ls >= lineCap) {
        // Before cutting a line that is still open, be sure no BEGIN starts before the cap.
        const mayBegin = br === -1 && b < 0 && !final && p.length < ls + lineCap + MAX_MARKER;
        if (mayBegin) return this.releasePartial(scan, ls);
        const cut = softCut(p, ls, lineCap);
        this.release(scan, cut);
        scan.seg = cut;
        return true;
      }
      if (br === -1) {
        if (!final) return this.releasePartial(scan, ls);
        this.release(scan, p.length);
        scan.seg = p.length;
        return false;
      }
      ls = br + 1;
    }
  }

  /**
   * Releases the incomplete line starting at `ls` up to the leftmost point where a match could
   * begin (starts.ts). Never past where the line's cap could cut it (so a cut never falls in
   * released text): a line that may reach its cap releases nothing more until it is cut. The
   * line stays held from its start, as context for the rules.
   */
  private releasePartial(scan: Scan, ls: number): false {
    const { p } = scan;
    const floor = ls + this.caps.line - (this.caps.line >> 4);
    const from = Math.max(scan.pos, ls);
    let to = from;
    if (scan.partial && from < floor) {
      const k = ls + holdPoint(this.starts, ls === 0 ? p : p.slice(ls), from - ls);
      // Past the floor, a release could split a match that the cut would keep whole: wait for the cut.
      if (k > from && k <= floor && (k === p.length || !this.splitsMatch(p, ls, k))) to = k;
    }
    this.release(scan, to);
    scan.seg = ls;
    return false;
  }

  /**
   * Whether a complete match in the text so far crosses `k` (a rule's match can hold a place
   * where another's could begin: the digits ending a token may begin a card number), seen as
   * the redaction up to `k` not being where the redaction of everything so far begins.
   */
  private splitsMatch(p: string, ls: number, k: number): boolean {
    // Matches never cross a line break, so the incomplete line alone decides.
    const upTo = redactLines(this.stages, p.slice(ls, k));
    return !redactLines(this.stages, ls === 0 ? p : p.slice(ls)).startsWith(upTo);
  }

  private enterKey(scan: Scan, begin: number): true {
    this.release(scan, begin);
    this.inKey = true;
    scan.seg = begin;
    scan.endScan = 0;
    return true;
  }

  /**
   * Redacts and releases the text up to `to`. The rules see the segment from its start, so a
   * segment released in pieces comes out as it would whole: by the hold point's choice, no match
   * (or its context) crosses where an earlier piece ended.
   */
  private release(scan: Scan, to: number): void {
    const { p, pos, seg } = scan;
    if (to <= pos) return;
    const whole = redactLines(this.stages, seg === 0 && to === p.length ? p : p.slice(seg, to));
    if (pos === seg) scan.out.push(whole);
    else scan.out.push(afterReleased(whole, redactLines(this.stages, p.slice(seg, pos))));
    scan.pos = to;
  }
}

/**
 * The part of a segment's redaction after what was released before. It always extends it (the
 * property tests check this); if it ever did not, what follows the common part goes out, which
 * repeats a few bytes but never lets a match through unredacted.
 */
function afterReleased(whole: string, before: string): string {
  if (whole.startsWith(before)) return whole.slice(before.length);
  let i = 0;
  while (i < before.length && whole.charCodeAt(i) === before.charCodeAt(i)) i++;
  return whole.slice(i);
}

export function newEngine(level: Exclude<RedactLevel, 'none'>, options: RedactorOptions | undefined): Engine {
  const byteScan = (options?.byteScan ?? true) && (options?.prefilter ?? true) ? { personal: level === 'all' } : null;
  return new Engine(stagesFor(level, options?.prefilter ?? true), resolveCaps(options), byteScan);
}

/** The stages' start patterns as one array, the same array for the same stages (starts.ts compiles each array once). */
const startArrays = new WeakMap<readonly Start[], WeakMap<readonly Start[], readonly Start[]>>();
const NO_STARTS: readonly Start[] = [];

function startsOf(stages: readonly Stage[]): readonly Start[] {
  const [first, second, ...rest] = stages;
  if (!first) return NO_STARTS;
  if (!second) return first.starts;
  if (rest.length > 0) return stages.flatMap((s) => s.starts);
  let bySecond = startArrays.get(first.starts);
  if (!bySecond) startArrays.set(first.starts, (bySecond = new WeakMap()));
  let both = bySecond.get(second.starts);
  if (!both) bySecond.set(second.starts, (both = [...first.starts, ...second.starts]));
  return both;
}

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** The first `\n` or `\r` at or after `from`, or -1. */
function nextBreak(b: Buffer, from: number): number {
  const nl = b.indexOf(10, from);
  const cr = b.indexOf(13, from);
  return nl === -1 ? cr : cr === -1 ? nl : Math.min(nl, cr);
}

/** Just past the line break after the first private key END marker at or after `from`, if that is before `end`; else -1. */
function lineAfterEnd(b: Buffer, from: number, end: number): number {
  const pem = b.indexOf('-----END ', from, 'latin1');
  const ssh = b.indexOf('---- END SSH2 ', from, 'latin1');
  const at = pem === -1 ? ssh : ssh === -1 ? pem : Math.min(pem, ssh);
  if (at === -1 || at >= end) return -1;
  const br = nextBreak(b, at);
  return br === -1 || br >= end ? -1 : br + 1;
}

function lastBreak(b: Buffer): number {
  return Math.max(b.lastIndexOf(10), b.lastIndexOf(13));
}

/** Whether every line in `b[from, to)` (ended by `\n` or `\r`) is shorter than `cap`, as the engine needs to not cut it. */
function linesUnder(b: Buffer, from: number, to: number, cap: number): boolean {
  if (to - from <= cap) return true;
  // A line of `cap` or more holds `cap` bytes in a row without a break. So look at `cap` bytes
  // from a line's start: without a break among them, that line is too long; else the next
  // look starts after the last break in them. Two searches per `cap` bytes or so, not two per
  // line (an agent's frame of random bytes has ~4,000 lines per MiB: 0.25 ms of CPU per MiB).
  for (let ls = from; to - ls >= cap;) {
    const window = b.subarray(ls, ls + cap);
    const br = Math.max(window.lastIndexOf(10), window.lastIndexOf(13));
    if (br === -1) return false;
    ls += br + 1;
  }
  return true;
}

/** Pieces as one buffer (the only one as it is, without a copy). */
function joined(pieces: readonly Buffer[]): Buffer {
  if (pieces.length === 1) return pieces[0] as Buffer;
  return Buffer.concat(pieces);
}

/** The released bytes of one `feedBytes`: ranges of the chunk (joined where they touch) and redacted text. */
class Pieces {
  private readonly parts: Buffer[] = [];
  private rawFrom = -1;
  private rawTo = -1;

  constructor(private readonly chunk: Buffer) {}

  raw(from: number, to: number): this {
    if (to <= from) return this;
    if (this.rawTo === from) this.rawTo = to;
    else {
      this.endRaw();
      this.rawFrom = from;
      this.rawTo = to;
    }
    return this;
  }

  text(s: string): this {
    if (!s) return this;
    this.endRaw();
    this.parts.push(latin1(s));
    return this;
  }

  /** The pieces, none empty. */
  done(): Buffer[] {
    this.endRaw();
    return this.parts;
  }

  private endRaw(): void {
    if (this.rawTo > this.rawFrom) this.parts.push(this.chunk.subarray(this.rawFrom, this.rawTo));
    this.rawFrom = this.rawTo = -1;
  }
}

/**
 * Redacts a whole text at once: the same result as streaming it through an OutputRedactor and
 * flushing (caps count UTF-16 units here, which are bytes for latin1/ASCII text).
 */
export function redactText(level: RedactLevel, text: string, options?: RedactorOptions): string {
  if (level === 'none') return text;
  const engine = newEngine(level, options);
  engine.restore(text, false);
  return engine.finish();
}
