/**
 * The durable output spool: output is written here before it is sent, and removed only when
 * the server has acknowledged the task's final status. Two files per task, side by side in the
 * spool folder:
 *
 *   <data dir>/spool/<task id>.frames   every frame the task produced (masked), in order, then
 *                                       its final status as a record frame (never uploaded)
 *   <data dir>/spool/<task id>.state    { acked, final } rewritten atomically, at most every
 *                                       250 ms while output is acknowledged; absent: { 0, null }
 *
 * No folder per task, and no state file for a task done within 250 ms: on ext4 a folder is an
 * inode and a directory block to allocate and free again, and each state file write another
 * inode and a rename; for a trivial task that was most of the agent's file-system work
 * (bench/README.md). The final status is appended to the frames file, which is open already.
 * Spools an older agent left (`<task id>/output.frames`, `<task id>/state.json`) are recovered
 * as they are.
 *
 * States: spooling (task running; frames appended) → finished (final status recorded) →
 * delivered (server acknowledged the final status; files removed). An agent that restarts
 * finds `finished` spools and delivers them, and `spooling` ones (tasks it was running when
 * it died), whose output it delivers before reporting that it cannot account for the outcome.
 *
 * Disk use is bounded by each task's output limit (the uploader stops spooling at the limit),
 * so at most `concurrency × max output` plus what finished tasks still wait to deliver.
 */
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FRAME_HEADER_BYTES, isStreamId, type FinishTaskRequest, type OutputFrame, type StreamId } from '@ferry/protocol';
import { ChainedDigest } from './spool-digest.js';
import { outputBuffers } from './reclaim.js';

interface SpoolState {
  acked: number;
  final: FinishTaskRequest | null;
}

/** One upload's body (frames, as on the wire) and the output offset where it ends. */
export interface SpoolChunk {
  body: Buffer;
  end: number;
}

/** Headers of merged frames may add this much to a chunk's read, however small the chunk. */
const MIN_HEADER_ROOM = 64 * 1024;

/** Recovery reads the frames file in pieces of this size, not all at once. */
const RECOVER_READ_BYTES = 4 * 1024 * 1024;

/**
 * Where each frame is, in typed arrays (a frame per pipe read: a chatty task makes millions,
 * which as objects cost ~80 bytes each). Frame i holds output bytes [offsets[i], offsets[i+1])
 * and starts in the file at offsets[i] + i × FRAME_HEADER_BYTES.
 */
class FrameIndex {
  count = 0;
  offsets = new Float64Array(65);
  streams = new Uint8Array(64);
  times = new Float64Array(64);

  push(stream: StreamId, time: number, length: number): void {
    if (this.count === this.streams.length) this.grow();
    const i = this.count++;
    this.streams[i] = stream;
    this.times[i] = time;
    this.offsets[i + 1] = this.offsets[i]! + length;
  }

