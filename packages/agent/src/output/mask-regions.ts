/**
 * What one output stream has received, emitted and still holds, and the mask regions not yet
 * emitted (the stream's half of masker-stream.ts; positions are absolute stream offsets).
 *
 * States. `pos` bytes received. [0, done) settled: emitted as is, or covered by a mask already
 * emitted. `window` holds the bytes [windowStart, pos): everything not yet emitted, plus the
 * bytes a later match may still need to look at (a wrapped form's start is found by walking
 * back over the bytes; wrap-rules.ts), so windowStart <= done. `starts`/`ends` are the pending
 * regions: disjoint, ordered, not touching, each the union of overlapping or touching matches.
 * `maskOpen`/`maskEnd`: a mask already emitted whose region may still grow to the right (its
 * bytes were swallowed; more may be).
 *
 * Transitions. `append` receives bytes. `addRegion` merges a region into the pending ones, or
 * into the open mask when it starts at or before maskEnd (touching regions make one mask).
 * `settle(safe, keep)` is told that no region can start before `safe` any more: the bytes
 * before safe that are in no region are final and go out; a pending region that starts at or
 * before safe cannot grow to the left, so its mask goes out at once and `done` jumps to its
 * end; if it ends at or after safe it may still grow to the right and stays open. The window
 * is then cut to start at min(done, keep). safe never decreases (the caller guarantees it),
 * so nothing emitted is revisited, and the output depends only on the regions and safe points,
 * not on how the bytes were cut into chunks.
 */

const EMPTY: Buffer = Buffer.alloc(0);
/** The smallest store a stream's window gets once it holds bytes past a push. */
const MIN_STORE_BYTES = 64 * 1024;

export class MaskedOutput {
  pos = 0;
  done = 0;
  /**
   * The window is store[offset, offset + pos - windowStart). Appends go into the store's spare
   * room and a trim only moves `offset`, so each byte is copied about once: concatenating the
   * window with every chunk copied it over and over while a tick's output was held (at 50
   * MiB/s with two streams masked, ~1 MiB held: ~15 ms of CPU per MiB of output).
   */
  private store: Buffer = EMPTY;
  private offset = 0;
  private windowStart = 0;
  /** False while `store` is the caller's chunk itself (copied before it is kept past a push). */
  private owned = true;
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private maskOpen = false;
  private maskEnd = 0;

  constructor(private readonly maskBytes: Buffer) {}

  /** Bytes received but neither emitted nor covered by an emitted mask. */
  get heldBytes(): number {
    return this.pos - this.done;
  }

  /** True when nothing is pending and nothing is kept: the next chunk can go out untouched. */
  get idle(): boolean {
    return this.windowStart === this.pos && this.starts.length === 0 && !this.maskOpen;
  }

  append(chunk: Buffer): void {
    const held = this.pos - this.windowStart;
    if (held === 0) {
      this.store = chunk;
      this.offset = 0;
      this.owned = false;
    } else if (this.owned && this.offset + held + chunk.length <= this.store.length) {
      chunk.copy(this.store, this.offset + held);
    } else {
      // A new store (views handed out of the old one stay as they were), with room to grow.
      const next = Buffer.allocUnsafe(Math.max(2 * (held + chunk.length), MIN_STORE_BYTES));
      this.store.copy(next, 0, this.offset, this.offset + held);
      chunk.copy(next, held);
      this.store = next;
      this.offset = 0;
      this.owned = true;
    }
    this.pos += chunk.length;
  }

  /** The byte at stream offset p, or -1 if it is no longer kept (p < windowStart). */
  readonly byteAt = (p: number): number => (p >= this.windowStart ? this.store[this.offset + p - this.windowStart]! : -1);

  /** A view of the bytes [a, b) (windowStart <= a <= b <= pos); valid until the next push. */
  bytes(a: number, b: number): Buffer {
    return this.slice(a, b);
  }

  /** A masked region [a, b) of this stream. */
  addRegion(a: number, b: number): void {
    if (this.maskOpen && a <= this.maskEnd) {
      this.extendOpenMask(b);
      return;
    }
    // Regions start at or after the last safe point, hence at or after `done` when no mask is open.
    a = Math.max(a, this.done);
    if (a >= b) return;
    const starts = this.starts;
    const ends = this.ends;
    let i = starts.length;
    while (i > 0 && ends[i - 1]! >= a) i--; // first region that overlaps or touches [a, b) or lies after it
    let j = i;
    while (j < starts.length && starts[j]! <= b) {
      a = Math.min(a, starts[j]!);
      b = Math.max(b, ends[j]!);
      j++;
    }
    starts.splice(i, j - i, a);
    ends.splice(i, j - i, b);
  }

  private extendOpenMask(b: number): void {
    this.maskEnd = Math.max(this.maskEnd, b);
    while (this.starts.length > 0 && this.starts[0]! <= this.maskEnd) {
      this.maskEnd = Math.max(this.maskEnd, this.ends[0]!);
      this.starts.shift();
      this.ends.shift();
    }
  }

  /** Emits what is settled now that no region can start before `safe`; keeps the bytes from min(done, keep). */
  settle(safe: number, keep: number): Buffer {
    const pieces: Buffer[] = [];
    let done = this.done;
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
      if (st > done) pieces.push(this.slice(done, st));
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
      pieces.push(this.slice(done, safe));
      done = safe;
    }
    this.done = done;
    this.trim(Math.min(done, keep));
    if (pieces.length === 0) return EMPTY;
    if (pieces.length === 1) return pieces[0] === this.maskBytes ? Buffer.from(this.maskBytes) : pieces[0]!;
    return Buffer.concat(pieces);
  }

  private slice(a: number, b: number): Buffer {
    return this.store.subarray(this.offset + a - this.windowStart, this.offset + b - this.windowStart);
  }

  /** Drops the bytes before `from`; what stays is copied (the caller may reuse its chunks). */
  private trim(from: number): void {
    if (from >= this.pos) {
      this.store = EMPTY;
      this.offset = 0;
      this.windowStart = this.pos;
      this.owned = true;
      return;
    }
    from = Math.max(from, this.windowStart);
    if (this.owned) {
      this.offset += from - this.windowStart;
    } else {
      const kept = this.pos - from;
      const next = Buffer.allocUnsafe(Math.max(2 * kept, MIN_STORE_BYTES));
      this.store.copy(next, 0, this.offset + from - this.windowStart, this.offset + from - this.windowStart + kept);
      this.store = next;
      this.offset = 0;
      this.owned = true;
    }
    this.windowStart = from;
  }
}
