/**
 * Streams one task's output from its spool to the server in offset-addressed chunks.
 *
 * States: open (accepting writes) → finishing (sending the rest) → done | abandoned.
 * Every write goes to the durable spool first. Output goes up at once when no upload is in
 * flight, and is batched only while one is (as Nagle's algorithm batches behind an unacknowledged
 * segment), with uploads at most every `minIntervalMs`, so a line a task prints reaches a watching
 * user in about one round trip while a chatty task still sends a bounded number of requests.
 * A full chunk goes at once. One upload is in flight at a time so chunks arrive in order. Retryable failures back off and resend from the last acknowledged offset; the server
 * accepts a resend idempotently, and on a gap it says which offset it expects, which the spool
 * can always serve because nothing is dropped before the final status is acknowledged.
 * The task never waits for the server: while it is unreachable, output keeps spooling (up to
 * the task's output limit).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Routes, withRetry, type FerryClient } from '@ferry/client';
import { DIGEST_BLOCK_BYTES, FRAME_HEADER_BYTES, MAX_UPLOAD_FRAMES, OUTPUT_DIGEST_HEADER, Streams, formatSize, toError, type StreamId } from '@ferry/protocol';
import { expectedOffsetOf, isLeaseLost, messageOf } from '../server-answers.js';
import type { TaskSpool } from './spool.js';

export interface UploaderOptions {
  /** An upload starts at most this long after the previous one started (unless a full chunk waits). */
  minIntervalMs: number;
  maxChunkBytes: number;
}
export const DEFAULT_UPLOADER_OPTIONS: UploaderOptions = { minIntervalMs: 25, maxChunkBytes: 1024 * 1024 };

/**
 * Output over the task's limit is cut at the limit with a visible notice; the task keeps
 * running and the rest of its output is read and discarded (so it never blocks on a full pipe).
 */
function truncationNotice(limit: number): Buffer {
  return Buffer.from(
    `\n[ferry] output truncated at ${formatSize(limit)} (this target's limit); the task keeps running and the rest of its output is discarded\n`,
  );
}

export class LeaseLostError extends Error {
  constructor(taskId: string) {
    super(`the server no longer assigns task ${taskId} to this agent`);
    this.name = 'LeaseLostError';
  }
}

/** What the final status carries about the output: its length and its digest (OutputDigest). */
export interface OutputTotals {
  bytes: number;
  digest: string;
}

/** The upload buffer has room for a chunk in this many frames (more, and a body gets a buffer of its own). */
const SCRATCH_HEADERS = 64;

/**
 * The upload buffer of a task whose output waiting to go fits in it: most tasks print a few
 * lines, and a megabyte for each (touched or not) was what the C allocator had to place.
 */
const SMALL_SCRATCH_BYTES = 16 * 1024;

export class OutputUploader extends EventEmitter {
  /**
   * The body of the upload in flight, reused for the next one: a fresh megabyte per upload was
   * garbage the collector and the C allocator had to keep up with (and that stayed in the worked
   * agent's memory).
   */
  private scratch: Buffer | undefined;
  private totals: OutputTotals | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the last upload started (ms since the epoch). */
  private lastUploadAt = 0;
  private pumping: Promise<void> | undefined;
  private failure: Error | undefined;
  private abandoned = false;
  private truncated = false;
  /** Most bytes of task output to keep; undefined means no limit. */
  limitBytes: number | undefined;

  constructor(
    private readonly client: FerryClient,
    private readonly spool: TaskSpool,
    private readonly log: Logger,
    private readonly opts: UploaderOptions = DEFAULT_UPLOADER_OPTIONS,
  ) {
    super();
  }

  /** For a spool recovered after a restart: digests are computed from the spool as uploads need them. */
  static resume(client: FerryClient, spool: TaskSpool, log: Logger): OutputUploader {
    return new OutputUploader(client, spool, log);
  }

  get bytesProduced(): number {
    return this.spool.bytesProduced;
  }

  /** `data` may be borrowed (a view of the pipes' read buffer: executor/pipe-reader.ts): it is in the spool when this returns, and not kept. */
  write(stream: StreamId, data: Buffer): void {
    if (this.truncated || this.limitBytes === undefined || stream === Streams.system) {
      this.append(stream, data);
      return;
    }
    const room = this.limitBytes - this.spool.bytesProduced;
    if (data.length <= room) {
      this.append(stream, data);
      return;
    }
    this.truncated = true;
    this.append(stream, data.subarray(0, Math.max(0, room)));
    this.append(Streams.system, truncationNotice(this.limitBytes));
  }

  private append(stream: StreamId, data: Buffer): void {
    if (this.truncated && stream !== Streams.system && this.limitBytes !== undefined && this.spool.bytesProduced >= this.limitBytes) return;
    if (data.length === 0 || this.abandoned) return;
    if (this.totals !== undefined) throw new Error('output written after finish');
    this.spool.append(stream, data);
    if (this.spool.bytesProduced - this.spool.acked >= this.opts.maxChunkBytes) this.kick();
    else this.schedule();
  }

