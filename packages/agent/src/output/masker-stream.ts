/**
 * One output stream's masking state (stdout, stderr, ...), sharing its SecretMasker's
 * read-only automaton (masker.ts explains the shape; aho-corasick.ts the automaton).
 *
 * States (per stream). `state` is the automaton state after every byte consumed so far; its
 * depth d is the length of the longest suffix of the stream that is a prefix of some pattern.
 * Offsets are absolute stream positions: `pos` bytes consumed; [0, done) settled (emitted as
 * is, or covered by a mask already emitted); `held` = the bytes [done, pos), kept back.
 * `starts`/`ends` are the pending mask regions (disjoint, non-adjacent, ordered, each the
 * union of overlapping or touching matches), not yet emitted. `maskOpen`/`maskEnd` describe
 * a mask already emitted whose region may still grow to the right (its bytes were swallowed;
 * more may be).
 *
 * Matching. At each byte the automaton reports the longest pattern ending there (shorter ones
 * ending at the same byte lie inside it). A match [a, b) is merged, stack-wise, with every
 * pending region that ends at or after a (overlap or adjacency), or into the open emitted mask
 * when maskEnd >= a. Matches arrive in order of their end, so this computes exactly the union
 * of all match spans, touching spans joined: ONE mask per union.
 *
 * Why holding back exactly d bytes is correct and enough. Let safe = pos - d.
 * - Any match that ends later than pos starts at or after safe: its part before pos is a
 *   suffix of the stream that is a prefix of a pattern, so it is at most d long. A match that
 *   ends exactly at pos was already seen (a >= pos - longest >= safe). Hence the bytes before
 *   safe that are in no region can never be masked: they are emitted now.
 * - safe never decreases (d grows by at most one per byte), so nothing emitted is revisited.
 * - A pending region starting at or before safe cannot grow to the left any more, so its mask
 *   is emitted at once and `done` jumps to its end; if it ends at or after safe it may still
 *   grow to the right (a later match may start inside it or right after it), so it stays open
 *   and the bytes that extend it are swallowed without a second mask. A region ending before
 *   safe is final.
 * - Nothing else is held: after each push, held = [done, pos) with done >= safe, i.e. at most
 *   the longest suffix that is a prefix of some pattern (less when a mask already covers part
 *   of it), and no byte is delayed otherwise.
 * The output therefore depends only on the byte stream, never on how it was cut into chunks,
 * and a stream with no match comes out byte-for-byte identical.
 */
import type { ByteAutomaton, MatchSink } from './aho-corasick.js';

const EMPTY: Buffer = Buffer.alloc(0);

/** One output stream's masking state; get it from `SecretMasker.forStream()`. */
export class MaskerStream {
  private state = 0;
  private pos = 0;
  private done = 0;
  private held: Buffer = EMPTY;
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private maskOpen = false;
  private maskEnd = 0;
  private readonly sink: MatchSink = { match: (end, length) => this.onMatch(end, length) };

  constructor(
    private readonly automaton: ByteAutomaton | undefined,
    private readonly maskBytes: Buffer,
  ) {}

  /** Bytes currently held back (not yet returned, not yet covered by a returned mask). */
  get heldBytes(): number {
    return this.held.length;
  }

  /** Consumes a chunk; returns what can be emitted now (possibly empty, possibly the chunk itself or a view of it). */
  push(chunk: Buffer): Buffer {
    const a = this.automaton;
    if (a === undefined) return chunk;
    const n = chunk.length;
    if (n === 0) return EMPTY;
    const base = this.pos;
    this.state = a.scan(chunk, this.state, base, this.sink);
    this.pos = base + n;
    const safe = this.pos - a.depth[this.state]!;
    if (this.held.length === 0 && this.starts.length === 0 && !this.maskOpen) {
      // Nothing pending (done === base): everything before safe goes out as is.
      const cut = safe - base;
      this.done = safe;
      if (cut === n) {
        this.held = EMPTY;
        return chunk;
      }
      this.held = Buffer.from(chunk.subarray(cut));
      return chunk.subarray(0, cut);
    }
    return this.settle(this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]), safe);
  }

  /** End of stream: returns everything still held (masked as needed) and resets the stream for reuse. */
  flush(): Buffer {
    if (this.automaton === undefined) return EMPTY;
    const out = this.held.length === 0 ? EMPTY : this.settle(this.held, this.pos);
    this.state = 0;
    this.pos = 0;
    this.done = 0;
    this.held = EMPTY;
    this.starts.length = 0;
    this.ends.length = 0;
    this.maskOpen = false;
    this.maskEnd = 0;
    return out;
  }

  /** A match [end - len, end): merges it with every pending region it overlaps or touches. */
  private onMatch(end: number, len: number): void {
    const at = end - len;
    const starts = this.starts;
    const ends = this.ends;
    let start = at;
    while (ends.length > 0 && ends[ends.length - 1]! >= at) {
      start = Math.min(start, starts.pop()!);
      ends.pop();
    }
    if (this.maskOpen && this.maskEnd >= at) {
      this.maskEnd = end; // every pending region lay after maskEnd, so all were merged above
      return;
    }
    starts.push(start);
    ends.push(end);
  }

  /**
   * Emits what is settled once the stream is known up to `pos` and nothing before `safe` can
   * join a future match. `data` holds the bytes [done, pos).
   */
  private settle(data: Buffer, safe: number): Buffer {
    const origin = this.done;
    const pieces: Buffer[] = [];
    let done = origin;
    if (this.maskOpen) {
      if (this.maskEnd > done) done = this.maskEnd;
      if (this.maskEnd < safe) this.maskOpen = false;
    }
    const starts = this.starts;
    const ends = this.ends;
    let k = 0;
    while (k < starts.length) {
      const st = starts[k]!;
      const en = ends[k]!;
      if (st > safe) break; // may still grow to the left
      if (st > done) pieces.push(data.subarray(done - origin, st - origin));
      pieces.push(this.maskBytes);
      done = en;
      k++;
      if (en >= safe) {
        this.maskOpen = true; // may still grow to the right
        this.maskEnd = en;
        break;
      }
    }
    if (k > 0) {
      starts.splice(0, k);
      ends.splice(0, k);
    }
    if (done < safe) {
      pieces.push(data.subarray(done - origin, safe - origin));
      done = safe;
    }
    this.done = done;
    const keep = this.pos - done;
    this.held = keep === 0 ? EMPTY : Buffer.from(data.subarray(data.length - keep));
    if (pieces.length === 0) return EMPTY;
    if (pieces.length === 1) return pieces[0] === this.maskBytes ? Buffer.from(this.maskBytes) : pieces[0]!;
    return Buffer.concat(pieces);
  }
}
