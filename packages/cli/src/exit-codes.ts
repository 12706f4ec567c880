import type { Task } from '@ferry/protocol';
import { terminalSafeLines } from './terminal.js';

/**
 * The CLI's own failures (a wrong flag, a refused request, an unreachable server, a file that
 * is not there) exit with 255, as ssh's do, so a script can tell them from a task that exited
 * 1 or 2. A task that itself exits 255 still passes through: `ferry task show` tells them apart.
 */
export const CLI_FAILURE = 255;

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/**
 * `ferry run`, `task logs -f` and `task wait` exit with the task's own exit code; when the task
 * did not exit on its own the code says why (documented in the README).
 */
export function exitCodeFor(task: Task): number {
  switch (task.status) {
    case 'succeeded':
      return 0;
    case 'failed':
      if (task.exitCode !== null) return task.exitCode;
      return 128 + (task.signal ? (SIGNALS[task.signal] ?? 0) : 0);
    case 'timed_out':
      return 124;
    case 'cancelled':
      return 130;
    case 'lost':
      return 75;
    case 'error':
      return 70;
    case 'rejected':
      return 77;
    case 'queued':
    case 'pending_review':
    case 'approved':
    case 'running':
      return 1;
  }
}

/** `90` → `90s`, `5400` → `1h30m`: durations as the flags take them. */
export function formatDuration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  const parts: string[] = [];
  let rest = Math.round(seconds);
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (rest >= size) parts.push(`${Math.floor(rest / size)}${unit}`);
    rest %= size;
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}s`);
  return parts.join('');
}

/** The agent's "could not start the task: X" reads twice in "could not start: …". */
const START_PREFIX = /^could not start the task: /;

/**
 * The one line on stderr for every ending but success, e.g. `task t_… failed with exit code 3`,
 * `… was killed: out of memory (limit 512 MiB)`. undefined for a success.
 */
export function endingSummary(task: Task): string | undefined {
  const id = `task ${task.id}`;
  const reason = task.reason ? terminalSafeLines(task.reason) : undefined;
  switch (task.status) {
    case 'succeeded':
      return undefined;
    case 'failed': {
      if (reason?.startsWith('out of memory')) return `${id} was killed: ${reason}`;
      if (task.exitCode === null) return `${id} was killed by ${task.signal ?? 'a signal'}`;
      return `${id} failed with exit code ${task.exitCode}${reason ? ` (${reason})` : ''}`;
    }
    case 'timed_out':
      return `${id} timed out after ${formatDuration(task.timeoutSeconds)}`;
    case 'cancelled':
      return `${id} was cancelled`;
    case 'lost':
      return `${id} lost its agent${reason ? `: ${reason}` : ''}`;
    case 'error':
      return `${id} could not start: ${(reason ?? 'no reason given').replace(START_PREFIX, '')}`;
    case 'rejected':
      return `${id} was rejected${reason ? `: ${reason}` : ''}`;
    case 'queued':
    case 'pending_review':
    case 'approved':
    case 'running':
      return `${id} has not ended (${task.status})`;
  }
}

/** Prints the summary line (if the task did not succeed) and returns the exit code. */
export function reportEnding(task: Task): number {
  const line = endingSummary(task);
  if (line) process.stderr.write(`ferry: ${line}\n`);
  return exitCodeFor(task);
}
