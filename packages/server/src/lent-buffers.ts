/**
 * Large buffers lent and given back, for the server's bulk output: an upload's body
 * (http/frames-body.ts) and a read's answer (store/sqlite/output.ts), both given back by the
 * route once nothing reads them (http/route.ts).
 *
 * Why: every ArrayBuffer the server allocates counts as V8 "external" memory, and external
 * memory allocated since the last full collection counts against the old generation's limit
 * (V8 11, Node 20). With a live heap of ~25 MB that limit leaves ~20 MB of room, so a fresh
 * buffer of every upload's size (fastify's `Buffer.concat` of its chunks), on top of the HTTP
 * parser's own copy of every chunk, started a full (mark-compact) collection every 5 to 15 MiB
 * of output: ~20 per 256 MiB, about a third of the server's CPU per MiB in a profile of uploads
 * alone; a live reader's answers (a fresh buffer per read) did the same. A lent buffer is
 * allocated once and reused.
 *
 * A buffer is lent to one user at a time, and its old bytes are never visible: a loan is a view
 * of exactly the length asked for, which its user fills before anything reads it.
 */
import { Buffer } from 'node:buffer';

/** Loans are rounded up to a multiple of this (a 1 MiB upload with its frame headers takes 1.25 MiB). */
const CLASS_BYTES = 256 * 1024;
/** What is kept while nothing uses it; a buffer given back beyond this is left to the collector. */
const MAX_IDLE_BYTES = 24 * 1024 * 1024;

export class LentBuffers {
  private readonly idle = new Map<number, Buffer[]>();
  private readonly lent = new WeakSet<ArrayBufferLike>();
  private idleBytes = 0;

  /** A buffer of exactly `length` bytes (a view of a pooled one), its contents undefined. */
  lend(length: number): Buffer {
    const size = Math.max(CLASS_BYTES, Math.ceil(length / CLASS_BYTES) * CLASS_BYTES);
    let whole = this.idle.get(size)?.pop();
    if (whole) this.idleBytes -= size;
    else whole = Buffer.allocUnsafeSlow(size);
    this.lent.add(whole.buffer);
    return whole.subarray(0, length);
  }

  /**
   * Takes back what `lend` gave (anything else is ignored, so is a second give-back): call only
   * once nothing reads it any more, since the next loan overwrites its bytes.
   */
  giveBack(loan: unknown): void {
    if (!(loan instanceof Uint8Array) || !this.lent.has(loan.buffer)) return;
    this.lent.delete(loan.buffer);
    const size = loan.buffer.byteLength;
    if (this.idleBytes + size > MAX_IDLE_BYTES) return;
    const free = this.idle.get(size) ?? [];
    free.push(Buffer.from(loan.buffer, 0, size));
    this.idle.set(size, free);
    this.idleBytes += size;
  }
}

/** The process's one pool: every server in it shares it (tests start several). */
export const lentBuffers = new LentBuffers();