  /** The first frame that ends after `offset`. */
  frameAt(offset: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.offsets[mid + 1]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private grow(): void {
    const n = this.streams.length * 2;
    const offsets = new Float64Array(n + 1);
    offsets.set(this.offsets);
    const streams = new Uint8Array(n);
    streams.set(this.streams);
    const times = new Float64Array(n);
    times.set(this.times);
    Object.assign(this, { offsets, streams, times });
  }
}

/**
 * The stream byte of the spool's own record frame: the task's final status (JSON), written after
 * its last output frame. Not an output stream: never indexed, digested or uploaded.
 */
const FINAL_RECORD = 0xf1;

/** One frame header, reused: every write of it is synchronous. */
const header = Buffer.alloc(FRAME_HEADER_BYTES);

function writeHeader(into: Buffer, at: number, stream: number, length: number, time: number): void {
  into[at] = stream;
  into.writeUInt32BE(length, at + 1);
  into.writeDoubleBE(time, at + 5);
}

/** Where one task's spool lives: the flat layout, or the folder an older agent made. */
interface SpoolPaths {
  frames: string;
  state: string;
  /** The older layout's folder, removed with the files. */
  folder?: string;
}

const TASK_ID = /^t_[0-9a-z]+$/;
const FRAMES_SUFFIX = '.frames';

function flatPaths(spoolDir: string, taskId: string): SpoolPaths {
  const base = join(spoolDir, taskId);
  return { frames: base + FRAMES_SUFFIX, state: `${base}.state` };
}

function folderPaths(spoolDir: string, taskId: string): SpoolPaths {
  const folder = join(spoolDir, taskId);
  return { frames: join(folder, 'output.frames'), state: join(folder, 'state.json'), folder };
}

/** Opens (creating if needed) the frames file; the spool folder is made on the first ENOENT, not checked for on every task. */
function openFrames(spoolDir: string, file: string): number {
  try {
    return openSync(file, 'a+', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
    return openSync(file, 'a+', 0o600);
  }
}

const ignoreMissing = (err: NodeJS.ErrnoException): void => {
  if (err.code !== 'ENOENT') throw err;
};

export class TaskSpool {
  private readonly index = new FrameIndex();
  private readonly digest = new ChainedDigest();
  private fd: number;
  private state: SpoolState = { acked: 0, final: null };

  private constructor(
    spoolDir: string,
    readonly taskId: string,
    private readonly paths: SpoolPaths,
  ) {
    if (paths.folder) mkdirSync(paths.folder, { recursive: true, mode: 0o700 });
    this.fd = openFrames(spoolDir, paths.frames);
  }

  /** A new task's spool: its frames file only (no state until one is recorded: a missing one reads as nothing acknowledged, no final). */
  static create(spoolDir: string, taskId: string): TaskSpool {
    return new TaskSpool(spoolDir, taskId, flatPaths(spoolDir, taskId));
  }

  /**
   * Reopens a spool left by an earlier run of the agent (either layout). A torn last frame is
   * dropped and cut from the file, so what recovery appends (the final status) follows whole frames.
   */
  static recover(spoolDir: string, taskId: string): TaskSpool {
    const older = folderPaths(spoolDir, taskId);
    const spool = new TaskSpool(spoolDir, taskId, existsSync(older.folder!) ? older : flatPaths(spoolDir, taskId));
    spool.stateWritten = true;
    // A state write cut short by the crash: the file it was to replace still holds the last state.
    rmSync(`${spool.paths.state}.tmp`, { force: true });
    if (existsSync(spool.paths.state)) spool.state = JSON.parse(readFileSync(spool.paths.state, 'utf8')) as SpoolState;
    const piece = Buffer.allocUnsafe(RECOVER_READ_BYTES);
    let pending = Buffer.alloc(0);
    let whole = 0;
    for (let pos = 0; ;) {
      const n = readSync(spool.fd, piece, 0, piece.length, pos);
      if (n === 0) break;
      pos += n;
      // Frames keep views of what was read: a copy of the piece, not the piece.
      pending = pending.length === 0 ? Buffer.from(piece.subarray(0, n)) : Buffer.concat([pending, piece.subarray(0, n)]);
      const used = spool.readFrames(pending);
      whole += used;
      pending = pending.subarray(used);
    }
    if (pending.length > 0) ftruncateSync(spool.fd, whole);
    return spool;
  }

  /** Indexes the whole frames at the start of `bytes` (output, or the final record); returns how many bytes they took. */
  private readFrames(bytes: Buffer): number {
    let at = 0;
    while (bytes.length - at >= FRAME_HEADER_BYTES) {
      const stream = bytes[at]!;
      const length = bytes.readUInt32BE(at + 1);
      if (bytes.length - at - FRAME_HEADER_BYTES < length) break;
      const time = bytes.readDoubleBE(at + 5);
      const data = bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
      if (stream === FINAL_RECORD) {
        this.state.final = JSON.parse(data.toString('utf8')) as FinishTaskRequest;
        this.finalInFrames = true;
      } else {
        if (!isStreamId(stream) || !Number.isFinite(time)) throw new Error(`the spool of ${this.taskId} has a malformed frame`);
        // Output frames are found by position (FrameIndex): none may follow the record.
        if (this.finalInFrames) throw new Error(`the spool of ${this.taskId} has output after its final status`);
        this.indexFrame({ stream, time, data });
      }
      at += FRAME_HEADER_BYTES + length;
    }
    return at;
  }

  /** Ids of the tasks spooled in `spoolDir`: `<id>.frames` and `<id>.state` files, and older agents' `<id>` folders. */
  static list(spoolDir: string): string[] {
    if (!existsSync(spoolDir)) return [];
    const ids = new Set<string>();
    for (const name of readdirSync(spoolDir)) {
      const id = name.replace(/\.(frames|state)$/, '');
      if (TASK_ID.test(id)) ids.add(id);
    }
    return [...ids];
  }

  get bytesProduced(): number {
    return this.index.offsets[this.index.count]!;
  }

  get acked(): number {
    return this.state.acked;
  }

  get final(): FinishTaskRequest | null {
    return this.state.final;
  }

  /** Writes a frame (its header and the caller's bytes, no copy of them) and digests its bytes. */
  append(stream: StreamId, data: Buffer, time = Date.now()): void {
    if (data.length === 0) return;
    if (this.finalInFrames) throw new Error('output appended after the final status');
    this.writeFrame(stream, data, time);
    this.indexFrame({ stream, time, data });
    outputBuffers.note(data.length);
  }

  private writeFrame(stream: number, data: Buffer, time: number): void {
    writeHeader(header, 0, stream, data.length, time);
    const total = FRAME_HEADER_BYTES + data.length;
    const wrote = writevSync(this.fd, [header, data]);
    if (wrote < total) this.writeRest(Buffer.concat([header, data]).subarray(wrote));
  }

  private writeRest(rest: Buffer): void {
    for (let at = 0; at < rest.length;) at += writeSync(this.fd, rest, at, rest.length - at, null);
  }

  private indexFrame(f: OutputFrame): void {
    this.index.push(f.stream, f.time, f.data.length);
    this.digest.update(f.data);
  }

  /** The output digest of the first `offset` bytes (OutputDigest's hex). */
  digestAt(offset: number): string {
    return this.digest.at(offset, (from, to) => this.bytes(from, to));
  }

  /**
   * An upload's body: the frames covering [offset, offset + maxBytes), cut at the edges, at most
   * `maxFrames` frames (adjacent frames of one stream merge into one), read from the file in
   * one call into `scratch` (or a new buffer when it is too small) and compacted in place. The
   * file holds frames in the wire format already, so the body costs one read and one move of
   * each byte. Headers read count against at most max(maxBytes, 64 KiB) of file (tiny frames: mostly headers).
   */
  readChunk(offset: number, maxBytes: number, maxFrames: number, scratch?: Buffer): SpoolChunk {
    outputBuffers.touch();
    const { offsets, streams } = this.index;
    const first = this.index.frameAt(offset);
    const limit = Math.min(offset + maxBytes, this.bytesProduced);
    const fileLimit = maxBytes + Math.max(maxBytes, MIN_HEADER_ROOM);
    let frames = 0;
    let last = first;
    let stream = -1;
    for (; last < this.index.count && offsets[last]! < limit; last++) {
      if (last > first && offsets[last]! - offset + (last - first + 1) * FRAME_HEADER_BYTES > fileLimit) break;
      if (streams[last] !== stream) {
        if (frames === maxFrames) break;
        frames++;
        stream = streams[last]!;
      }
    }
    const end = Math.min(limit, offsets[last]!);
    // File positions: frame i starts at offsets[i] + i × header; its data [offset, end) lie at +header.
    const fileStart = offset + first * FRAME_HEADER_BYTES;
    const fileEnd = end + last * FRAME_HEADER_BYTES;
    const size = fileEnd - fileStart;
    const body = scratch && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
    this.readFully(body, fileStart);
    return { body: body.subarray(0, this.compact(body, first, last, offset, end, fileStart)), end };
  }

  /**
   * Rewrites the frames read into `body` (frames first..last-1 of the file, cut to output bytes
   * [from, to)) as the wire's frames: a header per run of one stream, the data moved left over
   * the headers dropped. Returns the body's new length.
   */
  private compact(body: Buffer, first: number, last: number, from: number, to: number, fileStart: number): number {
    const { offsets, streams, times } = this.index;
    let w = 0;
    let head = -1;
    let runLength = 0;
    for (let i = first; i < last; i++) {
      const a = Math.max(offsets[i]!, from);
      const b = Math.min(offsets[i + 1]!, to);
      if (head < 0 || streams[i] !== streams[i - 1]) {
        if (head >= 0) body.writeUInt32BE(runLength, head + 1);
        head = w;
        runLength = 0;
        // Never past this frame's own header in `body`: only bytes already moved are overwritten.
        writeHeader(body, head, streams[i]!, 0, times[i]!);
        w += FRAME_HEADER_BYTES;
      }
      const src = a + (i + 1) * FRAME_HEADER_BYTES - fileStart;
      if (src !== w) body.copyWithin(w, src, src + (b - a));
      w += b - a;
      runLength += b - a;
    }
    if (head >= 0) body.writeUInt32BE(runLength, head + 1);
    return w;
  }

  /** Output bytes [from, to) without frame headers (for the digest of a block in progress). */
  private bytes(from: number, to: number): Buffer {
    const { offsets } = this.index;
    const out = Buffer.allocUnsafe(to - from);
    let at = 0;
    for (let i = this.index.frameAt(from); at < out.length; i++) {
      const a = Math.max(offsets[i]!, from);
      const b = Math.min(offsets[i + 1]!, to);
      this.readFully(out.subarray(at, at + b - a), a + (i + 1) * FRAME_HEADER_BYTES);
      at += b - a;
    }
    return out;
  }

  private readFully(into: Buffer, position: number): void {
    for (let at = 0; at < into.length;) {
      const n = readSync(this.fd, into, at, into.length - at, position + at);
      if (n === 0) throw new Error(`the spool of ${this.taskId} ends before byte ${position + at} of its file`);
      at += n;
    }
  }

  /**
   * Moves the acknowledged offset. It is written to disk at most every 250 ms: after a crash a
   * slightly old value only means resending bytes the server accepts idempotently.
   */
  acknowledge(offset: number): void {
    if (offset <= this.state.acked) return;
    this.state.acked = Math.min(offset, this.bytesProduced);
    if (Date.now() - this.savedAt >= 250) this.saveState();
  }

  /** The first acknowledgement is saved 250 ms after the spool was made, not at once: most tasks are over by then. */
  private savedAt = Date.now();
  /** Whether the state file may exist (removal skips its unlink otherwise). */
  private stateWritten = false;
  /** The final status is a record frame at the end of the frames file. */
  private finalInFrames = false;

  /** Appends the final status to the frames file (one write to a file already open: no new file, no rename). */
  recordFinal(final: FinishTaskRequest): void {
    this.writeFrame(FINAL_RECORD, Buffer.from(JSON.stringify(final)), Date.now());
    this.state.final = final;
    this.finalInFrames = true;
  }

  private saveState(): void {
    this.savedAt = Date.now();
    this.stateWritten = true;
    const file = this.paths.state;
    writeFileSync(`${file}.tmp`, JSON.stringify(this.state), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  /**
   * The server has everything: forget the task. The files go in the background: removing them
   * synchronously blocked the event loop (polls, other tasks' output) for milliseconds per task
   * on a journaling file system. An unlink or two, not a recursive removal (which stats and
   * lists first: a thread-pool round trip each). The state goes first and the frames last, so a
   * removal cut short by a crash leaves the final status recorded in the frames file, which the
   * next start delivers again (the server answers it idempotently).
   */
  remove(): Promise<void> {
    this.close();
    const { frames, state, folder } = this.paths;
    const stateGone = this.stateWritten ? unlink(state).catch(ignoreMissing) : Promise.resolve();
    const removed = stateGone.then(() => unlink(frames).catch(ignoreMissing)).then(() => (folder ? rm(folder, { recursive: true, force: true }) : undefined));
    return removed.catch(() => undefined);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
