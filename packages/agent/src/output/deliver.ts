/**
 * Delivering a finished task: the rest of its spooled output, then its final status, retried
 * until the server acknowledges (or says the task is no longer ours). The final status is
 * written to the spool first, so an agent restarted mid-delivery finishes the job.
 */
import type { Logger } from 'pino';
import type { FinishTaskRequest } from '@ferry/protocol';
import type { ApiClient } from '../api/client.js';
import { ApiError, backoffMs, isRetryable } from '../api/errors.js';
import type { TaskSpool } from './spool.js';
import { LeaseLostError, type OutputUploader } from './uploader.js';

/** Retries for about an hour (5 s apart at most) before giving up on an unreachable server. */
const MAX_ATTEMPTS = 720;

export type FinalOutcome = Omit<FinishTaskRequest, 'outputBytes' | 'outputSha256'>;

export async function deliverFinalStatus(client: ApiClient, spool: TaskSpool, uploader: OutputUploader, outcome: FinalOutcome, log: Logger): Promise<void> {
  const totals = uploader.seal();
  const body: FinishTaskRequest = spool.final ?? { ...outcome, outputBytes: totals.bytes, outputSha256: totals.sha256 };
  if (!spool.final) spool.recordFinal(body);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    try {
      await uploader.finish();
      await client.json('POST', `/v1/agent/tasks/${spool.taskId}/finish`, body);
      spool.remove();
      return;
    } catch (err) {
      if (err instanceof LeaseLostError || (err instanceof ApiError && err.code === 'FERRY_E_LEASE_LOST')) {
        log.warn({ taskId: spool.taskId }, 'final status refused: this agent no longer holds the task (it was marked lost or reassigned)');
        spool.remove();
        return;
      }
      if (err instanceof ApiError && err.code === 'FERRY_E_OUTPUT_GAP' && typeof err.details?.expectedOffset === 'number') {
        uploader.resendFrom(err.details.expectedOffset);
        continue;
      }
      if (!isRetryable(err)) {
        log.error({ err, taskId: spool.taskId }, 'the server refused the final status; keeping the spool for inspection');
        spool.close();
        return;
      }
      await new Promise((r) => setTimeout(r, backoffMs(attempt, 250, 5000)));
    }
  }
  log.error({ taskId: spool.taskId }, 'gave up delivering the final status; it stays in the spool until the agent restarts');
  spool.close();
}
