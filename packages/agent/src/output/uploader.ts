/**
 * Streams one task's output from its spool to the server in offset-addressed chunks.
 *
 * States: open (accepting writes) → finishing (sending the rest) → done | abandoned.
 * Every write goes to the durable spool first. Output goes up at once when no upload is in
 * flight, and is batched only while one is (as Nagle's algorithm batches behind an unacknowledged
 * segment), with uploads at most every `minIntervalMs`, so a line a task prints reaches a watching
 * user in about one round trip while a chatty task still sends a bounded number of requests.
 *
 * Up to two uploads are in flight (`MAX_IN_FLIGHT`): the second carries the bytes after the
 * first's end, and goes only when a full chunk waits (or the task has ended), so the server
 * redacts and stores one while the next is on its way instead of idling for a round trip. The
 * server applies a task's uploads in offset order (one that arrives first waits a moment for the
 * one before it; tasks/task-output.ts). Every answer moves the acknowledged offset forward only.
 * A retryable failure backs off and resends the bytes from the last acknowledged offset that no
 * upload in flight carries; a gap answer says which offset the server expects, which the spool
 * can always serve because nothing is dropped before the final status is acknowledged. A gap
 * answer naming bytes an earlier upload still in flight carries (it had not reached the server
 * in time) waits for that one's answer before anything is resent.
 * The task never waits for the server: while it is unreachable, output keeps spooling (up to
 * the task's output limit).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Routes, backoffMs, isRetryable, type FerryClient } from '@ferry/client';
import { DIGEST_BLOCK_BYTES, FRAME_HEADER_BYTES, MAX_UPLOAD_FRAMES, OUTPUT_DIGEST_HEADER, Streams, formatSize, toError, type StreamId } from '@ferry/protocol';
import { expectedOffsetOf, isLeaseLost, messageOf } from '../server-answers.js';
import type { SpoolChunk, TaskSpool } from './spool.js';

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

/**
 * Uploads of one task in flight at once. Two are enough to keep the server busy (it stores one
 * while the next arrives); the server lets at most two of a task wait for their turn.
 */
const MAX_IN_FLIGHT = 2;

/**
 * Gap answers to an upload sent behind another (the server did not wait for the one before it:
 * a server from before the ordered append, or a replica that never heard of it) after which the
 * task's uploads go one at a time again, rather than sending every second one twice.
 */
const EARLY_GAPS_FOR_ONE_AT_A_TIME = 2;

/** Backoff after retryable failures: 250 ms doubling up to 5 s (with jitter), as before. */
const RETRY_BASE_MS = 250;
const RETRY_CAP_MS = 5000;

/** One upload on its way: it carries output bytes [start, end). */
interface InFlight {
  start: number;
  end: number;
  /** Resolves once its answer (or failure) has been handled. */
  settled: Promise<void>;
}

