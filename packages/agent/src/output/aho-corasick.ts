/**
 * Aho-Corasick automaton over bytes, built once and then only read (it is shared by every
 * stream that scans with it).
 *
 * Layout, chosen for a tight scanning loop in JS:
 * - Byte classes: every byte that occurs in some pattern gets its own class 1..K-1; all other
 *   bytes share class 0, from which every state goes back to the root. K is usually well under
 *   100 (secrets and their encodings use few distinct bytes), which keeps the table small.
 * - States are numbered in breadth-first order, so a state's failure target (always shallower)
 *   has a smaller number, and the shallowest states come first.
 * - The first `denseStates` states (the root and the shallow levels, where scanning ordinary
 *   text spends nearly all of its time) have a complete transition row in `trans`. Deeper
 *   states, of which there can be very many for long values (certificates, keys) but which
 *   are visited only while the input really resembles a pattern, keep only their trie
 *   children (CSR arrays) and fall back through failure links until they reach a dense state.
 *   This bounds the table's memory (`denseBudget` entries) whatever the patterns' length.
 * - A `trans` entry is encoded for the scanning loop: (row << 1) | flag, where row is the
 *   target's row offset (target * K) for a dense target, or denseStates * K + (target -
 *   denseStates) for a deep one, and flag is set when the target is deep or ends a pattern.
 *   The common step is then one load, a shift and an add, with one bit test for "anything to
 *   do": `w = trans[(w >> 1) + classOf[byte]]`.
 * - `longest[s]` is the length of the longest pattern that ends at a state (a suffix of the
 *   state's string, following dictionary links), 0 when none: shorter patterns ending at the
 *   same byte lie inside it, so for masking it is the only match that matters.
 * - `depth[s]` is the length of the state's string: the longest suffix of the input so far
 *   that is a prefix of some pattern.
 */

export interface ByteAutomatonOptions {
  /** Most entries (4 bytes each) of the dense transition table; default 4 Mi (16 MiB). */
  denseBudget?: number;
  /** Chunks at least this long (and at least 4 bytes) are scanned in four interleaved lanes; default 4096. */
  laneMinBytes?: number;
}

const DEFAULT_DENSE_BUDGET = 4 * 1024 * 1024;

/** Receives matches from `scan`: the longest pattern ending just before stream offset `end`. */
export interface MatchSink {
  match(end: number, length: number): void;
}

export class ByteAutomaton {
  /** Byte → class; class 0 is "in no pattern". */
  readonly classOf: Uint16Array;
  /** Number of classes (row length of the dense table). */
  readonly classes: number;
  readonly stateCount: number;
  /** States 0..denseStates-1 have full rows in the dense table. */
  readonly denseStates: number;
  /** Per state: length of the longest pattern ending there (0: none). */
  readonly longest: Int32Array;
  /** Per state: length of the state's string. */
  readonly depth: Int32Array;
  readonly patternCount: number;
  readonly maxPatternLength: number;
  private readonly trans: Int32Array;
  private readonly laneMinBytes: number;
  private readonly denseSize: number;
  private readonly fail: Int32Array;
  private readonly childStart: Int32Array;
  private readonly childClass: Uint16Array;
  private readonly childTarget: Int32Array;

