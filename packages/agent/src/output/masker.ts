/**
 * Streaming secret masker: every byte a task prints passes through here before it leaves the
 * agent, and any registered secret value (or a common encoding of it) comes out as the mask
 * text (`***` by default).
 *
 * Shape. `new SecretMasker(values)` derives every form of every value (below), compiles them
 * into ONE Aho-Corasick automaton over bytes (aho-corasick.ts) and keeps it read-only.
 * `forStream()` hands out a `MaskerStream`, the per-stream state (stdout, stderr, ...), which
 * shares that automaton: building happens once per task, each stream costs a few words.
 * `push(chunk)` returns the bytes that are safe to emit now, `flush()` the rest at end of
 * stream. Input is raw bytes, never decoded, so invalid UTF-8 passes through untouched and a
 * value is found whatever bytes surround it. With no maskable value at all, `push` returns
 * the chunk it was given (no scan, no copy).
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
 *
 * Forms masked for each value (see `secretForms`; forms are deduplicated, and any form shorter
 * than minLength is dropped):
 * - the raw value, and the value trimmed;
 * - for multi-line values, each line (trimmed), and the whitespace-normalized value (runs of
 *   whitespace collapsed to one space, trimmed);
 * - base64, standard and URL-safe alphabets, at the three alignments: the value encoded as if
 *   it started at byte offset 0, 1 or 2 (mod 3) of a larger base64 stream, keeping only the
 *   stable inner characters (those made of the value's bits alone; the first one or two and
 *   the last one or two depend on neighbouring bytes and are dropped). Also for the trimmed
 *   value when it differs (values read from files often end with a newline);
 * - URL-encoded: encodeURIComponent, the same with `+` for space, and the
 *   application/x-www-form-urlencoded form of URLSearchParams;
 * - JSON-escaped (JSON.stringify without the quotes), plus the variants other encoders
 *   produce: non-ASCII as \uXXXX (Python's ensure_ascii), `/` as `\/` (PHP), `<>&` as \u003c
 *   etc. (Go);
 * - shell-quoted: the inside of a single-quoted word (`'` written as `'\''`), and bash
 *   `printf %q`: backslash escapes, or the inside of $'...' when the value has control
 *   characters.
 *
 * Values shorter than minLength (6) characters (UTF-16 units, `value.length`, the same rule
 * as secrets/prepare.ts) are not masked at all: too short to mask without destroying ordinary
 * output. `skipped` lists their indices (the masker never sees names) so the caller can warn.
 *
 * Speed. The automaton is built once per task (about 10 ms and 5 MiB for 100 typical
 * secrets). Scanning is one table load per byte on a precomputed DFA with byte classes, and
 * chunks of 4 KiB or more are scanned in four interleaved lanes that are re-synchronised
 * exactly (aho-corasick.ts explains why that is sound); matches, rare by nature, take a slow
 * path. Bookkeeping happens per match and per chunk, never per byte. A chunk with no match and
 * nothing held back comes back as the same Buffer (or a view of it); with no maskable value at
 * all, `push` returns its argument untouched. `measureMaskerThroughput` reports MiB/s.
 *
 * Limits (known):
 * - Only the encodings above. Hex, base32, gzip, MIME-wrapped base64 (line breaks every 76
 *   characters), lowercase %-escapes, other encoders' escaping rules, encodings of single
 *   lines, any other transformation of the value, or a value printed piecewise with other
 *   bytes in between, are not caught.
 * - At the edges of a base64 match, the one or two characters that mix the value's bits with
 *   a neighbour's stay visible (at most 4 bits of the value each). A base64 form whose stable
 *   part is shorter than minLength is not masked (very short values: the raw form still is).
 * - Matching is exact bytes (UTF-8 of the value), case-sensitive.
 * - `printf %q` is modelled on bash 5 in a UTF-8 locale (other locales quote non-ASCII
 *   differently).
 * - The output is not re-scanned: if a value contains the mask text, a mask and its neighbours
 *   could spell the value again. Values made mostly of whitespace are masked as given (a value
 *   of six spaces would mask every run of six spaces).
 * - Output is delayed by at most the longest pattern's length, and only while the stream's
 *   tail resembles the start of a pattern; `flush()` must be called at end of stream to get
 *   those bytes.
 * - Memory: the automaton has about one state per byte of all forms; transitions are a dense
 *   table for the shallow states (bounded by `denseBudget`, 16 MiB by default) and sparse
 *   child lists for the deep ones, so very long values (certificates) stay affordable, at
 *   some cost in speed only while the output really resembles them.
 * - The Buffer returned by `push` may share memory with the chunk given to it; it must not be
 *   modified by the caller while the chunk is in use (and vice versa).
 */
