/**
 * One output stream's redactor, and its state between uploads. The server keeps nothing in
 * memory between a task's chunk uploads, so what a redactor holds back (an incomplete line, or
 * a private key block waiting for its END) is exported after each upload and restored before
 * the next: a short versioned JSON string, carried in the task's row (task-state.ts).
 */
import { Buffer } from 'node:buffer';
import { RedactLevel } from '@ferry/protocol';
import { newEngine, type Engine, type RedactorOptions } from './engine.js';

interface StateV1 {
  v: 1;
  /** 1 when the held bytes start with an unterminated private key block. */
  k: 0 | 1;
  /** Held-back bytes, base64. */
  h: string;
  /** How many of the held bytes were released already (the start of a partial line, kept as context); absent for 0. */
  r?: number;
}

/**
 * Redacts one output stream, chunk by chunk. `push` returns the bytes that are final now and
 * holds back what could still be part of a match; `flush` ends the stream and returns the rest
 * (after which the redactor is empty and may start a new stream).
 */
export class OutputRedactor {
  readonly level: RedactLevel;
  private readonly engine: Engine | null;
  /** Level none only: bytes restored from a state taken at another level, released unchanged. */
  private carry: Buffer | null = null;

  constructor(level: RedactLevel = 'secrets', options?: RedactorOptions) {
    if (!RedactLevel.safeParse(level).success) throw new TypeError(`unknown redaction level: ${String(level)}`);
    this.level = level;
    this.engine = level === 'none' ? null : newEngine(level, options);
  }

  /**
   * The next bytes of the stream; returns what is final now. `partial` (default): also release
   * the incomplete last line up to where a match could begin. The server passes false for all
   * but a stream's last frame in an upload, so that work is done once per upload. What is
   * returned may be a view of `chunk` (the lines that needed no redaction): copy it before
   * changing `chunk`.
   */
  push(chunk: Buffer, partial = true): Buffer {
    if (!this.engine) return this.takeCarry(chunk);
    return this.engine.feedBytes(chunk, partial);
  }

  /**
   * `push`, as the pieces it would join (none empty): views of `chunk` and redacted text. For
   * callers that can take the bytes in pieces, which saves copying the chunk once more.
   */
  pushPieces(chunk: Buffer, partial = true): Buffer[] {
    if (!this.engine) {
      const out = this.takeCarry(chunk);
      return out.length > 0 ? [out] : [];
    }
    return this.engine.feedPieces(chunk, partial);
  }

  flush(): Buffer {
    if (!this.engine) return this.takeCarry(Buffer.alloc(0));
    return Buffer.from(this.engine.finish(), 'latin1');
  }

  /** Bytes held back and not yet released (the released start of a partial line, kept as context, does not count). */
  get heldBytes(): number {
    return this.engine ? this.engine.held.length - this.engine.released : (this.carry?.length ?? 0);
  }

  /** The carried state as a short JSON string: held-back bytes (base64) and the key-block flag. */
  exportState(): string {
    const held = this.engine ? Buffer.from(this.engine.held, 'latin1') : (this.carry ?? Buffer.alloc(0));
    const state: StateV1 = { v: 1, k: this.engine?.inKeyBlock ? 1 : 0, h: held.toString('base64') };
    if (this.engine && this.engine.released > 0) state.r = this.engine.released;
    return JSON.stringify(state);
  }

  /** A redactor that continues a stream from `exportState()`; throws on a malformed state. */
  static fromState(level: RedactLevel, state: string, options?: RedactorOptions): OutputRedactor {
    const redactor = new OutputRedactor(level, options);
    const parsed = parseState(state);
    const held = Buffer.from(parsed.h, 'base64');
    if (redactor.engine) redactor.engine.restore(held.toString('latin1'), parsed.k === 1, parsed.r ?? 0);
    else if (held.length > (parsed.r ?? 0)) redactor.carry = held.subarray(parsed.r ?? 0);
    return redactor;
  }

  private takeCarry(chunk: Buffer): Buffer {
    if (!this.carry) return chunk;
    const out = Buffer.concat([this.carry, chunk]);
    this.carry = null;
    return out;
  }
}

function parseState(state: string): StateV1 {
  let value: unknown;
  try {
    value = JSON.parse(state);
  } catch (err) {
    throw new Error('redaction state is not valid JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null) throw new Error('redaction state is not an object');
  const { v, k, h, r } = value as Record<string, unknown>;
  if (v !== 1) throw new Error(`unsupported redaction state version: ${String(v)}`);
  if (k !== 0 && k !== 1) throw new Error('redaction state has an invalid key-block flag');
  if (typeof h !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(h) || h.length % 4 !== 0) throw new Error('redaction state has invalid held bytes');
  if (r !== undefined && (typeof r !== 'number' || !Number.isSafeInteger(r) || r < 0 || r > (h.length / 4) * 3))
    throw new Error('redaction state has an invalid released count');
  return r === undefined ? { v, k, h } : { v, k, h, r };
}
