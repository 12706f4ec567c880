/**
 * Follows a task's output: long-polls the output endpoint from the last offset and writes
 * stdout frames to stdout, stderr and Ferry's own notices to stderr, until the server says
 * the output is complete (or, without `follow`, until what is stored has been printed).
 */
import { Routes, Streams, type OutputFrame, type TaskWithAgents } from '@ferry/protocol';
import { followOutput, isAbort, type FerryClient } from '@ferry/client';
import { reportEnding } from './exit-codes.js';

export interface FollowOptions {
  follow: boolean;
  onWaiting?: (task: TaskWithAgents) => void;
  signal?: AbortSignal;
}

/** Writes the frames to stdout/stderr. */
function writeFrames(frames: readonly OutputFrame[]): void {
  for (const frame of frames) {
    (frame.stream === Streams.stdout ? process.stdout : process.stderr).write(frame.data);
  }
}

/** Bounded: a server that stays unreachable for about ten minutes ends the command. */
const MAX_ATTEMPTS = 40;

/**
 * Returns the task's status as the last answer gave it once the output is complete (the server
 * answers that long poll as soon as the final status is stored), else undefined (stopped, or
 * not following).
 */
export async function streamOutput(client: FerryClient, taskId: string, opts: FollowOptions): Promise<string | undefined> {
  let lastStatusCheck = Date.now();
  try {
    for await (const page of followOutput(client, taskId, { follow: opts.follow, waitSeconds: 20, maxAttempts: MAX_ATTEMPTS, signal: opts.signal })) {
      writeFrames(page.frames);
      if (page.complete) return page.taskStatus;
      const waiting = page.taskStatus === 'queued' || page.taskStatus === 'pending_review';
      if (opts.onWaiting && waiting && Date.now() - lastStatusCheck > 5000) {
        lastStatusCheck = Date.now();
        // Only for the "waiting for an agent" and "waiting for review" notes: a failed look-up must not end the command.
        const task = await client.call(Routes.getTask, { params: { id: taskId } }).catch(() => undefined);
        if (task) opts.onWaiting(task);
      }
    }
  } catch (err) {
    if (isAbort(err) || opts.signal?.aborted) return undefined;
    throw err;
  }
  return undefined;
}

/**
 * The exit code of a followed task whose output is complete (`ended`: what streamOutput
 * returned): a success exits 0 with no summary line, as the output's last answer said, so the
 * task is not read again; any other ending is read and reported.
 */
export async function reportFollowedEnding(client: FerryClient, taskId: string, ended: string | undefined): Promise<number> {
  if (ended === 'succeeded') return 0;
  return reportEnding(await client.call(Routes.getTask, { params: { id: taskId } }));
}
