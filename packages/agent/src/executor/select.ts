import { ProcessExecutor } from './process.js';
import type { Executor } from './types.js';

export class ExecutorUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecutorUnavailableError';
  }
}

/** `auto` picks the sandbox where the host supports it, else the process executor (with a warning). */
export async function selectExecutor(choice: 'sandbox' | 'process' | 'auto', rootDir?: string): Promise<Executor> {
  if (choice === 'process') return new ProcessExecutor(rootDir);
  const { BubblewrapExecutor, bubblewrapProblem } = await import('./bubblewrap.js');
  const problem = await bubblewrapProblem();
  if (problem === undefined) return new BubblewrapExecutor(rootDir === undefined ? {} : { rootDir });
  if (choice === 'sandbox')
    throw new ExecutorUnavailableError(
      `--executor sandbox needs bubblewrap, and ${problem}. Install it (Debian/Ubuntu: apt-get install bubblewrap) or choose --executor process, which isolates much less.`,
    );
  return new ProcessExecutor(rootDir);
}