export class OutputUploader extends EventEmitter {
  /**
   * Upload bodies to reuse (one per upload in flight at most): a fresh megabyte per upload was
   * garbage the collector and the C allocator had to keep up with (and that stayed in the worked
   * agent's memory).
   */
  private spares: Buffer[] = [];
  private totals: OutputTotals | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the last upload started (ms since the epoch). */
  private lastUploadAt = 0;
  /** Uploads on their way, in offset order. */
  private readonly inFlight: InFlight[] = [];
  private maxInFlight = MAX_IN_FLIGHT;
  private earlyGaps = 0;
  /** Failures in a row (for the backoff), and when uploading may start again after the last one. */
  private failures = 0;
  private retryAt = 0;
  /** Woken whenever an upload settles, uploading fails or is abandoned (finish waits on these). */
  private changeWaiters: (() => void)[] = [];
  private failure: Error | undefined;
  /** Set by finish: the rest goes in a second upload too, not only full chunks. */
  private finishing = false;
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
    if (this.fullChunkWaits()) this.fill();
    else this.schedule();
  }

  /** True when a full chunk waits beyond what is acknowledged or on its way. */
  private fullChunkWaits(): boolean {
    const last = this.inFlight.at(-1);
    return this.spool.bytesProduced - Math.max(this.spool.acked, last?.end ?? 0) >= this.opts.maxChunkBytes;
  }

  /**
   * An upload soon: while one is in flight, what arrived goes as soon as it returns; otherwise
   * after the rest of the minimum interval (at least the end of this event-loop turn, so writes
   * made together go together).
   */
  private schedule(): void {
    if (this.inFlight.length > 0 || this.timer || this.abandoned) return;
    const wait = Math.max(0, this.lastUploadAt + this.opts.minIntervalMs - Date.now(), this.retryAt - Date.now());
    this.timer = setTimeout(() => this.fill(), wait);
  }

  /** Ends writing and returns the totals the final status carries (does not wait for the server). */
  seal(): OutputTotals {
    this.totals ??= { bytes: this.spool.bytesProduced, digest: this.spool.digestAt(this.spool.bytesProduced) };
    return this.totals;
  }

  /** Sends everything still unacknowledged and resolves with the totals the final status carries. */
  async finish(): Promise<OutputTotals> {
    this.finishing = true;
    while (this.spool.acked < this.spool.bytesProduced && !this.failure && !this.abandoned) {
      const changed = this.nextChange();
      this.fill();
      await changed;
    }
    if (this.failure) throw this.failure;
    if (this.inFlight.length === 0) this.spares = [];
    return this.seal();
  }

  /** Stops all uploading: the task is no longer ours. */
  abandon(): void {
    this.abandoned = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.changed();
  }

  /** The server expects `offset`: it may be ahead of us (a lost ack) or behind (resend from the spool). */
  resendFrom(offset: number): void {
    this.spool.acknowledge(offset); // moves forward only; a lower offset is handled in nextUpload
    if (offset < this.spool.acked) this.rewindTo = offset;
  }

  private rewindTo: number | undefined;

  private nextChange(): Promise<void> {
    return new Promise((resolve) => this.changeWaiters.push(resolve));
  }

  private changed(): void {
    const waiters = this.changeWaiters;
    this.changeWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Starts uploads while a slot is free and something waits: the first slot takes whatever
   * waits, the second only a full chunk (or the rest, once the task has ended), so small output
   * is still batched behind the upload in flight. Nothing starts during a failure's backoff.
   */
  private fill(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.abandoned || this.failure) return;
    const backoff = this.retryAt - Date.now();
    if (backoff > 0) {
      this.timer = setTimeout(() => this.fill(), backoff);
      return;
    }
    while (this.inFlight.length < this.maxInFlight) {
      if (this.inFlight.length > 0 && !this.finishing && !this.fullChunkWaits()) return;
      const next = this.nextUpload();
      if (!next) return;
      this.send(next.start, next.maxBytes);
    }
  }

  /**
   * Where the next upload starts and how much it may carry: from the last acknowledged offset
   * (or where the server asked to resend from), past the bytes uploads in flight carry, up to the
   * next upload in flight. Undefined when nothing is left to send.
   */
  private nextUpload(): { start: number; maxBytes: number } | undefined {
    let start = this.rewindTo ?? this.spool.acked;
    this.rewindTo = undefined;
    for (const u of this.inFlight) if (u.start <= start && start < u.end) start = u.end;
    if (start >= this.spool.bytesProduced) return undefined;
    const before = this.inFlight.find((u) => u.start > start)?.start ?? Infinity;
    return { start, maxBytes: Math.min(this.chunkBytesFrom(start), before - start) };
  }

  private send(start: number, maxBytes: number): void {
    const scratch = this.scratchFor(this.spool.bytesProduced - start);
    const chunk = this.spool.readChunk(start, maxBytes, MAX_UPLOAD_FRAMES, scratch);
    this.lastUploadAt = Date.now();
    let settle!: () => void;
    const upload: InFlight = { start, end: chunk.end, settled: new Promise((resolve) => (settle = resolve)) };
    this.inFlight.push(upload);
    this.inFlight.sort((a, b) => a.start - b.start);
    void this.upload(upload, chunk, scratch).finally(() => {
      this.inFlight.splice(this.inFlight.indexOf(upload), 1);
      settle();
      this.fill();
      this.changed();
    });
  }

  /** One upload and what its answer means; never throws. */
  private async upload(upload: InFlight, chunk: SpoolChunk, scratch: Buffer): Promise<void> {
    try {
      const res = await this.client.call(Routes.uploadOutput, {
        params: { id: this.spool.taskId },
        query: { offset: upload.start },
        body: chunk.body,
        headers: { [OUTPUT_DIGEST_HEADER]: this.spool.digestAt(chunk.end) },
      });
      this.spool.acknowledge(res.nextOffset);
      // The server answers: whatever backoff an earlier failure started is over.
      this.failures = 0;
      this.retryAt = 0;
      if (this.spares.length < MAX_IN_FLIGHT) this.spares.push(scratch);
    } catch (err) {
      // A request that failed may not have written all of its body yet: its buffer is not reused.
      if (!this.abandoned) await this.failed(upload, err);
    }
  }

  private async failed(upload: InFlight, err: unknown): Promise<void> {
    const expected = expectedOffsetOf(err);
    if (expected !== undefined) {
      // Bytes an earlier upload still in flight carries: that one had not been stored when the
      // server stopped waiting for it. Its answer decides what to resend.
      const earlier = this.inFlight.find((u) => u !== upload && u.start <= expected && expected < u.end && u.start < upload.start);
      if (!earlier) return this.resendFrom(expected);
      if (++this.earlyGaps >= EARLY_GAPS_FOR_ONE_AT_A_TIME) this.maxInFlight = 1;
      await earlier.settled;
      return;
    }
    if (this.spool.acked >= upload.end) return; // a later upload's answer covered it: its own answer was lost
    if (isLeaseLost(err)) return this.fail(new LeaseLostError(this.spool.taskId));
    if (!isRetryable(err)) return this.fail(toError(err));
    const wait = backoffMs(this.failures++, RETRY_BASE_MS, RETRY_CAP_MS);
    this.retryAt = Math.max(this.retryAt, Date.now() + wait);
    this.log.warn({ err: messageOf(err), retryInMs: wait, spooled: this.spool.bytesProduced - this.spool.acked }, 'output upload failed; retrying');
  }

  /** An upload buffer for a chunk of `waiting` bytes: a small one while the output is small, then a chunk's worth. */
  private scratchFor(waiting: number): Buffer {
    const need = Math.min(waiting, this.opts.maxChunkBytes) + SCRATCH_HEADERS * FRAME_HEADER_BYTES;
    const spare = this.spares.findIndex((b) => b.length >= need);
    if (spare >= 0) return this.spares.splice(spare, 1)[0]!;
    return Buffer.allocUnsafe(need <= SMALL_SCRATCH_BYTES ? SMALL_SCRATCH_BYTES : this.opts.maxChunkBytes + SCRATCH_HEADERS * FRAME_HEADER_BYTES);
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
    if (this.failure) return;
    this.failure = err;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.emit('failure', err);
  }
}
