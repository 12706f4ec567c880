/**
 * Values split between two output streams (`printf %s "${S:0:10}"; printf %s "${S:10}" >&2`):
 * where the masker looks for them, and what it holds back meanwhile (masker-stream.ts has the
 * rest of the masker; this is its cross-stream part).
 *
 * What is known of the order. The agent reads stdout and stderr from two pipes. A read returns
 * whatever the pipe holds, so it may join writes made before AND after a write to the other
 * pipe, and when both pipes are readable in one event-loop turn libuv may deliver either
 * first. Observed with the command above followed by `echo; echo >&2`: stdout read as
 * "…head\n" then stderr as "tail\n" (the `\n` was written after the tail), or stderr first.
 * So no single merged order of the two streams is right; what is known is that the split lies
 * between two writes, and a write ends at the end of a read or, for line-oriented output, at a
 * line break.
 *
 * The model: seams. Output arrives in turns (the chunks of one event-loop turn, one part per
 * stream). A seam joins a point p of stream X to a point q of stream Y, X != Y, where p is a
 * "write end" of one of X's parts and q a "write start" of one of Y's parts. Write ends: the
 * end of the part; inside it, the position just before a line break where 3 or more characters
 * of a form end, or any position where 8 or more do (a head followed in the same read by a
 * later write of its stream; shorter heads there are not tried: with a hundred secrets nearly
 * any one or two characters begin some form, and trying them all costs more than scanning).
 * Write starts: the start of the part, and the position just after each line break inside it.
 * A form occurring in X[..p) ++ Y[q..] across the seam is masked on both streams, each part
 * with its own mask. The parts must be read close in time: readiness is not reported in write
 * order either (observed: head, then a later stdout write, then the tail, in three turns), so
 * the caller ticks a clock (every 20 ms in task-runner.ts) and parts are joined when at most
 * one tick lies between their arrivals. Not caught: a value cut into three or more pieces that
 * alternate between the streams; a split where one side shows no write boundary (a head of
 * one or two characters followed in its read by more of its stream, a tail preceded in its
 * read by more of its stream on the same line); pieces written more than a tick apart. When the
 * piece after the seam is a long fragment of a form and the piece before it is very short, the
 * short piece is masked at every write end of the part that ends with it.
 *
 * States. `held`: the parts read since the tick before last, kept unemitted (from the start of
 * their stream's pending string before the part, so every string ending inside a part is
 * still there) so that later parts can be joined to them; a part goes at the second tick after
 * it arrived. `seams`: live seams, each with the automata states after Y[q .. at); a seam dies
 * when its strings lie inside Y (from then on Y's own scan finds every match, as in the
 * four-lane re-synchronisation of aho-corasick.ts), usually after a byte or two; until then it
 * holds X's bytes of its strings and Y's bytes from q.
 *
 * Cost: nothing while only one stream writes. When both write within two ticks, each part is
 * looked at a second time, once (`statesAlong`: one table load per byte, for its states at
 * write ends, kept only when their string is non-empty, deduplicated) and its write starts are
 * indexed by first byte, so a (state, write start) pair is followed only if the state's string
 * goes on into Y. Measured with 100 secrets and both streams writing all the time: about 50
 * MiB/s (one stream: about 500). At most MAX_SEAMS live seams (more are not followed).
 * Memory: the held parts, i.e. what the task wrote in the last two ticks.
 */
import type { ByteAutomaton } from './aho-corasick.js';
import type { MaskedOutput } from './mask-regions.js';
import { clipStart, walkBack, type ByteAt } from './wrap-rules.js';

const MAX_SEAMS = 1024;
/** Inside a read, a line break is taken as a possible write end when this many characters of a form end there. */
const LINE_WRITE_END = 3;
/** Inside a read, any position is taken as a possible write end when this many characters of a form end there. */
const DEEP_WRITE_END = 8;
const CR = 0x0d;
const LF = 0x0a;
const isLineBreak = (b: number): boolean => b === CR || b === LF;

/** One stream's bytes in one turn, and its own state before them. */
export interface TurnPart {
  stream: number;
  /** Stream offsets of the part: [start, end). */
  start: number;
  end: number;
  exactBefore: number;
  wrapBefore: number;
  /** Start of the stream's pending strings before the part (no string inside the part starts earlier). */
  pendingBefore: number;
}

