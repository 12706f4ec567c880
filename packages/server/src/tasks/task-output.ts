/**
 * A task's output on its way in and out. In: uploads by offset from the agent holding the
 * running task, each checked against the digest it carries (the raw output's OutputDigest up to
 * its end, continued from the state stored with the output), redacted, and stored with the new
 * digest state, so the final status can be checked by any server (`verifyFinal`). Out: reads by
 * stored offset, which can wait for new output or the end of the task.
 */
import { createHash } from 'node:crypto';
import {
  FerryError,
  OutputDigest,
  frameBytes,
  isTerminal,
  type BlockHasher,
  type FinishTaskRequest,
  type OutputFrame,
  type ParsedQuery,
  type Routes,
} from '@ferry/protocol';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config.js';
import type { DispatchHub } from '../dispatch.js';
import type { FramesAnswer } from '../http/route.js';
import { resolveLimits } from '../limits.js';
import { findHeldTask, findTask, leaseLost } from '../lookup.js';
import { redactingTransform } from '../redaction/task-state.js';
import type { AgentRow, OutputTransform, Store, TaskRow } from '../store/types.js';
import { OutputTurns, outputSlices } from './output-slices.js';
import type { RawOutputDigests } from './raw-digests.js';

/**
 * The most frames one read answers with: output stored as many tiny frames (finely interleaved
 * stdout and stderr) is read in pages of bounded work, like it was uploaded.
 */
const MAX_READ_FRAMES = 8192;

/**
 * A waiting reader (`ferry run`, `task logs --follow`) that output streams in bulk for gathers
 * it into reads of up to this many bytes (or its `maxBytes`): an agent uploads at most 1 MiB at
 * a time, and a reader woken for each upload made one request per MiB, whose fixed costs (the
 * request, the task's look-up, the answer's headers, the client's own) came on top of every MiB.
 */
const READ_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * What tells bulk output from a line or a prompt: when at least this much is ready for a
 * waiting reader, it waits up to READ_COALESCE_MS for more; less is answered at once, so the
 * first line of a task, or any line of one that prints now and then, reaches it without delay.
 */
const BULK_READY_BYTES = 256 * 1024;

/**
 * The longest a reader waits for bulk output to fill its read: a few uploads at full speed, and
 * far below what a person would notice; a task that ends answers it at once.
 */
const READ_COALESCE_MS = 20;

/** Room for the agent's own truncation notice after a task's output reaches its limit. */
const NOTICE_ALLOWANCE_BYTES = 4096;

/**
 * An upload that starts past the stored end (an agent has two in flight and the second arrived
 * first, or the first is still being stored) waits this long at most for the uploads before it;
 * then it gets the gap answer, as it did before agents sent two at once. A task's uploads are
 * applied in offset order; the wait is woken by each append of the task, in this process or
 * (through the hub's relay) on another replica.
 */
const UPLOAD_WAIT_MS = 1000;
/**
 * What may wait per task (an agent has at most two uploads in flight, so one waits) and in the
 * whole process: bodies already read are held while they wait, so an agent cannot pile them up.
 * Beyond these an upload gets the gap answer at once.
 */
const MAX_WAITING_PER_TASK = 2;
const MAX_WAITING_BYTES_PER_TASK = 4 * 1024 * 1024;
const MAX_WAITING_BYTES = 64 * 1024 * 1024;

const nativeBlock: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();

/** The part of frames starting at output offset `offset` that lies at or after `from`. */
function framesFrom(frames: readonly OutputFrame[], offset: number, from: number): OutputFrame[] {
  const out: OutputFrame[] = [];
  let at = offset;
  for (const frame of frames) {
    const end = at + frame.data.length;
    if (end > from) out.push(at >= from ? frame : { ...frame, data: frame.data.subarray(from - at) });
    at = end;
  }
  return out;
}

export type ReadOutputQuery = ParsedQuery<typeof Routes.readOutput>;

