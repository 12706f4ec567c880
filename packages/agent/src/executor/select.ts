import type { BubblewrapOptions } from './bubblewrap.js';
import { ProcessExecutor } from './process.js';
import type { Executor } from './types.js';

export class ExecutorUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecutorUnavailableError';
  }
}

/** What the agent says when the sandbox cannot run: the cause, and how to choose the unsandboxed executor knowingly. */
function sandboxRefusal(problem: string): string {
  return (
    `the sandbox cannot run here: ${problem}. ` +
    'The agent does not fall back to running tasks unsandboxed on its own. To do that knowingly, start it with --executor process: ' +
    "tasks then run as the agent's user and see this host's files, processes and network."
  );
}

/**
 * `sandbox` and `auto` (the default) both mean the bubblewrap sandbox, and refuse to start when
 * the host cannot run it (not root, no bwrap…): a silent fall-back would run tasks unisolated
 * with only a log line to say so. `process` is the unsandboxed executor, chosen explicitly.
 * `rootDir` is where the process executor keeps its per-task folders (the sandbox keeps none on
 * the host); `sandbox` configures the sandbox (its task uid range, its pool of waiting sandboxes).
 */
export async function selectExecutor(choice: 'sandbox' | 'process' | 'auto', rootDir?: string, sandbox: BubblewrapOptions = {}): Promise<Executor> {
  if (choice === 'process') return new ProcessExecutor(rootDir);
  const { BubblewrapExecutor, bubblewrapProblem } = await import('./bubblewrap.js');
  const problem = await bubblewrapProblem();
  if (problem === undefined) {
    // What agents killed on this host left (their sandboxes' cgroups) goes before the first task.
    await BubblewrapExecutor.sweep();
    return new BubblewrapExecutor(sandbox);
  }
  throw new ExecutorUnavailableError(sandboxRefusal(problem));
}
