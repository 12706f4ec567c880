import { UsageError } from './errors.js';

/**
 * Prints an error the way a person can act on it and returns the exit code: 2 for a mistake in
 * how the command was used, 1 for everything else. A stack trace only for the unexpected.
 * The error classes load here, on the error path, so a successful command never pays for them.
 */
export async function reportError(err: unknown): Promise<number> {
  const [{ ConfigError }, { ApiError }] = await Promise.all([import('@ferry/protocol'), import('@ferry/client')]);
  if (err instanceof UsageError || err instanceof ConfigError) {
    process.stderr.write(`ferry: ${err.message}\n`);
    return 2;
  }
  if (err instanceof ApiError) {
    process.stderr.write(`ferry: ${err.message} (${err.code})\n`);
    return 1;
  }
  if (err instanceof Error && ['CredentialError', 'FatalAgentError', 'ExecutorUnavailableError'].includes(err.name)) {
    process.stderr.write(`ferry: ${err.message}\n`);
    return 1;
  }
  process.stderr.write(`ferry: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}
