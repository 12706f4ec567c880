/**
 * Streaming secret masker: every byte a task prints passes through here before it leaves the
 * agent, and any registered secret value (or a common encoding of it) comes out as the mask
 * text (`***` by default).
 *
 * Shape. `new SecretMasker(values)` derives every form of every value (mask-forms.ts) and
 * compiles them into two Aho-Corasick automata over bytes (aho-corasick.ts), kept read-only:
 * `exact` for the forms matched byte for byte, `wrappable` for base64 and hex, which it also
 * finds broken by line breaks or spaces (wrap-rules.ts). `forStreams(ids)` hands out a
 * `MaskerStreamGroup`, the state of a task's output streams masked together: each stream on
 * its own, and a value split between stdout and stderr on both (masker-stream.ts,
 * stream-seams.ts). `forStream()` is one stream alone. Building
 * happens once per task; each stream costs a few words. `push` returns the bytes that are
 * safe to emit now, `end`/`flush` the rest. Input is raw bytes, never decoded, so invalid
 * UTF-8 passes through untouched and a value is found whatever bytes surround it. With no
 * maskable value at all, `push` returns the chunk it was given (no scan, no copy).
 *
 * Speed. The automata are built once per task (about 25 ms and 8 MiB for 100 typical
 * secrets). Scanning is one table load per byte and automaton on a precomputed DFA with byte
 * classes, and chunks of 4 KiB or more are scanned in four interleaved lanes that are
 * re-synchronised exactly (aho-corasick.ts explains why that is sound); matches, rare by
 * nature, take a slow path. Joining two streams costs nothing while one writes, and a second
 * byte-by-byte scan of a part when both write in consecutive turns. Bookkeeping happens per match and per chunk, never per
 * byte. bench/fixtures/masker-fixtures.mjs measures MiB/s.
 *
 * Limits (known; the forms' own limits are in mask-forms.ts):
 * - Matching is exact bytes (UTF-8 of the value), case-sensitive, except the separators
 *   allowed inside base64 and hex forms and the two base64 alphabets.
 * - The output is not re-scanned: if a value contains the mask text, a mask and its neighbours
 *   could spell the value again. Values made mostly of whitespace are masked as given (a value
 *   of six spaces would mask every run of six spaces).
 * - Output is delayed only while a stream's tail (or a seam's string) resembles the start of a
 *   form, by at most the longest exact form, or three bytes per character of the longest
 *   wrappable form, and with several streams by two ticks of the caller's clock
 *   (masker-stream.ts, "Hold-back bound"); a line break releases a wrappable prefix of fewer
 *   than 8 characters. `end()`/`flush()` must be called at the end of a stream to get the
 *   bytes still held.
 * - Memory: each automaton has about one state per byte of its forms; transitions are a dense
 *   table for the shallow states (bounded by `denseBudget` per automaton; by default 16 MiB
 *   for the exact forms, 4 MiB for the wrappable ones)
 *   and sparse child lists for the deep ones, so very long values (certificates) stay
 *   affordable, at some cost in speed only while the output really resembles them.
 * - The Buffer returned by `push` may share memory with the chunk given to it; it must not be
 *   modified by the caller while the chunk is in use (and vice versa).
 */
import { ByteAutomaton } from './aho-corasick.js';
import { DEFAULT_MIN_SECRET_LENGTH, secretForms } from './mask-forms.js';
import { MaskerStream, MaskerStreamGroup, type MaskerAutomata } from './masker-stream.js';
import { MAX_SEPARATOR_RUN, SEPARATORS } from './wrap-rules.js';

const DEFAULT_MASK = '***';

/**
 * Dense-table entries of the wrappable automaton unless the caller sets `denseBudget`: it has
 * three rows per state (skip levels), and ordinary text never goes deeper than its first few
 * levels, so 4 MiB scans as fast as 16 (measured: 100 secrets, ~950 MiB/s either way).
 */
const WRAPPABLE_DENSE_BUDGET = 1024 * 1024;