import { performance } from 'node:perf_hooks';
import { ByteAutomaton, type MatchSink } from './aho-corasick.js';

export const DEFAULT_MASK = '***';
export const DEFAULT_MIN_SECRET_LENGTH = 6;

export interface SecretMaskerOptions {
  /** Text written in place of each masked region; default `***`. */
  mask?: string;
  /** Values (and forms) shorter than this many characters (UTF-16 units) are not masked; default 6. */
  minLength?: number;
  /** Most entries of the automaton's dense transition table (see aho-corasick.ts). */
  denseBudget?: number;
  /** Chunks at least this long are scanned in four interleaved lanes (see aho-corasick.ts); default 4096. */
  laneMinBytes?: number;
}

const EMPTY: Buffer = Buffer.alloc(0);

/** Every string the masker looks for on behalf of one value (deduplicated; empty if the value is too short). */
export function secretForms(value: string, minLength: number = DEFAULT_MIN_SECRET_LENGTH): string[] {
  if (value.length === 0 || value.length < minLength) return [];
  const forms = new Set<string>();
  const add = (f: string | undefined): void => {
    if (f !== undefined && f.length > 0 && f.length >= minLength) forms.add(f);
  };
  add(value);
  const trimmed = value.trim();
  add(trimmed);
  if (/[\r\n]/.test(value)) for (const line of value.split(/\r\n|\r|\n/)) add(line.trim());
  add(value.replace(/\s+/g, ' ').trim());
  for (const v of new Set([value, trimmed])) if (v.length > 0) for (const f of base64Forms(v)) add(f);
  const uri = uriComponent(value);
  add(uri);
  add(uri?.replace(/%20/g, '+'));
  add(new URLSearchParams([['', value]]).toString().slice(1));
  const json = JSON.stringify(value).slice(1, -1);
  add(json);
  add(json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  add(json.replace(/\//g, '\\/'));
  add(json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  add(value.replace(/'/g, `'\\''`));
  add(bashPrintfQ(value));
  return [...forms];
}

/** Stable inner parts of the value's base64 (standard and URL-safe) at byte offsets 0, 1 and 2 mod 3. */
function base64Forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const n = bytes.length;
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const enc = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
    // Character j carries bits [6j, 6j + 6); the value holds bits [8k, 8(k + n)).
    const stable = enc.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + n)) / 6));
    out.push(stable, stable.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return out;
}

function uriComponent(value: string): string | undefined {
  try {
    return encodeURIComponent(value);
  } catch {
    return undefined; // lone surrogate: not representable
  }
}

/** Characters bash's `printf %q` escapes with a backslash anywhere in a word. */
const SHELL_SPECIAL = new Set(' !"$&\'()*,;<>?[\\]^`{|}');

/** What bash 5 `printf %q` prints for the value (UTF-8 locale); for the $'...' style, only the inside. */
export function bashPrintfQ(value: string): string {
  if (value === '') return "''";
  if ([...value].some(isControl)) {
    let out = '';
    for (const ch of value) {
      const named = ANSI_C_NAMES[ch];
      if (named !== undefined) out += named;
      else if (ch === '\\' || ch === "'") out += `\\${ch}`;
      else if (isControl(ch)) {
        for (const b of Buffer.from(ch, 'utf8')) out += `\\${b.toString(8).padStart(3, '0')}`;
      } else out += ch;
    }
    return out;
  }
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    const prev = i === 0 ? '' : value[i - 1]!;
    if (SHELL_SPECIAL.has(ch) || (ch === '#' && i === 0) || (ch === '~' && (i === 0 || prev === ':' || prev === '='))) out += '\\';
    out += ch;
  }
  return out;
}

/**
 * Characters glibc's iswprint rejects (controls, line/paragraph separators, unassigned code
 * points): bash's %q switches to $'...' for them and writes them as octal bytes.
 */
const NOT_PRINTABLE = /^[\p{Cc}\p{Zl}\p{Zp}\p{Cn}]$/u;
function isControl(ch: string): boolean {
  return NOT_PRINTABLE.test(ch);
}

const ANSI_C_NAMES: Record<string, string> = {
  '\u001b': '\\E', '\u0007': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v',
};

/**
 * The compiled masker for one task: build once with the task's secret values, then take one
 * `forStream()` per output stream. `push`/`flush` on the masker itself use a default stream
 * (handy for a single stream or a one-off).
 */
export class SecretMasker {
  readonly mask: string;
  readonly minLength: number;
  /** Indices (into the constructor's `values`) of values too short to be masked. */
  readonly skipped: readonly number[];
  /** Number of distinct byte patterns (all forms of all values) in the automaton. */
  readonly patternCount: number;
  private readonly automaton: ByteAutomaton | undefined;
  private readonly maskBytes: Buffer;
  private defaultStream: MaskerStream | undefined;

  constructor(values: readonly string[], opts: SecretMaskerOptions = {}) {
    this.mask = opts.mask ?? DEFAULT_MASK;
    this.minLength = opts.minLength ?? DEFAULT_MIN_SECRET_LENGTH;
    this.maskBytes = Buffer.from(this.mask, 'utf8');
    const skipped: number[] = [];
    const patterns = new Map<string, Uint8Array>();
    values.forEach((value, i) => {
      const forms = secretForms(value, this.minLength);
      if (forms.length === 0) skipped.push(i);
      for (const f of forms) {
        const bytes = Buffer.from(f, 'utf8');
        patterns.set(bytes.toString('latin1'), bytes);
      }
    });
    this.skipped = skipped;
    this.patternCount = patterns.size;
    this.automaton = patterns.size === 0 ? undefined : new ByteAutomaton([...patterns.values()], { denseBudget: opts.denseBudget, laneMinBytes: opts.laneMinBytes });
  }

  /** A fresh per-stream state sharing this masker's automaton. */
  forStream(): MaskerStream {
    return new MaskerStream(this.automaton, this.maskBytes);
  }

  /** The longest any stream may hold back (the longest pattern, in bytes). */
  get maxHoldBack(): number {
    return this.automaton?.maxPatternLength ?? 0;
  }

  /** Approximate bytes held by the compiled automaton. */
  get automatonBytes(): number {
    return this.automaton?.byteSize ?? 0;
  }

  /** `push` on the default stream. */
  push(chunk: Buffer): Buffer {
    return (this.defaultStream ??= this.forStream()).push(chunk);
  }

  /** `flush` on the default stream. */
  flush(): Buffer {
    return (this.defaultStream ??= this.forStream()).flush();
  }

  /** Masks a complete buffer on its own (a fresh stream, pushed and flushed). */
  maskBuffer(data: Buffer): Buffer {
    const s = this.forStream();
    const head = s.push(data);
    const tail = s.flush();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  }

  /** Masks a complete string (e.g. an error message that may quote the task's output). */
  maskString(text: string): string {
    if (this.automaton === undefined) return text;
    return this.maskBuffer(Buffer.from(text, 'utf8')).toString('utf8');
  }
}

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

  constructor(private readonly automaton: ByteAutomaton | undefined, private readonly maskBytes: Buffer) {}

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

// ---------------------------------------------------------------------------------------------
// Throughput measurement (used by the tests, and callable from a benchmark).

/** Small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const HEX = '0123456789abcdef';

function pick(rand: () => number, alphabet: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)]!;
  return s;
}

/** Secret values shaped like real ones: API tokens, access keys, passwords, hex keys, connection strings. */
export function sampleSecrets(count: number, seed = 1): string[] {
  const rand = prng(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    switch (i % 6) {
      case 0: out.push(`ghp_${pick(rand, B62, 36)}`); break;
      case 1: out.push(`AKIA${pick(rand, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}`); break;
      case 2: out.push(pick(rand, `${B62}!#%&*+-=?@^_`, 12 + Math.floor(rand() * 12))); break;
      case 3: out.push(pick(rand, HEX, 32)); break;
      case 4: out.push(`postgres://app:${pick(rand, B62, 20)}@db.internal:5432/app`); break;
      default: out.push(`xoxb-${pick(rand, '0123456789', 12)}-${pick(rand, B62, 24)}`); break;
    }
  }
  return out;
}

/** Printable, varied, log-like task output (timestamps, paths, ids, JSON, stack traces), with no secret in it. */
export function sampleOutput(bytes: number, seed = 7): Buffer {
  const rand = prng(seed);
  const words = ['request', 'served', 'cache', 'miss', 'hit', 'upstream', 'retry', 'connected', 'deploy', 'build', 'step', 'done', 'user', 'token', 'refreshed', 'compiling', 'module', 'warning', 'deprecated', 'package'];
  const levels = ['INFO', 'DEBUG', 'WARN', 'ERROR'];
  const parts: string[] = [];
  let size = 0;
  let n = 0;
  while (size < bytes) {
    const ts = `2024-05-0${1 + (n % 9)}T12:${String(n % 60).padStart(2, '0')}:${String((n * 7) % 60).padStart(2, '0')}.${String(n % 1000).padStart(3, '0')}Z`;
    let line: string;
    switch (Math.floor(rand() * 5)) {
      case 0:
        line = `${ts} ${levels[n % 4]} [worker-${n % 8}] GET /api/v1/items/${Math.floor(rand() * 1e6)}?page=${n % 17} 200 ${Math.floor(rand() * 900)}ms req=${pick(rand, HEX, 16)}\n`;
        break;
      case 1:
        line = `{"ts":"${ts}","level":"${levels[n % 4]!.toLowerCase()}","msg":"${words[n % words.length]} ${words[(n * 3) % words.length]}","trace":"${pick(rand, HEX, 32)}","n":${n}}\n`;
        break;
      case 2:
        line = `    at ${words[n % words.length]}Handler (/app/src/${words[(n * 5) % words.length]}/index.js:${n % 400}:${n % 80})\n`;
        break;
      case 3:
        line = `Step ${n % 30}/30 : RUN npm ci --omit=dev && npm run build -- --id=${pick(rand, B62, 10)}\n`;
        break;
      default:
        line = `${Array.from({ length: 6 + (n % 10) }, () => words[Math.floor(rand() * words.length)]).join(' ')}.\n`;
        break;
    }
    parts.push(line);
    size += line.length;
    n++;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, bytes);
}

/**
 * Masker throughput in MiB/s (2^20 bytes) for `secretCount` realistic secrets over `megabytes`
 * MiB of realistic output fed in 64 KiB chunks (one stream, building the automaton excluded).
 */
export function measureMaskerThroughput(secretCount: number, megabytes: number): number {
  const masker = new SecretMasker(sampleSecrets(secretCount));
  const stream = masker.forStream();
  const sample = sampleOutput(4 * 1024 * 1024);
  const chunk = 64 * 1024;
  const total = Math.max(chunk, Math.floor(megabytes * 1024 * 1024));
  let out = 0;
  let fed = 0;
  const t0 = performance.now();
  while (fed < total) {
    const at = fed % sample.length;
    const piece = sample.subarray(at, Math.min(at + chunk, sample.length, at + total - fed));
    out += stream.push(piece).length;
    fed += piece.length;
  }
  out += stream.flush().length;
  const seconds = (performance.now() - t0) / 1000;
  if (out !== fed) throw new Error(`masker changed secret-free output (${fed} bytes in, ${out} out)`);
  return fed / 2 ** 20 / seconds;
}
