/**
 * The durable output spool: output is written here before it is sent, and removed only when
 * the server has acknowledged the task's final status. One folder per task:
 *
 *   <data dir>/spool/<task id>/output.frames   every frame the task produced (masked), in order
 *   <data dir>/spool/<task id>/state.json      { acked, final } rewritten atomically
 *
 * States: spooling (task running; frames appended) → finished (final status recorded) →
 * delivered (server acknowledged the final status; folder removed). An agent that restarts
 * finds `finished` folders and delivers them, and `spooling` folders (tasks it was running when
 * it died), whose output it delivers before reporting that it cannot account for the outcome.
 *
 * Disk use is bounded by each task's output limit (the uploader stops spooling at the limit),
 * so at most `concurrency × max output` plus what finished tasks still wait to deliver.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrames, type FinishTaskRequest, type OutputFrame, type StreamId } from '@ferry/protocol';

interface FrameIndex {
  filePos: number;
  offset: number;
  length: number;
  stream: StreamId;
  time: number;
}
interface SpoolState {
  acked: number;
  final: FinishTaskRequest | null;
}

export class TaskSpool {
  private readonly index: FrameIndex[] = [];
  private fd: number;
  private filePos = 0;
  private produced = 0;
  private state: SpoolState = { acked: 0, final: null };

  private constructor(
    readonly dir: string,
    readonly taskId: string,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.fd = openSync(join(dir, 'output.frames'), 'a+', 0o600);
  }

  static create(spoolDir: string, taskId: string): TaskSpool {
    const spool = new TaskSpool(join(spoolDir, taskId), taskId);
    spool.saveState();
    return spool;
  }

  /** Reopens a spool left by an earlier run of the agent; a torn last frame is dropped. */
  static recover(spoolDir: string, taskId: string): TaskSpool {
    const spool = new TaskSpool(join(spoolDir, taskId), taskId);
    const stateFile = join(spool.dir, 'state.json');
    if (existsSync(stateFile)) spool.state = JSON.parse(readFileSync(stateFile, 'utf8')) as SpoolState;
    const frames = new FrameDecoder().push(readFileSync(join(spool.dir, 'output.frames')));
    for (const f of frames) spool.indexFrame(f);
    return spool;
  }

  static list(spoolDir: string): string[] {
    if (!existsSync(spoolDir)) return [];
    return readdirSync(spoolDir).filter((name) => /^t_[0-9a-z]+$/.test(name));
  }

  get bytesProduced(): number {
    return this.produced;
  }

  get acked(): number {
    return this.state.acked;
  }

  get final(): FinishTaskRequest | null {
    return this.state.final;
  }

  append(stream: StreamId, data: Buffer, time = Date.now()): void {
    if (data.length === 0) return;
    const frame: OutputFrame = { stream, time, data };
    const bytes = encodeFrames([frame]);
    writeSync(this.fd, bytes, 0, bytes.length, null);
    this.indexFrame(frame);
  }

  private indexFrame(f: OutputFrame): void {
    this.index.push({ filePos: this.filePos, offset: this.produced, length: f.data.length, stream: f.stream, time: f.time });
    this.filePos += FRAME_HEADER_BYTES + f.data.length;
    this.produced += f.data.length;
  }

  /** Frames covering [offset, offset + maxBytes), cut at the edges; adjacent frames of one stream merge. */
  read(offset: number, maxBytes: number, maxFrames = Number.POSITIVE_INFINITY): OutputFrame[] {
    const out: OutputFrame[] = [];
    let total = 0;
    let i = this.firstFrameAt(offset);
    for (; i < this.index.length && total < maxBytes; i++) {
      const entry = this.index[i]!;
      // Finely interleaved stdout and stderr make many frames: the server takes a bounded number per upload.
      if (out.length >= maxFrames && out[out.length - 1]?.stream !== entry.stream) break;
      const skip = Math.max(0, offset - entry.offset);
      const take = Math.min(entry.length - skip, maxBytes - total);
      const data = Buffer.allocUnsafe(take);
      readSync(this.fd, data, 0, take, entry.filePos + FRAME_HEADER_BYTES + skip);
      const last = out[out.length - 1];
      if (last && last.stream === entry.stream) last.data = Buffer.concat([last.data, data]);
      else out.push({ stream: entry.stream, time: entry.time, data });
      total += take;
    }
    return out;
  }

  private firstFrameAt(offset: number): number {
    let lo = 0;
    let hi = this.index.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const e = this.index[mid]!;
      if (e.offset + e.length <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Moves the acknowledged offset. It is written to disk at most every 250 ms: after a crash a
   * slightly old value only means resending bytes the server accepts idempotently.
   */
  acknowledge(offset: number): void {
    if (offset <= this.state.acked) return;
    this.state.acked = Math.min(offset, this.produced);
    if (Date.now() - this.savedAt >= 250) this.saveState();
  }

  private savedAt = 0;

  recordFinal(final: FinishTaskRequest): void {
    this.state.final = final;
    this.saveState();
  }

  private saveState(): void {
    this.savedAt = Date.now();
    const file = join(this.dir, 'state.json');
    writeFileSync(`${file}.tmp`, JSON.stringify(this.state), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  /**
   * The server has everything: forget the task. The folder goes in the background: removing
   * it synchronously blocked the event loop (polls, other tasks' output) for milliseconds per
   * task on a journaling file system. A removal cut short by a crash leaves a spool whose final
   * status is recorded, which the next start delivers again (the server answers it idempotently).
   */
  remove(): Promise<void> {
    this.close();
    return rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
