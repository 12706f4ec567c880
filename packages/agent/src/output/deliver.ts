/**
 * Delivering a finished task: the rest of its spooled output, then its final status, retried
 * until the server acknowledges (or says the task is no longer ours). The final status is
 * written to the spool first, so an agent restarted mid-delivery finishes the job.
 *
 * States: sending (output, then the status) → delivered (spool removed) | abandoned (the lease
 * is lost: spool removed) | refused (a definite no: spool kept for inspection) | given up (the
 * server stayed unreachable: spool kept, delivered again when the agent restarts). A gap answer
 * to the status (the server lacks output) resends the output from where it says, then the
 * status again.
 */
import type { Logger } from 'pino';
import { Routes, isRetryable, withRetry, type FerryClient } from '@ferry/client';
import type { FinishTaskRequest } from '@ferry/protocol';
import { expectedOffsetOf, isLeaseLost } from '../server-answers.js';
import type { TaskSpool } from './spool.js';
import { LeaseLostError, type OutputUploader } from './uploader.js';

/** Retries for about an hour (5 s apart at most) before giving up on an unreachable server. */
const MAX_ATTEMPTS = 720;

export type FinalOutcome = Omit<FinishTaskRequest, 'outputBytes' | 'outputSha256' | 'outputDigest'>;

export async function deliverFinalStatus(client: FerryClient, spool: TaskSpool, uploader: OutputUploader, outcome: FinalOutcome, log: Logger): Promise<void> {
  const totals = uploader.seal();
  const body: FinishTaskRequest = spool.final ?? { ...outcome, outputBytes: totals.bytes, outputDigest: totals.digest };
  if (!spool.final) spool.recordFinal(body);
  const send = async (): Promise<void> => {
    await uploader.finish();
    try {
      await client.call(Routes.finishTask, { params: { id: spool.taskId }, body });
    } catch (err) {
      const expected = expectedOffsetOf(err);
      if (expected !== undefined) uploader.resendFrom(expected);
      throw err;
    }
  };
  try {
    await withRetry(send, { baseMs: 250, capMs: 5000, maxAttempts: MAX_ATTEMPTS, retryable: (err) => isRetryable(err) || expectedOffsetOf(err) !== undefined });
    void spool.remove();
  } catch (err) {
    settleUndelivered(err, spool, log);
  }
}

function settleUndelivered(err: unknown, spool: TaskSpool, log: Logger): void {
  if (err instanceof LeaseLostError || isLeaseLost(err)) {
    log.warn({ taskId: spool.taskId }, 'final status refused: this agent no longer holds the task (it was marked lost or reassigned)');
    void spool.remove();
  } else if (isRetryable(err) || expectedOffsetOf(err) !== undefined) {
    log.error({ taskId: spool.taskId }, 'gave up delivering the final status; it stays in the spool until the agent restarts');
    spool.close();
  } else {
    log.error({ err, taskId: spool.taskId }, 'the server refused the final status; keeping the spool for inspection');
    spool.close();
  }
}
