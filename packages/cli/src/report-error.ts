import { UsageError } from './errors.js';
import { terminalSafeLines } from './terminal.js';

/**
 * Errors are recognised by name and shape, not `instanceof`: the bundled CLI carries its own
 * copy of the protocol and client classes, while `ferry server` and `ferry agent start` load the
 * server and agent packages (and their copies) from node_modules.
 */
function named(err: unknown, ...names: string[]): err is Error & { code?: unknown } {
  return err instanceof Error && names.includes(err.name);
}

/**
 * Prints an error the way a person can act on it and returns the exit code: 2 for a mistake in
 * how the command was used, 1 for everything else. A stack trace only for the unexpected.
 */
export function reportError(err: unknown): number {
  if (err instanceof UsageError || named(err, 'ConfigError')) {
    process.stderr.write(`ferry: ${err.message}\n`);
    return 2;
  }
  if (named(err, 'ApiError') && typeof err.code === 'string') {
    // The message may quote what an agent or another user sent: escaped.
    process.stderr.write(`ferry: ${terminalSafeLines(err.message)} (${err.code})\n`);
    return 1;
  }
  if (named(err, 'CredentialError', 'FatalAgentError', 'ExecutorUnavailableError', 'DataFolderLockedError')) {
    process.stderr.write(`ferry: ${terminalSafeLines(err.message)}\n`);
    return 1;
  }
  process.stderr.write(`ferry: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}
