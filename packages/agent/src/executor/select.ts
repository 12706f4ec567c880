import type { BubblewrapOptions } from './bubblewrap.js';
import { ProcessExecutor } from './process.js';
import type { Executor } from './types.js';

export class ExecutorUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecutorUnavailableError';
  }
}

/**
 * `auto` picks the sandbox where the host supports it, else the process executor (with a warning).
 * `rootDir` is where the process executor keeps its per-task folders (the sandbox keeps none on
 * the host); `sandbox` configures the sandbox (its task uid range).
 */
export async function selectExecutor(choice: 'sandbox' | 'process' | 'auto', rootDir?: string, sandbox: BubblewrapOptions = {}): Promise<Executor> {
  if (choice === 'process') return new ProcessExecutor(rootDir);
  const { BubblewrapExecutor, bubblewrapProblem } = await import('./bubblewrap.js');
  const problem = await bubblewrapProblem();
  if (problem === undefined) return new BubblewrapExecutor(sandbox);
  if (choice === 'sandbox')
    throw new ExecutorUnavailableError(
      `--executor sandbox cannot run here: ${problem}. It needs root, bubblewrap, util-linux and perl (Debian/Ubuntu: apt-get install bubblewrap util-linux perl-base); or choose --executor process, which isolates much less.`,
    );
  return new ProcessExecutor(rootDir);
}
