/**
 * The masking state of a task's output streams (stdout, stderr, ...), sharing their
 * SecretMasker's read-only automata (masker.ts explains the shape; aho-corasick.ts the
 * automata; wrap-rules.ts the wrapped forms; mask-regions.ts one stream's emission state;
 * stream-seams.ts values split between two streams).
 *
 * Two automata. `exact` holds the forms matched byte for byte (raw value, URL, JSON, shell,
 * HTML...); `wrappable` holds base64 and hex forms and skips short runs of spaces and line
 * breaks inside them (wrap-rules.ts). Every byte is scanned by both (in one pass), and a match
 * of either becomes a region to mask; a wrapped match's region is clipped by the release rule.
 *
 * Sequences. Each stream is a sequence of its own: a region found there masks those bytes, so
 * a value printed to stdout in two writes with a stderr line between them is masked (it is
 * whole on stdout, which a user may read alone). A value split between two streams is found
 * across a seam (stream-seams.ts: the end of a write on one stream joined to the start of a
 * write on the other, for reads close in time, in either order: the order in which the agent
 * reads two pipes is not the order they were written) and masked
 * in EACH stream, each part with its own mask, so nothing of it is visible on either stream,
 * read apart, interleaved or `2>&1`. Input comes in turns (`pushTurn`: the chunks of all
 * streams read in one event-loop turn); `push` is a turn of one chunk.
 *
 * What may be emitted. For a sequence, `safe` is the start of its pending strings (the
 * longest suffix that begins some form, per automaton; for wrapped forms after the release
 * rule): no region found later can start before it. A stream's byte goes out at the end of a
 * turn when it is before its own safe point, before every live seam's strings, and (with
 * several streams) not in a part still held for joining (until the second `tick()` after it
 * arrived). Safe points never go back, each region is emitted once whole, and the output
 * depends only on the bytes, the turns and the ticks, not on how a turn's chunks were cut.
 *
 * Hold-back bound. A stream holds at most: the longest exact form; the longest wrappable form
 * times (1 + MAX_SEPARATOR_RUN) plus two bytes; the strings of live seams (same bounds); and,
 * with several streams, what it received in the last two ticks (task-runner.ts ticks every
 * 20 ms, so at most 40 ms). One stream alone emits an ordinary line at once (the release
 * rule). `end(stream)` releases what only that stream could have completed; when
 * every stream has ended, everything goes out.
 */
import type { ByteAutomaton, MatchSink } from './aho-corasick.js';
import { MaskedOutput } from './mask-regions.js';
import { StreamSeams, type StreamsView, type TurnPart } from './stream-seams.js';
import { clipStart, walkBack, type ByteAt } from './wrap-rules.js';

/** The compiled automata of a SecretMasker and its mask text. */
export interface MaskerAutomata {
  exact: ByteAutomaton | undefined;
  wrappable: ByteAutomaton | undefined;
  mask: Buffer;
}

interface Emitted {
  stream: number;
  bytes: Buffer;
}

/** The engine behind MaskerStream (one stream) and MaskerStreamGroup (several). */
class StreamsEngine implements StreamsView {
  outs: MaskedOutput[] = [];
  readonly emitted: Emitted[] = [];
  readonly exact: ByteAutomaton | undefined;
  readonly wrap: ByteAutomaton | undefined;
  private readonly exactState: number[];
  private readonly wrapState: number[];
  private readonly ownSafe: number[];
  private readonly ownKeep: number[];
  private readonly ended: boolean[];
  private readonly exactSinks: MatchSink[] = [];
  private readonly wrapSinks: MatchSink[] = [];
  private seams: StreamSeams | undefined;

  constructor(
    private readonly automata: MaskerAutomata,
    private readonly count: number,
  ) {
    this.exact = automata.exact;
    this.wrap = automata.wrappable;
    this.exactState = new Array<number>(count).fill(0);
    this.wrapState = new Array<number>(count).fill(0);
    this.ownSafe = new Array<number>(count).fill(0);
    this.ownKeep = new Array<number>(count).fill(0);
    this.ended = new Array<boolean>(count).fill(false);
    for (let k = 0; k < count; k++) {
      this.outs.push(new MaskedOutput(automata.mask));
      this.exactSinks.push({ match: (end, len) => this.outs[k]!.addRegion(end - len, end) });
      this.wrapSinks.push({ match: (end, len) => this.outs[k]!.addRegion(...this.wrappedRegion(this.outs[k]!.byteAt, end, len)) });
    }
    this.seams = count > 1 ? new StreamSeams(this) : undefined;
  }

