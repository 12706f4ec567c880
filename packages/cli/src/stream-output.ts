/**
 * Follows a task's output: long-polls the output endpoint from the last offset and writes
 * stdout frames to stdout, stderr and Ferry's own notices to stderr, until the server says
 * the output is complete (or, without `follow`, until what is stored has been printed).
 */
import { FrameDecoder, Streams, type Task } from '@ferry/protocol';
import type { ApiClient } from '@ferry/agent';
import { isRetryable, backoffMs } from '@ferry/agent';

export interface FollowOptions {
  follow: boolean;
  onWaiting?: (task: Task) => void;
  signal?: AbortSignal;
}

/** Writes the frames to stdout/stderr; returns how many there were. */
function writeFrames(body: Buffer): number {
  const frames = new FrameDecoder().push(body);
  for (const frame of frames) {
    (frame.stream === Streams.stdout ? process.stdout : process.stderr).write(frame.data);
  }
  return frames.length;
}

export async function streamOutput(client: ApiClient, taskId: string, opts: FollowOptions): Promise<void> {
  let offset = 0;
  let attempt = 0;
  let lastStatusCheck = Date.now();
  for (;;) {
    try {
      const res = await client.raw('GET', `/v1/tasks/${taskId}/output?offset=${offset}&waitSeconds=${opts.follow ? 20 : 0}`, opts.signal ? { signal: opts.signal } : {});
      attempt = 0;
      const empty = writeFrames(res.body) === 0;
      const next = Number(res.headers['ferry-next-offset'] ?? offset);
      const complete = res.headers['ferry-output-complete'] === 'true';
      offset = next;
      if (complete || (!opts.follow && empty)) return;
      if (opts.onWaiting && res.headers['ferry-task-status'] === 'queued' && Date.now() - lastStatusCheck > 5000) {
        lastStatusCheck = Date.now();
        opts.onWaiting(await client.json<Task>('GET', `/v1/tasks/${taskId}`));
      }
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      if (!isRetryable(err) || attempt > 30) throw err;
      await new Promise((r) => setTimeout(r, backoffMs(attempt++)));
    }
  }
}