/** What the seams need from the masker. */
export interface StreamsView {
  readonly exact: ByteAutomaton | undefined;
  readonly wrap: ByteAutomaton | undefined;
  readonly outs: readonly MaskedOutput[];
  /** A wrapped match of `len` characters ending at `end` of a sequence: its region after the release rule. */
  wrappedRegion(byteAt: ByteAt, end: number, len: number): [number, number];
}

interface HeldPart extends TurnPart {
  /** The tick count when it arrived: it is released at tick `tick + 2`. */
  tick: number;
  /** Distinct states at the part's write ends with a non-empty string, and where (lazily). */
  ends?: { exact: number; wrap: number; at: number[] }[];
  /** The part's write starts, by first byte (lazily). */
  starts?: Map<number, number[]>;
}

interface Seam {
  x: number;
  y: number;
  /** The write ends in X where the seam's state was reached (same state: same future in Y). */
  ps: readonly number[];
  q: number;
  exact: number;
  wrap: number;
  /** Y's bytes [q, at) have been stepped. */
  at: number;
  dead: boolean;
}

export class StreamSeams {
  private held: HeldPart[] = [];
  private seams: Seam[] = [];
  private ticks = 0;

  constructor(private readonly view: StreamsView) {}

  /** A new turn: its parts are joined to each other and to the held ones; live seams go on into the new bytes. */
  addTurn(parts: readonly TurnPart[]): void {
    const now: HeldPart[] = parts.map((p) => ({ ...p, tick: this.ticks }));
    const wrote = new Set(parts.map((p) => p.stream));
    for (const seam of this.seams) if (wrote.has(seam.y)) this.advance(seam);
    this.seams = this.seams.filter((seam) => !seam.dead);
    const all = [...this.held, ...now];
    for (let i = 0; i < all.length; i++) {
      for (let j = 0; j < all.length; j++) {
        const xp = all[i]!;
        const yp = all[j]!;
        if (xp.stream !== yp.stream && (i >= this.held.length || j >= this.held.length)) this.join(xp, yp);
      }
    }
    this.held = all;
  }

  /** One tick of the caller's clock: the parts that were already held at the previous tick go (no later part is joined to them). */
  tick(): void {
    this.ticks++;
    this.held = this.held.filter((p) => p.tick >= this.ticks - 1);
  }

  /** Lowers each stream's safe and keep points for the held parts and the live seams. */
  constrain(safe: number[], keep: number[]): void {
    const lower = (s: number, safeAt: number, keepAt: number): void => {
      safe[s] = Math.min(safe[s]!, safeAt);
      keep[s] = Math.min(keep[s]!, keepAt);
    };
    for (const part of this.held) lower(part.stream, Math.min(part.start, part.pendingBefore), Math.min(part.start, part.pendingBefore));
    for (const seam of this.seams) {
      for (const p of seam.ps) {
        const [from, clipped] = this.pending(seam, p);
        // X's bytes of the strings (those before the release rule's cut may go), then Y's from q.
        if (from < 0) lower(seam.x, clipped < 0 ? p + clipped : Infinity, p + from);
        lower(seam.y, seam.q + Math.max(0, clipped), seam.q + Math.max(0, from));
      }
    }
  }

  /** Starts the seams from X's write ends in xp to Y's write starts in yp whose strings cross. */
  private join(xp: HeldPart, yp: HeldPart): void {
    const { exact, wrap } = this.view;
    const ends = this.endsOf(xp);
    if (ends.length === 0) return;
    for (const end of ends) {
      for (const [b, qs] of this.startsOf(yp)) {
        // Does a string still reach back into X after Y's first byte?
        const crosses =
          (exact !== undefined && exact.depthOf(exact.stepByte(end.exact, b)) > 1) ||
          (wrap !== undefined && wrap.depthOf(wrap.stepByte(end.wrap, b)) > (wrap.separator[b] === 1 ? 0 : 1));
        if (!crosses) continue;
        for (const q of qs) {
          const seam: Seam = { x: xp.stream, y: yp.stream, ps: end.at, q, exact: end.exact, wrap: end.wrap, at: q, dead: false };
          this.advance(seam);
          if (!seam.dead && this.seams.length < MAX_SEAMS) this.seams.push(seam);
        }
      }
    }
  }

