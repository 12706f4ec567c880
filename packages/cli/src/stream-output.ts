/**
 * Follows a task's output: long-polls the output endpoint from the last offset and writes
 * stdout frames to stdout, stderr and Ferry's own notices to stderr, until the server says
 * the output is complete (or, without `follow`, until what is stored has been printed).
 */
import { FrameDecoder, Routes, Streams, type TaskWithAgents } from '@ferry/protocol';
import { isAbort, withRetry, type FerryClient } from '@ferry/client';
import { reportEnding } from './exit-codes.js';

export interface FollowOptions {
  follow: boolean;
  onWaiting?: (task: TaskWithAgents) => void;
  signal?: AbortSignal;
}

/** Writes the frames to stdout/stderr; returns how many there were. */
function writeFrames(body: Uint8Array): number {
  const frames = new FrameDecoder().push(body);
  for (const frame of frames) {
    (frame.stream === Streams.stdout ? process.stdout : process.stderr).write(frame.data);
  }
  return frames.length;
}

/** Bounded: a server that stays unreachable for about ten minutes ends the command. */
const MAX_ATTEMPTS = 40;

/**
 * Returns the task's status as the last answer gave it once the output is complete (the server
 * answers that long poll as soon as the final status is stored), else undefined (stopped, or
 * not following).
 */
export async function streamOutput(client: FerryClient, taskId: string, opts: FollowOptions): Promise<string | undefined> {
  let offset = 0;
  let lastStatusCheck = Date.now();
  for (;;) {
    let page;
    try {
      page = await withRetry(
        () =>
          client.call(Routes.readOutput, {
            params: { id: taskId },
            query: { offset, waitSeconds: opts.follow ? 20 : 0 },
            signal: opts.signal,
          }),
        { maxAttempts: MAX_ATTEMPTS, signal: opts.signal },
      );
    } catch (err) {
      if (isAbort(err) || opts.signal?.aborted) return undefined;
      throw err;
    }
    const empty = writeFrames(page.body) === 0;
    offset = page.nextOffset;
    if (page.complete) return page.taskStatus;
    if (!opts.follow && empty) return undefined;
    const waiting = page.taskStatus === 'queued' || page.taskStatus === 'pending_review';
    if (opts.onWaiting && waiting && Date.now() - lastStatusCheck > 5000) {
      lastStatusCheck = Date.now();
      // Only for the "waiting for an agent" and "waiting for review" notes: a failed look-up must not end the command.
      const task = await client.call(Routes.getTask, { params: { id: taskId } }).catch(() => undefined);
      if (task) opts.onWaiting(task);
    }
  }
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
