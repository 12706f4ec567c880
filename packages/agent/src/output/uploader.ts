/**
 * Streams one task's output to the server in offset-addressed chunks.
 *
 * States: open (accepting writes) → finishing (flushing the rest) → done | abandoned.
 * Bytes are batched for up to `flushMs` (or sent at once when a full chunk is waiting), one
 * upload is in flight at a time so chunks arrive in order, and a chunk is dropped from memory
 * only when the server acknowledges it. Retryable failures back off and resend the same
 * chunk; the server accepts a resend idempotently, and on a gap it says which offset it
 * expects. When too much is waiting, `write` returns false and the runner pauses the task's
 * pipes (the task then blocks on write) until 'drain'.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { OUTPUT_FRAMES_CONTENT_TYPE, Streams, encodeFrames, type OutputFrame, type StreamId } from '@ferry/protocol';
import type { ApiClient } from '../api/client.js';
import { ApiError, backoffMs, isRetryable } from '../api/errors.js';

export interface UploaderOptions { flushMs: number; maxChunkBytes: number; highWaterBytes: number }
export const DEFAULT_UPLOADER_OPTIONS: UploaderOptions = { flushMs: 250, maxChunkBytes: 1024 * 1024, highWaterBytes: 8 * 1024 * 1024 };

/**
 * Output over the task's limit is cut at the limit with a visible notice; the task keeps
 * running and the rest of its output is read and discarded (so it never blocks on a full pipe).
 */
export function truncationNotice(limit: number): Buffer {
  return Buffer.from(`\n[ferry] output truncated at ${limit} bytes (this target's limit); the task keeps running and the rest of its output is discarded\n`);
}

interface PendingFrame extends OutputFrame { offset: number }

export class LeaseLostError extends Error {
  constructor(taskId: string) {
    super(`the server no longer assigns task ${taskId} to this agent`);
    this.name = 'LeaseLostError';
  }
}

