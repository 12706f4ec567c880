/**
 * The streaming matcher. Output arrives as ordered chunks of raw bytes with boundaries
 * anywhere. Everything here works on latin1 ("binary") strings, one char per byte, so invalid
 * UTF-8 passes through unchanged and every offset is a byte offset. Each match is replaced by
 * `[REDACTED:<rule>]`; the bytes around it are kept.
 *
 * How the stream is cut (all of it decided by the content alone, never by where chunks end, so
 * output is identical for every chunking of the same input):
 * - Single-line rules never match across `\n`, so complete lines are redacted as they arrive
 *   and only the incomplete last line is held back.
 * - A line that reaches LINE_HOLD_CAP (64 KiB) bytes without a newline is cut there anyway, so a
 *   stream without newlines cannot grow memory. The cut goes just after the last space or tab in
 *   the final 1/16 of the window when there is one, else at exactly the cap. Each piece is
 *   redacted on its own, so a secret that straddles such a cut can escape its rule. A BEGIN
 *   marker (below) that starts before the cap is never cut through; to know there is none, up
 *   to 128 bytes past the cap may be held.
 * - Private key blocks span lines. From a `-----BEGIN ... PRIVATE KEY-----` marker the stream is
 *   held until the matching `-----END ... PRIVATE KEY-----` (any END variant); the whole block
 *   becomes one marker. If no END arrives within KEY_HOLD_CAP (16 KiB) of the BEGIN, the 16 KiB
 *   from BEGIN are redacted anyway (fail closed) and scanning carries on after them. An
 *   unterminated block at the end of the stream is redacted to the end.
 *
 * States: text mode (holding at most an incomplete line) ⇄ key mode (holding a block from its
 * BEGIN). What is held is small (usually the incomplete last line; at most 64 KiB + 128 bytes)
 * and restorable (`held`, `inKeyBlock`, `restore`), because the server keeps nothing in memory
 * between a task's uploads: redactor.ts serializes it.
 *
 * Speed: each line is first scanned for per-stage hints (stages.ts); only lines with a hint go
 * through the rules.
 */
import type { RedactLevel } from '@ferry/protocol';
import { BEGIN_AT, BEGIN_RE, END_RE, KEY_MARKER, MAX_MARKER } from './secret-rules.js';
import { redactLines, stagesFor, type Stage } from './stages.js';

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
  pos: number;
  /** As the engine's fields of the same name, during the pass. */
  beginScan: number;
  endScan: number;
  readonly out: string[];
  /** The stream ends here: release everything. */
  readonly final: boolean;
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

/** A streaming matcher for one stream at one level (not `none`, which needs no matching). */
export class Engine {
  private parts: string[] = [];
  private length = 0;
  /** The held-back text starts with a BEGIN marker whose END has not been seen. */
  private inKey = false;
  /** Text mode: no BEGIN marker starts before this offset of the held-back text. */
  private beginScan = 0;
  /** Key mode: no END marker starts before this offset. */
  private endScan = 0;

  constructor(
    private readonly stages: readonly Stage[],
    private readonly caps: Caps,
  ) {}

  get held(): string {
    if (this.parts.length > 1) this.parts = [this.parts.join('')];
    return this.parts[0] ?? '';
  }

  get inKeyBlock(): boolean {
    return this.inKey;
  }

  restore(held: string, inKey: boolean): void {
    if (inKey) {
      BEGIN_AT.lastIndex = 0;
      if (!BEGIN_AT.test(held)) throw new Error('redaction state is corrupt: a key block does not start with a BEGIN marker');
    }
    this.parts = held ? [held] : [];
    this.length = held.length;
    this.inKey = inKey;
    this.beginScan = 0;
    this.endScan = 0;
  }

  feed(s: string): string {
    if (!s) return '';
    this.parts.push(s);
    this.length += s.length;
    // Nothing can be released until a line completes or a cap is reached.
    const cap = this.inKey ? this.caps.key : this.caps.line + MAX_MARKER;
    if (s.indexOf('\n') === -1 && this.length < cap) return '';
    return this.run(false);
  }

  finish(): string {
    const out = this.run(true);
    this.restore('', false);
    return out;
  }

  /** Releases what is final in the held text; what could still be part of a match stays held. */
  private run(final: boolean): string {
    const scan: Scan = { p: this.held, pos: 0, beginScan: this.beginScan, endScan: this.endScan, out: [], final };
    let more = true;
    while (more && scan.pos < scan.p.length) more = this.inKey ? this.stepKey(scan) : this.stepText(scan);
    const rest = scan.pos === 0 ? scan.p : scan.p.slice(scan.pos);
    this.parts = rest ? [rest] : [];
    this.length = rest.length;
    this.beginScan = Math.max(0, scan.beginScan - scan.pos);
    this.endScan = Math.max(0, scan.endScan - scan.pos);
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
    scan.beginScan = scan.pos;
    return true;
  }

  /** Text mode: releases whole lines, up to a BEGIN marker or a cut of an over-long line. False: wait for more input. */
  private stepText(scan: Scan): boolean {
    const { p, final } = scan;
    const lineCap = this.caps.line;
    BEGIN_RE.lastIndex = Math.max(scan.pos, scan.beginScan);
    const bm = BEGIN_RE.exec(p);
    const b = bm ? bm.index : -1;
    scan.beginScan = bm ? b : Math.max(scan.pos, p.length - MAX_MARKER);
    for (let ls = scan.pos; ;) {
      const nl = p.indexOf('\n', ls);
      const lineEnd = nl === -1 ? p.length : nl;
      // A BEGIN that starts before its line's cap wins over cutting the line.
      if (b >= 0 && b < lineEnd && b < ls + lineCap) return this.enterKey(scan, b);
      if (lineEnd - ls >= lineCap) {
        // Before cutting a line that is still open, be sure no BEGIN starts before the cap.
        const mayBegin = nl === -1 && b < 0 && !final && p.length < ls + lineCap + MAX_MARKER;
        return this.release(scan, mayBegin ? ls : softCut(p, ls, lineCap), !mayBegin);
      }
      if (nl === -1) return this.release(scan, final ? p.length : ls, false);
      ls = nl + 1;
    }
  }

  private enterKey(scan: Scan, begin: number): true {
    this.release(scan, begin, true);
    this.inKey = true;
    scan.endScan = 0;
    return true;
  }

  /** Redacts and releases the text up to `to`; returns `more` (whether to keep scanning). */
  private release(scan: Scan, to: number, more: boolean): boolean {
    const { p, pos } = scan;
    if (to > pos) scan.out.push(redactLines(this.stages, pos === 0 && to === p.length ? p : p.slice(pos, to)));
    scan.pos = to;
    return more;
  }
}

export function newEngine(level: Exclude<RedactLevel, 'none'>, options: RedactorOptions | undefined): Engine {
  return new Engine(stagesFor(level, options?.prefilter ?? true), resolveCaps(options));
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
