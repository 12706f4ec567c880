/**
 * Following a task's output, as `ferry run` and `ferry task logs --follow` do: reads by offset
 * from where the last one ended, each a long poll when following, retried through network
 * failures and server restarts (reads are by offset, so any server or replica can answer the
 * next one), until the server says the output is complete. The bench's live reader follows
 * through this too, so its figure is what a user's follower costs.
 */
import { FrameDecoder, Routes, type OutputFrame } from '@ferry/protocol';
import type { FerryClient } from './client.js';
import { withRetry } from './retry.js';

/** One answer of the output endpoint, decoded. */
export interface OutputPage {
  frames: OutputFrame[];
  /** Where the next read starts. */
  nextOffset: number;
  taskStatus: string;
  /** The task has ended and everything stored has been read: the last page. */
  complete: boolean;
}

export interface FollowOutputOptions {
  /** The output offset to start at (a resumed follower). */
  from?: number;
  /** Wait for more output (long polls of `waitSeconds`) rather than stop at what is stored now. */
  follow: boolean;
  waitSeconds?: number;
  /** Per read; unbounded when not given. */
  maxAttempts?: number;
  signal?: AbortSignal | undefined;
}

/**
 * The task's output, page by page. Ends after the page that completes it, or, when not
 * following, after the first empty one. A read that fails past its retries throws (an abort
 * included: callers tell it with `isAbort`).
 */
export async function* followOutput(client: FerryClient, taskId: string, opts: FollowOutputOptions): AsyncGenerator<OutputPage, void, void> {
  let offset = opts.from ?? 0;
  const waitSeconds = opts.follow ? (opts.waitSeconds ?? 20) : 0;
  for (;;) {
    const page = await withRetry(() => client.call(Routes.readOutput, { params: { id: taskId }, query: { offset, waitSeconds }, signal: opts.signal }), {
      maxAttempts: opts.maxAttempts,
      signal: opts.signal,
    });
    // The frames are views into the answer's bytes: no copy of the output on the way.
    const frames = new FrameDecoder().push(page.body);
    offset = page.nextOffset;
    yield { frames, nextOffset: page.nextOffset, taskStatus: page.taskStatus, complete: page.complete };
    if (page.complete || (!opts.follow && frames.length === 0)) return;
  }
}
