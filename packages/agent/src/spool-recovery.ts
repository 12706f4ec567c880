/**
 * Spool recovery after a restart: output and final statuses spooled by an earlier run of
 * this agent are delivered now (the spool's own note describes its folders).
 *
 * States per spooled task: finished (its final status was recorded: deliver the rest of its
 * output, then that status) | unaccounted (it was still running when the agent died: deliver
 * its output, then report it as `error`; the server may already have marked it `lost`)
 * → delivered (spool removed) | refused (spool kept for inspection) | unreadable (left in
 * place, logged). The worker heartbeats for recovering tasks, so their leases hold meanwhile.
 */
import type { Logger } from 'pino';
import type { FerryClient } from '@ferry/client';
import { deliverFinalStatus, type FinalOutcome } from './output/deliver.js';
import { TaskSpool } from './output/spool.js';
import { OutputUploader } from './output/uploader.js';

export interface Recovery {
  taskId: string;
  /** Settles (never rejects) once the task is delivered, refused or given up on. */
  delivered: Promise<void>;
}

const UNACCOUNTED: FinalOutcome = {
  status: 'error',
  exitCode: null,
  signal: null,
  reason: 'the agent restarted while this task ran; its outcome is unknown (output up to the restart was kept)',
};

/** Starts delivering every task left in `spoolDir` by an earlier run. */
export function recoverSpools(spoolDir: string, client: FerryClient, log: Logger): Recovery[] {
  const recoveries: Recovery[] = [];
  for (const taskId of TaskSpool.list(spoolDir)) {
    const taskLog = log.child({ taskId });
    const spool = reopen(spoolDir, taskId, taskLog);
    if (spool) recoveries.push({ taskId, delivered: deliver(spool, client, taskLog) });
  }
  return recoveries;
}

function reopen(spoolDir: string, taskId: string, log: Logger): TaskSpool | undefined {
  try {
    return TaskSpool.recover(spoolDir, taskId);
  } catch (err) {
    log.error({ err }, 'cannot read a spooled task; leaving it in place');
    return undefined;
  }
}

function deliver(spool: TaskSpool, client: FerryClient, log: Logger): Promise<void> {
  const uploader = OutputUploader.resume(client, spool, log);
  const finished = spool.final !== null;
  log.warn(
    { finished, spooled: spool.bytesProduced, acked: spool.acked },
    finished ? 'delivering a finished task spooled before the restart' : 'reporting a task this agent cannot account for',
  );
  return deliverFinalStatus(client, spool, uploader, spool.final ?? UNACCOUNTED, log).catch((err: unknown) => log.error({ err }, 'recovery failed'));
}