  /** Empty patterns are ignored; duplicates are harmless. */
  constructor(patterns: readonly Uint8Array[], opts: ByteAutomatonOptions = {}) {
    const budget = Math.max(1, opts.denseBudget ?? DEFAULT_DENSE_BUDGET);
    this.laneMinBytes = Math.max(4, opts.laneMinBytes ?? 4096);
    const pats = patterns.filter((p) => p.length > 0);
    this.patternCount = pats.length;
    this.maxPatternLength = pats.reduce((m, p) => Math.max(m, p.length), 0);

    // Byte classes.
    const classOf = new Uint16Array(256);
    let k = 1;
    for (const p of pats) for (const b of p) if (classOf[b] === 0) classOf[b] = k++;
    this.classOf = classOf;
    this.classes = k;

    // Trie with linked child lists (insertion numbering).
    const first: number[] = [-1];
    const next: number[] = [-1];
    const edge: number[] = [0];
    const term: number[] = [0];
    for (const p of pats) {
      let s = 0;
      for (const b of p) {
        const c = classOf[b]!;
        let t = first[s]!;
        while (t !== -1 && edge[t] !== c) t = next[t]!;
        if (t === -1) {
          t = first.length;
          first.push(-1);
          next.push(first[s]!);
          edge.push(c);
          term.push(0);
          first[s] = t;
        }
        s = t;
      }
      term[s] = p.length;
    }
    const n = first.length;
    this.stateCount = n;

    // Breadth-first renumbering; children stored as CSR in the new numbering.
    const order = new Int32Array(n);
    const renum = new Int32Array(n);
    let head = 0;
    let tail = 1;
    while (head < tail) {
      const s = order[head++]!;
      for (let t = first[s]!; t !== -1; t = next[t]!) {
        renum[t] = tail;
        order[tail++] = t;
      }
    }
    const childStart = new Int32Array(n + 1);
    const childClass = new Uint16Array(Math.max(1, n - 1));
    const childTarget = new Int32Array(Math.max(1, n - 1));
    const depth = new Int32Array(n);
    const longest = new Int32Array(n);
    let at = 0;
    for (let ns = 0; ns < n; ns++) {
      const s = order[ns]!;
      childStart[ns] = at;
      for (let t = first[s]!; t !== -1; t = next[t]!) {
        childClass[at] = edge[t]!;
        childTarget[at] = renum[t]!;
        depth[renum[t]!] = depth[ns]! + 1;
        at++;
      }
      longest[ns] = term[s]!;
    }
    childStart[n] = at;
    this.childStart = childStart;
    this.childClass = childClass;
    this.childTarget = childTarget;
    this.depth = depth;
    this.longest = longest;

    // Failure links, dense rows (plain state numbers for now) and longest-match lengths, in
    // breadth-first order: a state's failure target is shallower, hence already complete.
    const K = k;
    const dense = Math.max(1, Math.min(n, Math.floor(budget / K)));
    if ((dense * K + n) * 2 >= 2 ** 31) throw new RangeError('too many secret patterns for the masker');
    this.denseStates = dense;
    this.denseSize = dense * K;
    const table = new Int32Array(dense * K);
    const fail = new Int32Array(n);
    this.fail = fail;
    const plainStep = (s: number, c: number): number => {
      for (;;) {
        if (s < dense) return table[s * K + c]!;
        const end = childStart[s + 1]!;
        for (let j = childStart[s]!; j < end; j++) if (childClass[j] === c) return childTarget[j]!;
        s = fail[s]!;
      }
    };
    for (let s = 0; s < n; s++) {
      const f = fail[s]!;
      if (s > 0) longest[s] = Math.max(longest[s]!, longest[f]!);
      if (s < dense) {
        const row = s * K;
        if (s > 0) table.copyWithin(row, f * K, f * K + K);
        for (let j = childStart[s]!; j < childStart[s + 1]!; j++) table[row + childClass[j]!] = childTarget[j]!;
      }
      for (let j = childStart[s]!; j < childStart[s + 1]!; j++) {
        fail[childTarget[j]!] = s === 0 ? 0 : plainStep(f, childClass[j]!);
      }
    }
    // Encode in place (see the header).
    for (let j = 0; j < table.length; j++) table[j] = this.encode(table[j]!);
    this.trans = table;
  }

  private encode(t: number): number {
    const dense = this.denseStates;
    const row = t < dense ? t * this.classes : this.denseSize + (t - dense);
    return (row << 1) | (t >= dense || this.longest[t] !== 0 ? 1 : 0);
  }

  private decode(w: number): number {
    const row = w >> 1;
    return row < this.denseSize ? row / this.classes : this.denseStates + (row - this.denseSize);
  }

  /** The transition from state `s` on byte class `c`. */
  step(s: number, c: number): number {
    const K = this.classes;
    for (;;) {
      if (s < this.denseStates) return this.decode(this.trans[s * K + c]!);
      const end = this.childStart[s + 1]!;
      for (let j = this.childStart[s]!; j < end; j++) if (this.childClass[j] === c) return this.childTarget[j]!;
      s = this.fail[s]!;
    }
  }

  /**
   * Runs the automaton from `state` over `buf`, whose first byte is at stream offset `base`;
   * reports every position where a pattern ends to `sink` (in order of position); returns the
   * state after the last byte.
   */
  scan(buf: Uint8Array, state: number, base: number, sink: MatchSink): number {
    const n = buf.length;
    if (n < this.laneMinBytes || state >= this.denseStates) return this.run(buf, 0, n, state, base, sink);
    return this.scanLanes(buf, state, base, sink);
  }

