/**
 * Task output bytes in append-only files, one per task, in the data folder's `output/`: a
 * file's byte n is the task's stored (redacted) output byte n. SQLite keeps where each frame
 * starts and ends (`task_output_frames`) and how far the file is valid (`tasks.stored_bytes`),
 * written in the same transaction as the task's counters; the bytes are written first, at the
 * recorded end, so bytes of an append that did not commit are never read (reads stop at the
 * recorded end) and are overwritten by the next one. On start-up, files longer than recorded
 * are cut back and files no task owns any more are removed (`reconcile`).
 *
 * Synchronous on purpose: the SQLite store is, and an append's bytes and rows go together.
 */
import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readSync, readdirSync, readvSync, statSync, unlinkSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

/** Open files kept for tasks being written or read; a task's file is reopened if pushed out. */
const MAX_OPEN_FILES = 64;
const SUFFIX = '.out';
/** Task ids are ours (`t_` and base32), but a name becomes a path: allow nothing else. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,100}$/;

/** What `reconcile` needs to know of a task: how far its file is valid, or undefined if nothing of it is kept. */
export type RecordedLength = (taskId: string) => number | undefined;

export class OutputFiles {
  private readonly open = new Map<string, number>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Writes `chunks` at `at` (the recorded end) of the task's file. */
  write(taskId: string, at: number, chunks: readonly Uint8Array[]): void {
    if (chunks.length === 0) return;
    const fd = this.fd(taskId);
    let position = at;
    // writev may write less than asked (rarely, for large writes): continue with the rest.
    let rest = [...chunks];
    while (rest.length > 0) {
      const written = writevSync(fd, rest, position);
      position += written;
      rest = skip(rest, written);
    }
  }

  /** `length` bytes from `at` (fewer if the file is shorter, which only a damaged data folder causes). */
  read(taskId: string, at: number, length: number): Buffer {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    const fd = this.fd(taskId);
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, at + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  }

  /**
   * Fills `targets` in order with the file's bytes from `at` (one scattered read); returns how
   * many bytes it read, fewer than they hold only if the file is shorter (a damaged data folder).
   */
  readInto(taskId: string, at: number, targets: readonly Uint8Array[]): number {
    const fd = this.fd(taskId);
    let got = 0;
    let rest = [...targets];
    while (rest.length > 0) {
      const n = readvSync(fd, rest, at + got);
      if (n === 0) break;
      got += n;
      rest = skip(rest, n);
    }
    return got;
  }

  /** Removes the task's file (retention). A missing file is fine: there is nothing to remove. */
  remove(taskId: string): void {
    this.release(taskId);
    try {
      unlinkSync(this.path(taskId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** Closes the task's file if open (its task ended). */
  release(taskId: string): void {
    const fd = this.open.get(taskId);
    if (fd === undefined) return;
    this.open.delete(taskId);
    closeSync(fd);
  }

  /**
   * Start-up: cuts each file back to its recorded length (bytes of appends that never committed)
   * and removes the files of tasks whose output is gone. Returns what it did, for the log.
   */
  reconcile(recorded: RecordedLength, log?: Logger): { truncated: number; removed: number } {
    let truncated = 0;
    let removed = 0;
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith(SUFFIX)) continue;
      const taskId = name.slice(0, -SUFFIX.length);
      const length = SAFE_ID.test(taskId) ? recorded(taskId) : undefined;
      const file = join(this.dir, name);
      if (length === undefined) {
        unlinkSync(file);
        removed += 1;
        continue;
      }
      const size = statSync(file).size;
      if (size > length) {
        const fd = openSync(file, 'r+');
        try {
          ftruncateSync(fd, length);
        } finally {
          closeSync(fd);
        }
        truncated += 1;
      } else if (size < length) {
        log?.error({ taskId, size, recorded: length }, 'task output file is shorter than recorded (lost in a power failure?); reads of the missing part fail');
      }
    }
    return { truncated, removed };
  }

  close(): void {
    for (const taskId of [...this.open.keys()]) this.release(taskId);
  }

  private path(taskId: string): string {
    if (!SAFE_ID.test(taskId)) throw new Error(`not a task id: ${JSON.stringify(taskId)}`);
    return join(this.dir, taskId + SUFFIX);
  }

  private fd(taskId: string): number {
    const cached = this.open.get(taskId);
    if (cached !== undefined) {
      // Most recently used last, so the first entry is the one to push out.
      this.open.delete(taskId);
      this.open.set(taskId, cached);
      return cached;
    }
    if (this.open.size >= MAX_OPEN_FILES) this.release(this.open.keys().next().value as string);
    // Not O_APPEND: with it Linux ignores the position and writes at the end, and a write must
    // go to the recorded end, over whatever an append that did not commit left there.
    const fd = openSync(this.path(taskId), constants.O_RDWR | constants.O_CREAT, 0o600);
    this.open.set(taskId, fd);
    return fd;
  }
}

/** The buffers after the first `n` bytes of them. */
function skip(chunks: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let left = n;
  for (const c of chunks) {
    if (left >= c.length) {
      left -= c.length;
      continue;
    }
    out.push(left > 0 ? c.subarray(left) : c);
    left = 0;
  }
  return out;
}
