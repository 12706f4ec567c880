import type { Task } from '@ferry/protocol';

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/**
 * `ferry run` exits with the task's own exit code; when the task did not exit on its own
 * the code says why (documented in the README).
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