export class OutputUploader extends EventEmitter {
  private readonly pending: PendingFrame[] = [];
  private pendingBytes = 0;
  private produced = 0;
  private acked = 0;
  private readonly hash = createHash('sha256');
  private timer: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private failure: Error | undefined;
  private abandoned = false;
  private needDrain = false;
  private digest: string | undefined;
  private truncated = false;
  /** Most bytes of task output to keep; undefined means no limit. */
  limitBytes: number | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly taskId: string,
    private readonly log: Logger,
    private readonly opts: UploaderOptions = DEFAULT_UPLOADER_OPTIONS,
  ) {
    super();
  }

  get bytesProduced(): number {
    return this.produced;
  }

  /** Queues output; returns false when the caller should pause until 'drain'. */
  write(stream: StreamId, data: Buffer): boolean {
    if (this.truncated || this.limitBytes === undefined || stream === Streams.system) return this.append(stream, data);
    const room = this.limitBytes - this.produced;
    if (data.length <= room) return this.append(stream, data);
    this.truncated = true;
    this.append(stream, data.subarray(0, Math.max(0, room)));
    return this.append(Streams.system, truncationNotice(this.limitBytes));
  }

  private append(stream: StreamId, data: Buffer): boolean {
    if (this.truncated && stream !== Streams.system && this.limitBytes !== undefined && this.produced >= this.limitBytes) return true;
    if (data.length === 0 || this.abandoned) return true;
    if (this.digest !== undefined) throw new Error('output written after finish');
    this.hash.update(data);
    const last = this.pending[this.pending.length - 1];
    if (last && last.stream === stream && last.data.length + data.length <= this.opts.maxChunkBytes && last !== this.inflightHead) {
      last.data = Buffer.concat([last.data, data]);
    } else {
      this.pending.push({ stream, time: Date.now(), data, offset: this.produced });
    }
    this.produced += data.length;
    this.pendingBytes += data.length;
    if (this.pendingBytes >= this.opts.maxChunkBytes) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.opts.flushMs);
    if (this.pendingBytes < this.opts.highWaterBytes) return true;
    this.needDrain = true;
    return false;
  }

  /** Sends everything still waiting and resolves with the totals the final status carries. */
  async finish(): Promise<{ bytes: number; sha256: string }> {
    while (this.pending.length > 0 && !this.failure && !this.abandoned) {
      this.kick();
      await this.pumping;
    }
    if (this.failure) throw this.failure;
    this.digest ??= this.hash.digest('hex');
    return { bytes: this.produced, sha256: this.digest };
  }

  /** Stops all uploading: the task is no longer ours. */
  abandon(): void {
    this.abandoned = true;
    if (this.timer) clearTimeout(this.timer);
    this.pending.length = 0;
    this.pendingBytes = 0;
    if (this.needDrain) this.emit('drain');
  }

  private inflightHead: PendingFrame | undefined;

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
      if (this.pending.length > 0 && !this.failure && !this.abandoned) this.timer ??= setTimeout(() => this.kick(), this.opts.flushMs);
    });
  }

  private takeChunk(): PendingFrame[] {
    const chunk: PendingFrame[] = [];
    let bytes = 0;
    for (const frame of this.pending) {
      if (chunk.length > 0 && bytes + frame.data.length > this.opts.maxChunkBytes) break;
      chunk.push(frame);
      bytes += frame.data.length;
    }
    return chunk;
  }

  private async pump(): Promise<void> {
    let attempt = 0;
    while (this.pending.length > 0 && !this.abandoned) {
      const chunk = this.takeChunk();
      this.inflightHead = chunk[chunk.length - 1];
      const start = chunk[0]?.offset ?? this.acked;
      try {
        const res = await this.client.raw('PUT', `/v1/agent/tasks/${this.taskId}/output?offset=${start}`, {
          body: encodeFrames(chunk), contentType: OUTPUT_FRAMES_CONTENT_TYPE,
        });
        const { nextOffset } = JSON.parse(res.body.toString('utf8')) as { nextOffset: number };
        this.acknowledge(nextOffset);
        attempt = 0;
      } catch (err) {
        this.inflightHead = undefined;
        if (err instanceof ApiError && err.code === 'FERRY_E_OUTPUT_GAP' && typeof err.details?.expectedOffset === 'number') {
          if (!this.resendFrom(err.details.expectedOffset)) return this.fail(err);
          continue;
        }
        if (err instanceof ApiError && err.code === 'FERRY_E_LEASE_LOST') return this.fail(new LeaseLostError(this.taskId));
        if (!isRetryable(err)) return this.fail(err as Error);
        const wait = backoffMs(attempt++);
        this.log.warn({ err: (err as Error).message, retryInMs: wait }, 'output upload failed; retrying');
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    this.inflightHead = undefined;
  }

  /** Drops everything below `offset`, which the server now has. */
  private acknowledge(offset: number): void {
    while (this.pending.length > 0) {
      const head = this.pending[0]!;
      const end = head.offset + head.data.length;
      if (end <= offset) {
        this.pending.shift();
        this.pendingBytes -= head.data.length;
      } else if (head.offset < offset) {
        const cut = offset - head.offset;
        head.data = head.data.subarray(cut);
        head.offset = offset;
        this.pendingBytes -= cut;
        break;
      } else break;
    }
    this.acked = Math.max(this.acked, offset);
    if (this.needDrain && this.pendingBytes < this.opts.highWaterBytes) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  /** The server expects `offset`: fine if it is ahead of us (a lost ack); unrecoverable if behind what we dropped. */
  resendFrom(offset: number): boolean {
    const earliest = this.pending[0]?.offset ?? this.produced;
    if (offset < earliest) {
      this.log.error({ expected: offset, earliest }, 'server asks for output this agent no longer holds');
      return false;
    }
    this.acknowledge(offset);
    return true;
  }

  private fail(err: Error): void {
    this.failure = err;
    this.emit('failure', err);
  }
}
