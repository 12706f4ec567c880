/**
 * Runtimes map a task's target type to what runs in the sandbox. Only `shell` exists so far;
 * database and cloud runtimes arrive with their issue.
 */
import type { Assignment } from '@ferry/protocol';
import { TASK_PATH, type RunSpec } from './executor/types.js';

export function runSpecFor(task: Assignment, secrets: ReadonlyMap<string, string> = new Map()): RunSpec {
  const env: Record<string, string> = {
    ...Object.fromEntries(secrets),
    PATH: TASK_PATH,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TERM: 'dumb',
    FERRY_TASK_ID: task.id,
    FERRY_TARGET: task.target.name,
  };
  switch (task.target.type) {
    case 'shell':
      return { argv: ['bash', '--noprofile', '--norc', '{script}'], env, script: task.script };
    default: {
      const unknown: never = task.target.type;
      throw new Error(`no runtime for target type ${String(unknown)}`);
    }
  }
}