function outputGap(taskId: string, offset: number, expectedOffset: number): FerryError {
  return new FerryError('FERRY_E_OUTPUT_GAP', `Output for ${taskId} must continue at offset ${expectedOffset}, not ${offset}.`, {
    details: { expectedOffset },
  });
}

export interface TaskOutputDeps {
  store: Store;
  hub: DispatchHub;
  config: ServerConfig;
  log: Logger;
}

/** Uploads waiting for their turn, per task and in all: what `UPLOAD_WAIT_MS` and the bounds above limit. */
class WaitingUploads {
  private readonly tasks = new Map<string, { count: number; bytes: number }>();
  private bytes = 0;

  /** Counts an upload of `bytes` as waiting; false (nothing counted) when that is over a bound. */
  enter(taskId: string, bytes: number): boolean {
    const task = this.tasks.get(taskId) ?? { count: 0, bytes: 0 };
    if (task.count >= MAX_WAITING_PER_TASK || task.bytes + bytes > MAX_WAITING_BYTES_PER_TASK || this.bytes + bytes > MAX_WAITING_BYTES) return false;
    task.count += 1;
    task.bytes += bytes;
    this.bytes += bytes;
    this.tasks.set(taskId, task);
    return true;
  }

  leave(taskId: string, bytes: number): void {
    const task = this.tasks.get(taskId);
    if (!task) return;
    task.count -= 1;
    task.bytes -= bytes;
    this.bytes -= bytes;
    if (task.count === 0) this.tasks.delete(taskId);
  }
}

export class TaskOutput {
  private readonly turns = new OutputTurns();
  private readonly waiting = new WaitingUploads();

  constructor(
    private readonly deps: TaskOutputDeps,
    private readonly digests: RawOutputDigests,
  ) {}

  /**
   * Stores an upload at the agent's `offset` (idempotent: what the server has is skipped), in
   * slices (output-slices.ts); returns where the next one starts. With `digest` (the upload's
   * header), the raw output up to the upload's end must have that digest, else nothing is
   * stored. When a slice fails, the ones before it stay stored, as if the upload had been
   * smaller: the agent resends from where it was. An upload past the stored end first waits
   * (bounded) for the uploads before it (`UPLOAD_WAIT_MS`).
   */
  async append(agent: AgentRow, taskId: string, offset: number, frames: readonly OutputFrame[], digest?: string): Promise<number> {
    let task = await findHeldTask(this.deps.store, agent, taskId);
    const end = offset + frameBytes(frames);
    this.checkLimit(task, end);
    if (offset > task.outputBytes) task = await this.waitForTurn(agent, task, offset, end - offset);
    const from = task.outputBytes;
    if (end <= from) return from; // all of it was stored already
    const slices = outputSlices(framesFrom(frames, offset, from), from);
    const states = await this.digestStates(task, slices, digest);
    const transform = redactingTransform(task.targetRedact);
    let at = from;
    let next = from;
    try {
      for (const [i, slice] of slices.entries()) {
        await this.turns.next();
        next = await this.appendSlice(agent, taskId, at, slice, transform, states?.[i] ?? null);
        if (digest === undefined) this.digests.update(taskId, slice, at); // an agent from before the digest header
        at += frameBytes(slice);
      }
    } finally {
      this.wakeReaders(taskId); // also after a failed slice: the ones before it were stored
    }
    return next;
  }

