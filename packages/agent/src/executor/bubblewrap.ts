/**
 * Placeholder until the sandbox issue lands: reports bubblewrap as unavailable.
 */
import type { Executor, Sandbox } from './types.js';

export async function bubblewrapProblem(): Promise<string | undefined> {
  return 'the bubblewrap executor is not built yet';
}

export class BubblewrapExecutor implements Executor {
  readonly name = 'sandbox' as const;
  readonly warning = undefined;
  async create(): Promise<Sandbox> {
    throw new Error('not built yet');
  }
}
