/**
 * Aho-Corasick automaton over bytes, built once and then only read (it is shared by every
 * stream that scans with it).
 *
 * Layout, chosen for a tight scanning loop in JS:
 * - Byte classes: every byte that occurs in some pattern gets its own class 1..K-1; all other
 *   bytes share class 0, from which every state goes back to the root. K is usually well under
 *   100 (secrets and their encodings use few distinct bytes), which keeps the table small.
 *   `aliases` give a byte the class of another (the masker's base64 automaton matches `-` as
 *   `+` and `_` as `/`, so one pattern covers both base64 alphabets).
 * - States are numbered in breadth-first order, so a state's failure target (always shallower)
 *   has a smaller number, and the shallowest states come first.
 * - The first `denseStates` states (the root and the shallow levels, where scanning ordinary
 *   text spends nearly all of its time) have a complete transition row in `trans`. Deeper
 *   states, of which there can be very many for long values (certificates, keys) but which
 *   are visited only while the input really resembles a pattern, keep only their trie
 *   children (CSR arrays) and fall back through failure links until they reach a dense state.
 *   This bounds the table's memory (`denseBudget` entries) whatever the patterns' length.
 * - A `trans` entry is encoded for the scanning loop: (offset << 1) | flag, where offset is the
 *   target's row offset for a dense target, or a number past the rows for a deep one, and flag
 *   is set when the target is deep or ends a pattern. The common step is then one load, a
 *   shift and an add, with one bit test for "anything to do": `w = trans[(w >> 1) + classOf[byte]]`.
 * - `longest[s]` is the length of the longest pattern that ends at a state (a suffix of the
 *   state's string, following dictionary links), 0 when none: shorter patterns ending at the
 *   same byte lie inside it, so for masking it is the only match that matters.
 * - `depth[s]` is the length of the state's string: the longest suffix of the input so far
 *   that is a prefix of some pattern.
 *
 * Separators (optional; the masker's automaton for line-wrapped encodings). With `separators`
 * and `maxSkip` = m, runs of at most m separator bytes between two pattern bytes are skipped,
 * and a longer run is a barrier that nothing matches across: the automaton matches the
 * patterns in a projection of the input where short separator runs are deleted and long ones
 * become a byte no pattern has. The projection depends only on the bytes, not on the
 * patterns. It is built into the DFA with "skip" states: for every state s of depth > 0 there
 * are states (s, 1) .. (s, m), "s followed by that many separators"; a separator moves
 * (s, l) to (s, l + 1), or to the root from (s, m); any other byte moves (s, l) as it moves s.
 * The scanning loop is unchanged (skip states are ordinary dense rows, unflagged); a state id
 * is l * stateCount + s, and `depth`, `longest` and `fail` are those of s (skip states end no
 * pattern). Patterns must not contain separators. A match's length is then in pattern bytes;
 * its start in the input is found by walking back over that many non-separator bytes (the
 * caller keeps the bytes; wrap-rules.ts).
 */

export interface ByteAutomatonOptions {
  /** Most entries (4 bytes each) of the dense transition table; default 4 Mi (16 MiB). */
  denseBudget?: number;
  /** Chunks at least this long (and at least 4 bytes) are scanned in four interleaved lanes; default 4096. */
  laneMinBytes?: number;
  /** Bytes skipped between pattern bytes, at most `maxSkip` of them in a row (see the header). */
  separators?: readonly number[];
  /** Longest separator run that is skipped; default 2 (`\r\n`, `\n `). Used only with `separators`. */
  maxSkip?: number;
  /** [byte, asByte]: `byte` in the input matches where `asByte` is in a pattern (only for bytes in no pattern). */
  aliases?: readonly (readonly [number, number])[];
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
  /** Number of trie states (skip states not counted). */
  readonly stateCount: number;
  /** Trie states 0..denseStates-1 (and their skip states) have full rows in the dense table. */
  readonly denseStates: number;
  readonly patternCount: number;
  readonly maxPatternLength: number;
  /** Longest separator run skipped (0: no separators). */
  readonly maxSkip: number;
  /** Per byte: 1 if it is a separator. */
  readonly separator: Uint8Array;
  private readonly longest: Int32Array;
  private readonly depth: Int32Array;
  private readonly sepClass: number;
  private readonly trans: Int32Array;
  private readonly laneMinBytes: number;
  /** Size of the dense rows, (maxSkip + 1) * denseStates * classes. */
  private readonly rowsSize: number;
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
    this.separator = new Uint8Array(256);
    for (const b of opts.separators ?? []) this.separator[b] = 1;
    this.maxSkip = opts.separators?.length ? Math.max(1, opts.maxSkip ?? 2) : 0;