  /**
   * Waits until the stored output reaches `offset` (the uploads before this one were stored)
   * and returns the task as it is then; the gap answer when that takes longer than
   * UPLOAD_WAIT_MS or too much already waits. Each look registers its wake-up before it reads
   * the task, so an append committed after the read (whose wake-up comes after its commit) is
   * never missed. On another replica than the one storing the uploads before it, an upload is
   * woken by the hub's relay, or gets the gap answer and the agent sends it again.
   */
  private async waitForTurn(agent: AgentRow, task: TaskRow, offset: number, bytes: number): Promise<TaskRow> {
    const { store, hub } = this.deps;
    if (hub.isClosed || !this.waiting.enter(task.id, bytes)) throw outputGap(task.id, offset, task.outputBytes);
    const deadline = Date.now() + UPLOAD_WAIT_MS;
    try {
      for (;;) {
        const stop = new AbortController();
        try {
          const woken = hub.waitForOutput(task.id, deadline - Date.now(), stop.signal);
          const now = await findHeldTask(store, agent, task.id);
          if (offset <= now.outputBytes) return now;
          if (Date.now() >= deadline || hub.isClosed) throw outputGap(task.id, offset, now.outputBytes);
          await woken;
        } finally {
          stop.abort();
        }
      }
    } finally {
      this.waiting.leave(task.id, bytes);
    }
  }

  /**
   * Wakes the task's output readers in the next turn of the event loop, once the agent's answer
   * (to an upload, or to its start) has been written: a woken reader reads the task and its output
   * at once, and the agent, whose next upload or whose script waits for that answer, should not
   * wait for the reader's read (and its encryption) too. The change is committed already, so a
   * reader that reads meanwhile finds it; one that waits is woken here.
   */
  wakeReaders(taskId: string): void {
    setImmediate(() => this.deps.hub.notifyOutput(taskId));
  }

  /**
   * The raw output's digest state after each slice, continued from the one stored with the
   * task; checked against the upload's `digest`. Undefined for a task whose state is not known
   * (it was running when the server was upgraded): it is checked by length only. A slice per
   * turn of the event loop, like storing (output-slices.ts): an 8 MiB upload never holds it long.
   */
  private async digestStates(task: TaskRow, slices: readonly OutputFrame[][], digest: string | undefined): Promise<string[] | undefined> {
    const running = this.digestOf(task);
    if (!running) return undefined;
    const states: string[] = [];
    for (const slice of slices) {
      if (slices.length > 1) await this.turns.next();
      for (const f of slice) running.update(f.data);
      states.push(running.exportState());
    }
    if (digest !== undefined && running.hex() !== digest) {
      throw new FerryError(
        'FERRY_E_OUTPUT_DIGEST',
        `Output for ${task.id} up to offset ${running.length} does not have the digest the upload names; nothing of it was stored. Resend it.`,
      );
    }
    return states;
  }

  private digestOf(task: TaskRow): OutputDigest | undefined {
    if (task.outputDigest === null) return task.outputBytes === 0 ? new OutputDigest(nativeBlock) : undefined;
    try {
      return OutputDigest.fromState(task.outputDigest, nativeBlock);
    } catch {
      this.deps.log.error({ taskId: task.id }, 'stored output digest state is unreadable; output is checked by length only');
      return undefined;
    }
  }

  private async appendSlice(
    agent: AgentRow,
    taskId: string,
    offset: number,
    frames: readonly OutputFrame[],
    transform: OutputTransform,
    digestState: string | null,
  ): Promise<number> {
    const result = await this.deps.store.appendOutput(taskId, agent.id, offset, frames, transform, digestState);
    if (result === 'not_held') throw leaseLost(agent, taskId);
    if (!result.ok) throw outputGap(taskId, offset, result.expectedOffset);
    return result.nextOffset;
  }

  private checkLimit(task: TaskRow, end: number): void {
    const limit = resolveLimits(this.deps.config, task.targetLimits).maxOutputBytes + NOTICE_ALLOWANCE_BYTES;
    if (end > limit) throw new FerryError('FERRY_E_OUTPUT_LIMIT', `Output for ${task.id} would reach ${end} bytes; its limit is ${limit}.`);
  }

