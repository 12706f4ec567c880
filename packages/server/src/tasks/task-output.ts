/**
 * A task's output on its way in and out. In: uploads by offset from the agent holding the
 * running task, redacted before they are stored, with a running digest of the raw bytes so the
 * final status's checksum can be checked (`verifyFinal`). Out: reads by stored offset, which can
 * wait for new output or the end of the task.
 */
import { FerryError, frameBytes, isTerminal, type FinishTaskRequest, type OutputFrame, type ParsedQuery, type Routes } from '@ferry/protocol';
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

/** Room for the agent's own truncation notice after a task's output reaches its limit. */
const NOTICE_ALLOWANCE_BYTES = 4096;

export type ReadOutputQuery = ParsedQuery<typeof Routes.readOutput>;

export interface TaskOutputDeps {
  store: Store;
  hub: DispatchHub;
  config: ServerConfig;
  log: Logger;
}

export class TaskOutput {
  private readonly turns = new OutputTurns();

  constructor(
    private readonly deps: TaskOutputDeps,
    private readonly digests: RawOutputDigests,
  ) {}

  /**
   * Stores an upload at the agent's `offset` (idempotent), in slices (output-slices.ts); returns
   * where the next one starts. When a slice fails, the ones before it stay stored, as if the
   * upload had been smaller: the agent resends from where it was, and what the server already
   * has is skipped.
   */
  async append(agent: AgentRow, taskId: string, offset: number, frames: readonly OutputFrame[]): Promise<number> {
    const task = await findHeldTask(this.deps.store, agent, taskId);
    this.checkLimit(task, offset + frameBytes(frames));
    const transform = redactingTransform(task.targetRedact);
    let at = offset;
    let next = offset;
    try {
      for (const slice of outputSlices(frames)) {
        await this.turns.next();
        next = await this.appendSlice(agent, taskId, at, slice, transform);
        at += frameBytes(slice);
      }
    } finally {
      this.deps.hub.notifyOutput(taskId); // also after a failed slice: the ones before it were stored
    }
    return next;
  }

  private async appendSlice(agent: AgentRow, taskId: string, offset: number, frames: readonly OutputFrame[], transform: OutputTransform): Promise<number> {
    const result = await this.deps.store.appendOutput(taskId, agent.id, offset, frames, transform);
    if (result === 'not_held') throw leaseLost(agent, taskId);
    if (!result.ok) {
      throw new FerryError('FERRY_E_OUTPUT_GAP', `Output for ${taskId} must continue at offset ${result.expectedOffset}, not ${offset}.`, {
        details: { expectedOffset: result.expectedOffset },
      });
    }
    // Only once the append has committed: bytes that were refused must not count.
    this.digests.update(taskId, result.fresh, result.freshOffset);
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
    const digest = this.digests.peek(task.id, task.outputBytes);
    if (task.outputBytes !== report.outputBytes || (digest !== undefined && digest !== report.outputSha256)) {
      throw new FerryError(
        'FERRY_E_OUTPUT_MISMATCH',
        `Received output for ${task.id} (${task.outputBytes} bytes) does not match the agent's (${report.outputBytes} bytes, checksum ${digest === report.outputSha256 ? 'equal' : 'different'}).`,
      );
    }
    if (digest === undefined && report.outputBytes > 0) {
      this.deps.log.warn({ taskId: task.id }, 'output checksum not verified: this server did not see every chunk (restarted mid-task?); length verified');
    }
  }

  /**
   * Output from `offset`, as frames. With `waitSeconds`, an empty answer waits for new output
   * or the end of the task. `complete` says the task ended and everything stored was read.
   */
  async read(orgId: string, taskId: string, q: ReadOutputQuery, signal: AbortSignal): Promise<FramesAnswer> {
    const { store, hub } = this.deps;
    let task = await findTask(store, orgId, taskId);
    const deadline = Date.now() + q.waitSeconds * 1000;
    let frames = await store.readOutput(task.id, q.offset, q.maxBytes, MAX_READ_FRAMES);
    while (frames.length === 0 && !isTerminal(task.status) && Date.now() < deadline && !signal.aborted && !hub.isClosed) {
      await hub.waitForOutput(task.id, deadline - Date.now(), signal);
      task = await findTask(store, orgId, task.id);
      frames = await store.readOutput(task.id, q.offset, q.maxBytes, MAX_READ_FRAMES);
    }
    const nextOffset = q.offset + frameBytes(frames);
    return { frames, nextOffset, taskStatus: task.status, complete: isTerminal(task.status) && nextOffset >= task.storedBytes };
  }
}