  /** A wrapped match of `len` form characters ending at `end`: its region, after the release rule. */
  wrappedRegion(byteAt: ByteAt, end: number, len: number): [number, number] {
    const separator = this.wrap!.separator;
    return [clipStart(byteAt, separator, walkBack(byteAt, separator, end, len), end), end];
  }

  /** The chunks read in one event-loop turn, [stream, chunk] in the order they were read. */
  pushTurn(chunks: readonly (readonly [number, Buffer])[]): void {
    this.emitted.length = 0;
    const parts: TurnPart[] = [];
    for (const [k, chunk] of chunks) {
      if (chunk.length === 0) continue;
      const out = this.outs[k]!;
      let part = parts.find((p) => p.stream === k);
      if (!part) {
        const before = { exactBefore: this.exactState[k]!, wrapBefore: this.wrapState[k]!, pendingBefore: this.ownKeep[k]! };
        part = { stream: k, start: out.pos, end: out.pos, ...before };
        parts.push(part);
      }
      this.scanOwn(k, chunk);
      part.end = out.pos;
    }
    if (parts.length === 0) return;
    this.seams?.addTurn(parts);
    for (const part of parts) this.updateOwnPending(part.stream);
    this.settleAll(parts.map((p) => p.stream));
  }

  /** One tick of the caller's clock: output held for joining since the tick before goes out. */
  tick(): void {
    this.emitted.length = 0;
    this.seams?.tick();
    this.settleAll([]);
  }

  /** End of one stream; when all have ended, everything is emitted and the engine starts afresh. */
  end(k: number): void {
    this.emitted.length = 0;
    if (this.ended[k]) return;
    this.ended[k] = true;
    this.ownSafe[k] = this.outs[k]!.pos;
    this.ownKeep[k] = this.outs[k]!.pos;
    const all = this.ended.every(Boolean);
    if (all) this.seams = undefined;
    this.settleAll([k]);
    if (all) this.reset();
  }

  private reset(): void {
    this.outs = this.outs.map(() => new MaskedOutput(this.automata.mask));
    for (let k = 0; k < this.count; k++) {
      this.exactState[k] = 0;
      this.wrapState[k] = 0;
      this.ownSafe[k] = 0;
      this.ownKeep[k] = 0;
      this.ended[k] = false;
    }
    this.seams = this.count > 1 ? new StreamSeams(this) : undefined;
  }

  private scanOwn(k: number, chunk: Buffer): void {
    const base = this.outs[k]!.pos;
    this.outs[k]!.append(chunk);
    if (this.exact && this.wrap) {
      [this.exactState[k], this.wrapState[k]] = this.exact.scanWith(
        this.wrap,
        chunk,
        this.exactState[k]!,
        this.wrapState[k]!,
        base,
        this.exactSinks[k]!,
        this.wrapSinks[k]!,
      );
    } else if (this.exact) this.exactState[k] = this.exact.scan(chunk, this.exactState[k]!, base, this.exactSinks[k]!);
    else if (this.wrap) this.wrapState[k] = this.wrap.scan(chunk, this.wrapState[k]!, base, this.wrapSinks[k]!);
  }

  /** Stream k's own safe point and the start of what it must keep (after a push to it). */
  private updateOwnPending(k: number): void {
    const out = this.outs[k]!;
    const pos = out.pos;
    let safe = pos;
    let keep = pos;
    if (!this.ended[k]) {
      if (this.exact) safe = keep = pos - this.exact.depthOf(this.exactState[k]!);
      const depth = this.wrap ? this.wrap.depthOf(this.wrapState[k]!) : 0;
      if (this.wrap && depth > 0) {
        const start = walkBack(out.byteAt, this.wrap.separator, pos, depth);
        safe = Math.min(safe, clipStart(out.byteAt, this.wrap.separator, start, pos));
        keep = Math.min(keep, start);
      }
    }
    this.ownSafe[k] = safe;
    this.ownKeep[k] = keep;
  }