  /** The part's write starts (its start, and after each line break inside it), by first byte. */
  private startsOf(part: HeldPart): Map<number, number[]> {
    if (part.starts) return part.starts;
    const bytes = this.view.outs[part.stream]!.bytes(part.start, part.end);
    const starts = new Map<number, number[]>();
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (i > 0 && (isLineBreak(b) || !isLineBreak(bytes[i - 1]!))) continue;
      const list = starts.get(b);
      if (list) list.push(part.start + i);
      else starts.set(b, [part.start + i]);
    }
    part.starts = starts;
    return starts;
  }

  /** Distinct states (with a non-empty string) at the part's write ends, and where. */
  private endsOf(part: HeldPart): NonNullable<HeldPart['ends']> {
    if (part.ends) return part.ends;
    const { exact, wrap, outs } = this.view;
    const out = outs[part.stream]!;
    const n = part.end - part.start;
    const bytes = out.bytes(part.start, part.end);
    const es = new Int32Array(n + 1);
    const ws = new Int32Array(n + 1);
    exact?.statesAlong(bytes, 0, n, part.exactBefore, es);
    wrap?.statesAlong(bytes, 0, n, part.wrapBefore, ws);
    const found = new Map<number, { exact: number; wrap: number; at: number[] }>();
    const width = (wrap?.stateCount ?? 0) * ((wrap?.maxSkip ?? 0) + 1) + 1;
    for (let i = 1; i <= n; i++) {
      const e = es[i]!;
      const w = ws[i]!;
      const depth = Math.max(exact ? exact.depthOf(e) : 0, wrap ? wrap.depthOf(w) : 0);
      if (depth === 0) continue;
      const lineEnd = i < n && isLineBreak(bytes[i]!) && !isLineBreak(bytes[i - 1]!);
      if (!(i === n || (lineEnd && depth >= LINE_WRITE_END) || depth >= DEEP_WRITE_END)) continue;
      const key = e * width + w;
      const seen = found.get(key);
      if (seen) seen.at.push(part.start + i);
      else found.set(key, { exact: e, wrap: w, at: [part.start + i] });
    }
    part.ends = [...found.values()];
    return part.ends;
  }

  /** Steps the seam over Y's bytes it has not seen; masks what crosses it; dies once its strings lie inside Y. */
  private advance(seam: Seam): void {
    const { exact, wrap, outs } = this.view;
    const y = outs[seam.y]!;
    for (; seam.at < y.pos; seam.at++) {
      const b = y.byteAt(seam.at);
      const o = seam.at + 1 - seam.q; // seam offset of the end of this byte
      if (exact) {
        seam.exact = exact.stepByte(seam.exact, b);
        const m = exact.longestOf(seam.exact);
        if (m !== 0) for (const p of seam.ps) this.mask(seam, p, o - m, o);
      }
      if (wrap) {
        seam.wrap = wrap.stepByte(seam.wrap, b);
        const m = wrap.longestOf(seam.wrap);
        // Same state, but the separators skipped in X may differ from one write end to another.
        if (m !== 0) for (const p of seam.ps) this.mask(seam, p, ...this.view.wrappedRegion(this.readerOf(seam, p), o, m));
      }
      // A wrapped string of d characters spans at most 3d bytes (two separators after each).
      if ((!exact || exact.depthOf(seam.exact) <= o) && (!wrap || 3 * wrap.depthOf(seam.wrap) <= o)) {
        seam.dead = true;
        seam.at++;
        return;
      }
    }
  }

  /** Masks the seam offsets [a, b) of the seam from write end p (negative offsets: X's bytes before p). */
  private mask(seam: Seam, p: number, a: number, b: number): void {
    if (a < 0) this.view.outs[seam.x]!.addRegion(p + a, p);
    this.view.outs[seam.y]!.addRegion(seam.q + Math.max(0, a), seam.q + b);
  }

  /** Seam offsets [start, clipped start] of the seam's pending strings from write end p (negative: in X). */
  private pending(seam: Seam, p: number): [number, number] {
    const { exact, wrap } = this.view;
    const end = seam.at - seam.q;
    let from = exact ? end - exact.depthOf(seam.exact) : end;
    let clipped = from;
    const depth = wrap ? wrap.depthOf(seam.wrap) : 0;
    if (wrap && depth > 0) {
      const byteAt = this.readerOf(seam, p);
      const start = walkBack(byteAt, wrap.separator, end, depth);
      clipped = Math.min(clipped, clipStart(byteAt, wrap.separator, start, end));
      from = Math.min(from, start);
    }
    return [from, clipped];
  }

  /** Reads the seam's sequence X[..p) ++ Y[q..] by seam offset (negative: X). */
  private readerOf(seam: Seam, p: number): ByteAt {
    const x = this.view.outs[seam.x]!;
    const y = this.view.outs[seam.y]!;
    return (o) => (o < 0 ? x.byteAt(p + o) : y.byteAt(seam.q + o));
  }
}