  /**
   * Checks the final status against what was received: every byte (else the agent resends from
   * where the server is), and the raw checksum when this server saw the whole output.
   */
  verifyFinal(task: TaskRow, report: FinishTaskRequest): void {
    if (task.outputBytes < report.outputBytes) {
      throw new FerryError(
        'FERRY_E_OUTPUT_GAP',
        `The server has ${task.outputBytes} of ${report.outputBytes} output bytes for ${task.id}; resend from there.`,
        { details: { expectedOffset: task.outputBytes } },
      );
    }
    const [ours, theirs] = this.finalDigests(task, report);
    if (task.outputBytes !== report.outputBytes || (ours !== undefined && ours !== theirs)) {
      throw new FerryError(
        'FERRY_E_OUTPUT_MISMATCH',
        `Received output for ${task.id} (${task.outputBytes} bytes) does not match the agent's (${report.outputBytes} bytes, checksum ${ours === theirs ? 'equal' : 'different'}).`,
      );
    }
    if (ours === undefined && report.outputBytes > 0) {
      this.deps.log.warn(
        { taskId: task.id },
        'output checksum not verified: its state is not known here (a task from before the output digest?); length verified',
      );
    }
  }

  /**
   * What the server knows of the output's digest and what the agent reports, of one kind: the
   * output digest from the state stored with the output (any server can), or, from an agent
   * older than it, the SHA-256 this server computed if it received every chunk.
   */
  private finalDigests(task: TaskRow, report: FinishTaskRequest): [string | undefined, string | undefined] {
    if (report.outputDigest !== undefined) {
      const digest = task.outputDigest === null ? undefined : this.digestOf(task);
      return [digest?.length === task.outputBytes ? digest.hex() : undefined, report.outputDigest];
    }
    return [this.digests.peek(task.id, task.outputBytes), report.outputSha256];
  }

  /**
   * Output from `offset`, as frames. With `waitSeconds`, an empty answer waits for new output
   * or the end of the task, and bulk output is gathered into larger reads (`gather`).
   * `complete` says the task ended and everything stored was read.
   */
  async read(orgId: string, taskId: string, q: ReadOutputQuery, signal: AbortSignal): Promise<FramesAnswer> {
    const { store, hub } = this.deps;
    let task = await findTask(store, orgId, taskId);
    const deadline = Date.now() + q.waitSeconds * 1000;
    if (q.waitSeconds > 0) task = await this.gather(orgId, task, q, deadline, signal);
    let frames = await store.readOutput(task.id, q.offset, q.maxBytes, MAX_READ_FRAMES);
    while (frames.length === 0 && !isTerminal(task.status) && Date.now() < deadline && !signal.aborted && !hub.isClosed) {
      await hub.waitForOutput(task.id, deadline - Date.now(), signal);
      task = await this.gather(orgId, await findTask(store, orgId, task.id), q, deadline, signal);
      frames = await store.readOutput(task.id, q.offset, q.maxBytes, MAX_READ_FRAMES);
    }
    const nextOffset = q.offset + frameBytes(frames);
    return { frames, nextOffset, taskStatus: task.status, complete: isTerminal(task.status) && nextOffset >= task.storedBytes };
  }

  /**
   * For a waiting reader of a running task with bulk output ready (BULK_READY_BYTES or more,
   * less than a batch): waits up to READ_COALESCE_MS for uploads to fill the batch, and returns
   * the task as it then is. Less than that is answered at once (a first line, a prompt); so is a
   * task that ends meanwhile.
   */
  private async gather(orgId: string, task: TaskRow, q: ReadOutputQuery, deadline: number, signal: AbortSignal): Promise<TaskRow> {
    const { store, hub } = this.deps;
    const batch = Math.min(q.maxBytes, READ_BATCH_BYTES);
    if (task.storedBytes - q.offset < BULK_READY_BYTES) return task;
    const until = Math.min(deadline, Date.now() + READ_COALESCE_MS);
    while (task.storedBytes - q.offset < batch && !isTerminal(task.status) && Date.now() < until && !signal.aborted && !hub.isClosed) {
      await hub.waitForOutput(task.id, until - Date.now(), signal);
      task = await findTask(store, orgId, task.id);
    }
    return task;
  }
}