  /**
   * Four-lane scan. A DFA step is a chain of dependent loads, so one lane is bound by memory
   * latency, not throughput; four independent lanes over the four quarters of the chunk keep
   * four loads in flight (about 2-3x faster here). Lane 0 starts from the true state, lanes
   * 1-3 from the root as a guess, and all four advance only through unflagged transitions (no
   * match, no deep state); the first flag in any lane stops them all at the same index i.
   * Then, in stream order: each lane's remainder runs sequentially (reporting matches in
   * order), and the next lane is re-synchronised: from the true state at its start b, run
   * sequentially until depth <= p - b. From there on the true state equals the guessed one
   * (both are the longest suffix of the bytes since b that is a pattern prefix), so the
   * guessed state at b + i is the true one and [p, b + i) held no match. This takes at most
   * maxPatternLength bytes, usually zero to three.
   */
  private scanLanes(buf: Uint8Array, state: number, base: number, sink: MatchSink): number {
    const classOf = this.classOf;
    const trans = this.trans;
    const depth = this.depth;
    const K = this.classes;
    const n = buf.length;
    const q = n >> 2;
    const q2 = 2 * q;
    const q3 = 3 * q;
    let w0 = (state * K) << 1;
    let w1 = 0;
    let w2 = 0;
    let w3 = 0;
    let i = 0;
    for (; i < q; i++) {
      const x0 = trans[(w0 >> 1) + classOf[buf[i]!]!]!;
      const x1 = trans[(w1 >> 1) + classOf[buf[i + q]!]!]!;
      const x2 = trans[(w2 >> 1) + classOf[buf[i + q2]!]!]!;
      const x3 = trans[(w3 >> 1) + classOf[buf[i + q3]!]!]!;
      if (((x0 | x1 | x2 | x3) & 1) !== 0) break;
      w0 = x0;
      w1 = x1;
      w2 = x2;
      w3 = x3;
    }
    const guessed = [w1, w2, w3];
    let s = (w0 >> 1) / K;
    let pos = i;
    for (let lane = 1; lane < 4; lane++) {
      const b = lane * q;
      s = this.run(buf, pos, b, s, base, sink);
      const lim = b + i;
      let p = b;
      while (p < lim && depth[s]! > p - b) {
        s = this.run(buf, p, p + 1, s, base, sink);
        p++;
      }
      if (p < lim) s = (guessed[lane - 1]! >> 1) / K;
      pos = lim;
    }
    return this.run(buf, pos, n, s, base, sink);
  }

  /** The plain automaton over buf[from, to). */
  private run(buf: Uint8Array, from: number, to: number, state: number, base: number, sink: MatchSink): number {
    const classOf = this.classOf;
    const trans = this.trans;
    const longest = this.longest;
    const dense = this.denseStates;
    let i = from;
    let s = state;
    // Deep states go byte by byte until the automaton is back among the dense ones.
    while (s >= dense && i < to) {
      s = this.step(s, classOf[buf[i++]!]!);
      if (longest[s] !== 0) sink.match(base + i, longest[s]!);
    }
    if (s >= dense) return s;
    let w = (s * this.classes) << 1;
    for (; i < to; i++) {
      const x = trans[(w >> 1) + classOf[buf[i]!]!]!;
      if ((x & 1) === 0) {
        w = x;
        continue;
      }
      let t = this.decode(x);
      if (longest[t] !== 0) sink.match(base + i + 1, longest[t]!);
      while (t >= dense) {
        if (++i === to) return t;
        t = this.step(t, classOf[buf[i]!]!);
        if (longest[t] !== 0) sink.match(base + i + 1, longest[t]!);
      }
      w = (t * this.classes) << 1;
    }
    return (w >> 1) / this.classes;
  }

  /** Bytes of memory held by the automaton's tables (approximate). */
  get byteSize(): number {
    return (
      this.trans.byteLength +
      this.longest.byteLength +
      this.depth.byteLength +
      this.fail.byteLength +
      this.childStart.byteLength +
      this.childClass.byteLength +
      this.childTarget.byteLength +
      256
    );
  }
}
