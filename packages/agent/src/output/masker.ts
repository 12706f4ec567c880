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
 * The forms of a value are in mask-forms.ts, the per-stream state and why it is correct in
 * masker-stream.ts.
 *
 * Speed. The automaton is built once per task (about 10 ms and 5 MiB for 100 typical
 * secrets). Scanning is one table load per byte on a precomputed DFA with byte classes, and
 * chunks of 4 KiB or more are scanned in four interleaved lanes that are re-synchronised
 * exactly (aho-corasick.ts explains why that is sound); matches, rare by nature, take a slow
 * path. Bookkeeping happens per match and per chunk, never per byte. A chunk with no match and
 * nothing held back comes back as the same Buffer (or a view of it); with no maskable value at
 * all, `push` returns its argument untouched. bench/fixtures/masker-fixtures.mjs measures MiB/s.
 *
 * Limits (known; the forms' own limits are in mask-forms.ts):
 * - Matching is exact bytes (UTF-8 of the value), case-sensitive.
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
import { ByteAutomaton } from './aho-corasick.js';
import { DEFAULT_MIN_SECRET_LENGTH, secretForms } from './mask-forms.js';
import { MaskerStream } from './masker-stream.js';

const DEFAULT_MASK = '***';

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
    this.automaton =
      patterns.size === 0 ? undefined : new ByteAutomaton([...patterns.values()], { denseBudget: opts.denseBudget, laneMinBytes: opts.laneMinBytes });
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