    // Byte classes (separators share one class of their own; aliases borrow a class).
    const classOf = new Uint16Array(256);
    let k = 1;
    for (const p of pats) {
      for (const b of p) {
        if (this.separator[b] === 1) throw new RangeError('a pattern contains a separator byte');
        if (classOf[b] === 0) classOf[b] = k++;
      }
    }
    for (const [b, as] of opts.aliases ?? []) if (classOf[b] === 0 && this.separator[b] === 0) classOf[b] = classOf[as]!;
    this.sepClass = this.maxSkip > 0 ? k++ : -1;
    for (let b = 0; b < 256; b++) if (this.separator[b] === 1) classOf[b] = this.sepClass;
    this.classOf = classOf;
    this.classes = k;

    const trie = buildTrie(pats, classOf);
    const n = trie.childStart.length - 1;
    this.stateCount = n;
    this.childStart = trie.childStart;
    this.childClass = trie.childClass;
    this.childTarget = trie.childTarget;
    this.depth = trie.depth;
    this.longest = trie.longest;

    const K = k;
    const levels = this.maxSkip + 1;
    const dense = Math.max(1, Math.min(n, Math.floor(budget / (K * levels))));
    this.rowsSize = levels * dense * K;
    if ((this.rowsSize + levels * n) * 2 >= 2 ** 31) throw new RangeError('too many secret patterns for the masker');
    this.denseStates = dense;
    this.fail = new Int32Array(n);
    const plain = this.linkFailures(dense);
    this.trans = this.encodeRows(plain, dense);
  }

  /**
   * Failure links, dense rows (plain state numbers) and longest-match lengths, in breadth-first
   * order: a state's failure target is shallower, hence already complete.
   */
  private linkFailures(dense: number): Int32Array {
    const K = this.classes;
    const { childStart, childClass, childTarget, fail, longest } = this;
    const n = this.stateCount;
    const table = new Int32Array(dense * K);
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
    return table;
  }

  /** The scanning table: every dense row at every skip level, entries encoded (see the header). */
  private encodeRows(plain: Int32Array, dense: number): Int32Array {
    const K = this.classes;
    const n = this.stateCount;
    const m = this.maxSkip;
    const table = new Int32Array(this.rowsSize);
    for (let l = 0; l <= m; l++) {
      for (let s = 0; s < dense; s++) {
        const row = (l * dense + s) * K;
        for (let c = 0; c < K; c++) {
          const target = c !== this.sepClass ? plain[s * K + c]! : s === 0 || l === m ? 0 : (l + 1) * n + s;
          table[row + c] = this.encode(target);
        }
      }
    }
    return table;
  }

  private encode(id: number): number {
    const n = this.stateCount;
    const dense = this.denseStates;
    const l = id < n ? 0 : Math.floor(id / n);
    const s = id - l * n;
    if (s < dense) return (((l * dense + s) * this.classes) << 1) | (l === 0 && this.longest[s] !== 0 ? 1 : 0);
    return ((this.rowsSize + l * (n - dense) + (s - dense)) << 1) | 1;
  }

  private decode(w: number): number {
    const off = w >> 1;
    const n = this.stateCount;
    const dense = this.denseStates;
    if (off < this.rowsSize) {
      const r = off / this.classes;
      const l = Math.floor(r / dense);
      return l * n + (r - l * dense);
    }
    const x = off - this.rowsSize;
    const deep = n - dense;
    const l = Math.floor(x / deep);
    return l * n + dense + (x - l * deep);
  }

  /** Skip level of a state id (0: not after a separator). */
  levelOf(id: number): number {
    return id < this.stateCount ? 0 : Math.floor(id / this.stateCount);
  }

  /** Length (in pattern bytes) of the state's string. */
  depthOf(id: number): number {
    return this.depth[id < this.stateCount ? id : id % this.stateCount]!;
  }

  /** Length of the longest pattern ending at this state (0: none; skip states end none). */
  longestOf(id: number): number {
    return id < this.stateCount ? this.longest[id]! : 0;
  }

  private isDeep(id: number): boolean {
    return (id < this.stateCount ? id : id % this.stateCount) >= this.denseStates;
  }

  /**
   * The state for the longest suffix of this state's string that is at most `length` pattern
   * bytes long (following failure links), at the same skip level unless that is the root.
   */
  truncate(id: number, length: number): number {
    const l = this.levelOf(id);
    let s = id - l * this.stateCount;
    while (this.depth[s]! > length) s = this.fail[s]!;
    return s === 0 ? 0 : l * this.stateCount + s;
  }

  /** The transition from state `id` on byte class `c`. */
  step(id: number, c: number): number {
    const n = this.stateCount;
    const l = this.levelOf(id);
    let s = id - l * n;
    if (c === this.sepClass) return s === 0 || l === this.maxSkip ? 0 : id + n;
    const K = this.classes;
    for (;;) {
      if (s < this.denseStates) return this.decode(this.trans[s * K + c]!);
      const end = this.childStart[s + 1]!;
      for (let j = this.childStart[s]!; j < end; j++) if (this.childClass[j] === c) return this.childTarget[j]!;
      s = this.fail[s]!;
    }
  }

  /** The transition from state `id` on `byte`. */
  stepByte(id: number, byte: number): number {
    return this.step(id, this.classOf[byte]!);
  }

  /**
   * The state before each byte of buf[from, to) and after the last, into `out` (length at
   * least to - from + 1), from `state`: a second look at bytes already scanned
   * (stream-seams.ts). One table load per byte while the state is dense.
   */
  statesAlong(buf: Uint8Array, from: number, to: number, state: number, out: Int32Array): void {
    const classOf = this.classOf;
    const trans = this.trans;
    let s = state;
    let i = from;
    while (i < to) {
      if (this.isDeep(s)) {
        out[i - from] = s;
        s = this.step(s, classOf[buf[i++]!]!);
        continue;
      }
      let w = this.encode(s);
      for (; i < to; i++) {
        out[i - from] = this.decode(w);
        const x = trans[(w >> 1) + classOf[buf[i]!]!]!;
        w = x;
        if (x >> 1 >= this.rowsSize) {
          i++;
          break; // a deep state: step by step from here
        }
      }
      s = this.decode(w);
    }
    out[to - from] = s;
  }

  /**
   * Runs the automaton from `state` over `buf`, whose first byte is at stream offset `base`;
   * reports every position where a pattern ends to `sink` (in order of position); returns the
   * state after the last byte.
   */
  scan(buf: Uint8Array, state: number, base: number, sink: MatchSink): number {
    if (buf.length < this.laneMinBytes || this.isDeep(state)) return this.run(buf, 0, buf.length, state, base, sink);
    return this.scanLanes(buf, base, sink, 0, this.encode(state), 0, 0, 0);
  }

  /**
   * `scan` with this automaton and `other` over the same bytes, in one pass: their four lanes
   * each advance together (eight independent loads in flight, see scanLanes), until either
   * meets a flag; from there each goes on alone. Returns [this state, other state].
   */
  scanWith(other: ByteAutomaton, buf: Uint8Array, state: number, otherState: number, base: number, sink: MatchSink, otherSink: MatchSink): [number, number] {
    const n = buf.length;
    if (n < Math.max(this.laneMinBytes, other.laneMinBytes) || this.isDeep(state) || other.isDeep(otherState)) {
      return [this.scan(buf, state, base, sink), other.scan(buf, otherState, base, otherSink)];
    }
    const ca = this.classOf;
    const ta = this.trans;
    const cb = other.classOf;
    const tb = other.trans;
    const q = n >> 2;
    const q2 = 2 * q;
    const q3 = 3 * q;
    let a0 = this.encode(state);
    let b0 = other.encode(otherState);
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let b1 = 0;
    let b2 = 0;
    let b3 = 0;
    let i = 0;
    for (; i < q; i++) {
      const c0 = buf[i]!;
      const c1 = buf[i + q]!;
      const c2 = buf[i + q2]!;
      const c3 = buf[i + q3]!;
      const x0 = ta[(a0 >> 1) + ca[c0]!]!;
      const x1 = ta[(a1 >> 1) + ca[c1]!]!;
      const x2 = ta[(a2 >> 1) + ca[c2]!]!;
      const x3 = ta[(a3 >> 1) + ca[c3]!]!;
      const y0 = tb[(b0 >> 1) + cb[c0]!]!;
      const y1 = tb[(b1 >> 1) + cb[c1]!]!;
      const y2 = tb[(b2 >> 1) + cb[c2]!]!;
      const y3 = tb[(b3 >> 1) + cb[c3]!]!;
      if (((x0 | x1 | x2 | x3 | y0 | y1 | y2 | y3) & 1) !== 0) break;
      a0 = x0;
      a1 = x1;
      a2 = x2;
      a3 = x3;
      b0 = y0;
      b1 = y1;
      b2 = y2;
      b3 = y3;
    }
    return [this.scanLanes(buf, base, sink, i, a0, a1, a2, a3), other.scanLanes(buf, base, otherSink, i, b0, b1, b2, b3)];
  }

  /**
   * Four-lane scan. A DFA step is a chain of dependent loads, so one lane is bound by memory
   * latency, not throughput; four independent lanes over the four quarters of the chunk keep
   * four loads in flight (about 2-3x faster here). Lane 0 starts from the true state, lanes
   * 1-3 from the root as a guess, and all four advance only through unflagged transitions (no
   * match, no deep state); the first flag in any lane stops them all at the same index i.
   * (They may arrive here already advanced to index `from`, with encoded states w0..w3.)
   * Then, in stream order: each lane's remainder runs sequentially (reporting matches in
   * order), and the next lane is re-synchronised: from its start b, the true state and the
   * guess (from the root) are stepped together until they are equal. A DFA is deterministic,
   * so from there on they stay equal: the guessed state at b + i is the true one, and the
   * guess met no flag, so that stretch held no match. If they never meet before b + i, the
   * true state was computed sequentially all the way. They usually meet within a few bytes
   * (at the first byte that is in no pattern, both are at the root).
   */
  private scanLanes(buf: Uint8Array, base: number, sink: MatchSink, from: number, w0: number, w1: number, w2: number, w3: number): number {
    const classOf = this.classOf;
    const trans = this.trans;
    const n = buf.length;
    const q = n >> 2;
    const q2 = 2 * q;
    const q3 = 3 * q;
    let i = from;
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
    let s = this.decode(w0);
    let pos = i;
    for (let lane = 1; lane < 4; lane++) {
      const b = lane * q;
      s = this.run(buf, pos, b, s, base, sink);
      const lim = b + i;
      let p = b;
      let guess = 0;
      while (p < lim && this.encode(s) !== guess) {
        s = this.run(buf, p, p + 1, s, base, sink);
        guess = trans[(guess >> 1) + classOf[buf[p]!]!]!;
        p++;
      }
      if (p < lim) s = this.decode(guessed[lane - 1]!);
      pos = lim;
    }
    return this.run(buf, pos, n, s, base, sink);
  }

  /** The plain automaton over buf[from, to). */
  private run(buf: Uint8Array, from: number, to: number, state: number, base: number, sink: MatchSink): number {
    const classOf = this.classOf;
    const trans = this.trans;
    let i = from;
    let s = state;
    // Deep states go byte by byte until the automaton is back among the dense ones.
    while (i < to && this.isDeep(s)) {
      s = this.step(s, classOf[buf[i++]!]!);
      const m = this.longestOf(s);
      if (m !== 0) sink.match(base + i, m);
    }
    if (this.isDeep(s)) return s;
    let w = this.encode(s);
    for (; i < to; i++) {
      const x = trans[(w >> 1) + classOf[buf[i]!]!]!;
      if ((x & 1) === 0) {
        w = x;
        continue;
      }
      let t = this.decode(x);
      let m = this.longestOf(t);
      if (m !== 0) sink.match(base + i + 1, m);
      while (this.isDeep(t)) {
        if (++i === to) return t;
        t = this.step(t, classOf[buf[i]!]!);
        m = this.longestOf(t);
        if (m !== 0) sink.match(base + i + 1, m);
      }
      w = this.encode(t);
    }
    return this.decode(w);
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
      512
    );
  }
}

interface Trie {
  childStart: Int32Array;
  childClass: Uint16Array;
  childTarget: Int32Array;
  depth: Int32Array;
  longest: Int32Array;
}

/** The patterns' trie, states renumbered breadth-first, children stored as CSR arrays. */
function buildTrie(pats: readonly Uint8Array[], classOf: Uint16Array): Trie {
  // Linked child lists in insertion numbering first.
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
  return { childStart, childClass, childTarget, depth, longest };
}