  /**
   * An upload soon: while one is in flight, the pump sends what arrived as soon as it returns;
   * otherwise after the rest of the minimum interval (at least the end of this event-loop turn,
   * so writes made together go together).
   */
  private schedule(): void {
    if (this.pumping || this.timer || this.abandoned) return;
    const wait = Math.max(0, this.lastUploadAt + this.opts.minIntervalMs - Date.now());
    this.timer = setTimeout(() => this.kick(), wait);
  }

  /** Ends writing and returns the totals the final status carries (does not wait for the server). */
  seal(): OutputTotals {
    this.totals ??= { bytes: this.spool.bytesProduced, digest: this.spool.digestAt(this.spool.bytesProduced) };
    return this.totals;
  }

  /** Sends everything still unacknowledged and resolves with the totals the final status carries. */
  async finish(): Promise<OutputTotals> {
    while (this.spool.acked < this.spool.bytesProduced && !this.failure && !this.abandoned) {
      this.kick();
      await this.pumping;
    }
    if (this.failure) throw this.failure;
    this.scratch = undefined;
    return this.seal();
  }

  /** Stops all uploading: the task is no longer ours. */
  abandon(): void {
    this.abandoned = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** The server expects `offset`: it may be ahead of us (a lost ack) or behind (resend from the spool). */
  resendFrom(offset: number): void {
    this.spool.acknowledge(offset); // moves forward only; a lower offset is handled in pump
    if (offset < this.spool.acked) this.rewindTo = offset;
  }

  private rewindTo: number | undefined;

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
      if (this.spool.acked < this.spool.bytesProduced && !this.failure) this.schedule();
    });
  }

  /** Sends chunk after chunk until nothing is left; each chunk retried with backoff. */
  private async pump(): Promise<void> {
    const retry = {
      baseMs: 250,
      capMs: 5000,
      onRetry: (err: unknown, _attempt: number, wait: number) =>
        this.log.warn({ err: messageOf(err), retryInMs: wait, spooled: this.spool.bytesProduced - this.spool.acked }, 'output upload failed; retrying'),
    };
    try {
      let more = true;
      while (more) more = await withRetry(() => this.sendNextChunk(), retry);
    } catch (err) {
      if (this.abandoned) return;
      this.fail(isLeaseLost(err) ? new LeaseLostError(this.spool.taskId) : toError(err));
    }
  }

  /**
   * Sends the chunk at the last acknowledged offset (or where the server asked to resend from);
   * false when there is nothing left to send. A gap answer is not a failure: the next chunk
   * starts where the server expects.
   */
  private async sendNextChunk(): Promise<boolean> {
    const start = this.rewindTo ?? this.spool.acked;
    this.rewindTo = undefined;
    if (start >= this.spool.bytesProduced || this.abandoned) return false;
    const chunk = this.spool.readChunk(start, this.chunkBytesFrom(start), MAX_UPLOAD_FRAMES, this.scratchFor(this.spool.bytesProduced - start));
    this.lastUploadAt = Date.now();
    try {
      const res = await this.client.call(Routes.uploadOutput, {
        params: { id: this.spool.taskId },
        query: { offset: start },
        body: chunk.body,
        headers: { [OUTPUT_DIGEST_HEADER]: this.spool.digestAt(chunk.end) },
      });
      this.spool.acknowledge(res.nextOffset);
    } catch (err) {
      // A request that failed may not have written all of its body yet: the next one gets a buffer of its own.
      this.scratch = undefined;
      const expected = expectedOffsetOf(err);
      if (expected === undefined) throw err;
      this.resendFrom(expected);
    }
    return true;
  }

  /** The upload buffer for a chunk of `waiting` bytes: a small one while the output is small, then a chunk's worth. */
  private scratchFor(waiting: number): Buffer {
    const need = Math.min(waiting, this.opts.maxChunkBytes) + SCRATCH_HEADERS * FRAME_HEADER_BYTES;
    if (this.scratch && this.scratch.length >= need) return this.scratch;
    this.scratch = Buffer.allocUnsafe(need <= SMALL_SCRATCH_BYTES ? SMALL_SCRATCH_BYTES : this.opts.maxChunkBytes + SCRATCH_HEADERS * FRAME_HEADER_BYTES);
    return this.scratch;
  }

  /**
   * How much to send from `start`: at most a chunk, and when more than a chunk waits, up to a
   * block edge of the output digest, so the next chunk starts on one and both sides hash its
   * blocks natively (only a block in progress is hashed in JavaScript).
   */
  private chunkBytesFrom(start: number): number {
    const max = this.opts.maxChunkBytes;
    if (this.spool.bytesProduced - start <= max) return max;
    const overEdge = (start + max) % DIGEST_BLOCK_BYTES;
    return max - overEdge > 0 ? max - overEdge : max;
  }

  private fail(err: Error): void {
    this.failure = err;
    this.emit('failure', err);
  }
}