/** URL-safe base64 matches where the standard alphabet is in a form. */
const BASE64URL_ALIASES: readonly (readonly [number, number])[] = [
  [0x2d, 0x2b], // '-' as '+'
  [0x5f, 0x2f], // '_' as '/'
];

export interface SecretMaskerOptions {
  /** Text written in place of each masked region; default `***`. */
  mask?: string;
  /** Values (and forms) shorter than this many characters (UTF-16 units) are not masked; default 6. */
  minLength?: number;
  /** Most entries of each automaton's dense transition table (see aho-corasick.ts). */
  denseBudget?: number;
  /** Chunks at least this long are scanned in four interleaved lanes (see aho-corasick.ts); default 4096. */
  laneMinBytes?: number;
}

/**
 * The compiled masker for one task: build once with the task's secret values, then take one
 * `forStreams(ids)` for the task's output streams (or `forStream()` for a stream on its own).
 * `push`/`flush` on the masker itself use a default stream (handy for a one-off).
 */
export class SecretMasker {
  readonly mask: string;
  readonly minLength: number;
  /** Indices (into the constructor's `values`) of values too short to be masked. */
  readonly skipped: readonly number[];
  /** Number of distinct byte patterns (all forms of all values) in the automata. */
  readonly patternCount: number;
  private readonly automata: MaskerAutomata;
  private defaultStream: MaskerStream | undefined;

  constructor(values: readonly string[], opts: SecretMaskerOptions = {}) {
    this.mask = opts.mask ?? DEFAULT_MASK;
    this.minLength = opts.minLength ?? DEFAULT_MIN_SECRET_LENGTH;
    const skipped: number[] = [];
    const exact = new Map<string, Uint8Array>();
    const wrappable = new Map<string, Uint8Array>();
    const add = (into: Map<string, Uint8Array>, form: string): void => {
      const bytes = Buffer.from(form, 'utf8');
      into.set(bytes.toString('latin1'), bytes);
    };
    values.forEach((value, i) => {
      const forms = secretForms(value, this.minLength);
      if (forms.exact.length === 0 && forms.wrappable.length === 0) skipped.push(i);
      for (const f of forms.exact) add(exact, f);
      for (const f of forms.wrappable) add(wrappable, f);
    });
    this.skipped = skipped;
    this.patternCount = exact.size + wrappable.size;
    const base = { denseBudget: opts.denseBudget, laneMinBytes: opts.laneMinBytes };
    this.automata = {
      mask: Buffer.from(this.mask, 'utf8'),
      exact: exact.size === 0 ? undefined : new ByteAutomaton([...exact.values()], base),
      wrappable:
        wrappable.size === 0
          ? undefined
          : new ByteAutomaton([...wrappable.values()], {
              ...base,
              denseBudget: opts.denseBudget ?? WRAPPABLE_DENSE_BUDGET,
              separators: SEPARATORS,
              maxSkip: MAX_SEPARATOR_RUN,
              aliases: BASE64URL_ALIASES,
            }),
    };
  }

  /** A fresh state for one stream on its own, sharing this masker's automata. */
  forStream(): MaskerStream {
    return new MaskerStream(this.automata);
  }

  /** A fresh state for a task's streams masked together (each on its own, and across seams). */
  forStreams<Id>(ids: readonly Id[]): MaskerStreamGroup<Id> {
    return new MaskerStreamGroup(this.automata, ids);
  }

  /** The longest any stream may hold back on its own account (a seam's string may add as much). */
  get maxHoldBack(): number {
    const { exact, wrappable } = this.automata;
    return Math.max(exact?.maxPatternLength ?? 0, wrappable ? (MAX_SEPARATOR_RUN + 1) * wrappable.maxPatternLength : 0);
  }

  /** Approximate bytes held by the compiled automata. */
  get automatonBytes(): number {
    return (this.automata.exact?.byteSize ?? 0) + (this.automata.wrappable?.byteSize ?? 0);
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
    if (this.patternCount === 0) return text;
    return this.maskBuffer(Buffer.from(text, 'utf8')).toString('utf8');
  }
}