  /** Emits what every sequence allows, the streams of this turn last (in read order). */
  private settleAll(turn: readonly number[]): void {
    const safe = [...this.ownSafe];
    const keep = [...this.ownKeep];
    this.seams?.constrain(safe, keep);
    const order = [...Array.from({ length: this.count }, (_, j) => j).filter((j) => !turn.includes(j)), ...turn];
    for (const j of order) {
      const bytes = this.outs[j]!.settle(safe[j]!, keep[j]!);
      if (bytes.length > 0) this.emitted.push({ stream: j, bytes });
    }
  }
}

const EMPTY: Buffer = Buffer.alloc(0);

/** One output stream's masking state; get it from `SecretMasker.forStream()`. */
export class MaskerStream {
  private readonly engine: StreamsEngine | undefined;

  constructor(automata: MaskerAutomata) {
    this.engine = automata.exact || automata.wrappable ? new StreamsEngine(automata, 1) : undefined;
  }

  /** Bytes currently held back (not yet returned, not yet covered by a returned mask). */
  get heldBytes(): number {
    return this.engine?.outs[0]!.heldBytes ?? 0;
  }

  /** Consumes a chunk; returns what can be emitted now (possibly empty, possibly the chunk itself or a view of it). */
  push(chunk: Buffer): Buffer {
    if (!this.engine) return chunk;
    this.engine.pushTurn([[0, chunk]]);
    return this.engine.emitted[0]?.bytes ?? EMPTY;
  }

  /** End of stream: returns everything still held (masked as needed) and resets the stream for reuse. */
  flush(): Buffer {
    if (!this.engine) return EMPTY;
    this.engine.end(0);
    return this.engine.emitted[0]?.bytes ?? EMPTY;
  }
}

/**
 * Several streams of one task masked together (each on its own, and across seams);
 * get it from `SecretMasker.forStreams(ids)`. Each call returns what may be emitted now, as
 * [stream id, bytes] pairs, at most one per stream.
 */
export class MaskerStreamGroup<Id> {
  private readonly engine: StreamsEngine | undefined;
  private readonly index = new Map<Id, number>();

  constructor(
    automata: MaskerAutomata,
    private readonly ids: readonly Id[],
  ) {
    ids.forEach((id, i) => this.index.set(id, i));
    this.engine = automata.exact || automata.wrappable ? new StreamsEngine(automata, ids.length) : undefined;
  }

  /** Bytes of stream `id` currently held back. */
  heldBytes(id: Id): number {
    return this.engine?.outs[this.indexOf(id)]!.heldBytes ?? 0;
  }

  /** One chunk of stream `id` (a turn of its own). */
  push(id: Id, chunk: Buffer): [Id, Buffer][] {
    return this.pushTurn([[id, chunk]]);
  }

  /**
   * The chunks read in one event-loop turn, in the order they were read: which stream wrote
   * first is not known within a turn (stream-seams.ts), so a value split between them is
   * masked whichever did.
   */
  pushTurn(chunks: readonly (readonly [Id, Buffer])[]): [Id, Buffer][] {
    if (!this.engine) return chunks.filter(([, c]) => c.length > 0).map(([id, c]) => [id, c]);
    this.engine.pushTurn(chunks.map(([id, c]) => [this.indexOf(id), c] as const));
    return this.results();
  }

  /**
   * One tick of the caller's clock (call it every few milliseconds while output may come):
   * output is held until the second tick after it arrived, so that a value split between the
   * streams is found; what arrives with at most one tick between is joined.
   */
  tick(): [Id, Buffer][] {
    if (!this.engine) return [];
    this.engine.tick();
    return this.results();
  }

  /** End of stream `id`; once every stream has ended, the group starts afresh. */
  end(id: Id): [Id, Buffer][] {
    if (!this.engine) return [];
    this.engine.end(this.indexOf(id));
    return this.results();
  }

  private indexOf(id: Id): number {
    const i = this.index.get(id);
    if (i === undefined) throw new RangeError(`unknown output stream ${String(id)}`);
    return i;
  }

  private results(): [Id, Buffer][] {
    return this.engine!.emitted.map((e) => [this.ids[e.stream]!, e.bytes]);
  }
}
