import { UsageError } from './errors.js';
import { CLI_FAILURE } from './exit-codes.js';
import { terminalSafeLines } from './terminal.js';

/**
 * Errors are recognised by name and shape, not `instanceof`: the bundled CLI carries its own
 * copy of the protocol and client classes, while `ferry server` and `ferry agent start` load the
 * server and agent packages (and their copies) from node_modules.
 */
function named(err: unknown, ...names: string[]): err is Error & { code?: unknown } {
  return err instanceof Error && names.includes(err.name);
}

/** What a system error means, in a line: the ones a command meets in ordinary use. */
const SYSTEM_ERRORS: Record<string, (target: string) => string> = {
  ENOENT: (t) => `${t}: no such file or directory`,
  EACCES: (t) => `${t}: permission denied`,
  EISDIR: (t) => `${t} is a folder, not a file`,
  ECONNREFUSED: (t) => `cannot connect to ${t}: connection refused (is the server running, and is that its address?)`,
  ENOTFOUND: (t) => `cannot connect: the host name ${t} is not known`,
  ETIMEDOUT: (t) => `cannot connect to ${t}: timed out`,
  EHOSTUNREACH: (t) => `cannot connect to ${t}: no route to host`,
  ECONNRESET: (t) => `the connection to ${t} was reset`,
};

/** A Node system error (fs, net) as one line, or undefined when it is not one. */
function systemErrorLine(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const describe = typeof e?.code === 'string' ? SYSTEM_ERRORS[e.code] : undefined;
  if (!describe) return undefined;
  const target = e.path ?? e.hostname ?? (e.address ? `${e.address}${e.port ? `:${e.port}` : ''}` : undefined);
  return target ? describe(target) : e.message;
}

/** The innermost cause that is a known system error, for errors that wrap one. */
function knownCause(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const line = systemErrorLine(e);
    if (line) return line;
  }
  return undefined;
}

/**
 * Prints an error the way a person can act on it and returns CLI_FAILURE (255): the CLI's own
 * failures are told apart from a task's exit code. A stack trace only for the unexpected.
 */
export function reportError(err: unknown): number {
  if (err instanceof UsageError || named(err, 'ConfigError')) {
    process.stderr.write(`ferry: ${err.message}\n`);
    return CLI_FAILURE;
  }
  if (named(err, 'ApiError') && typeof err.code === 'string') {
    // The message may quote what an agent or another user sent: escaped.
    const cause = err.code === 'FERRY_E_NETWORK' ? knownCause(err) : undefined;
    process.stderr.write(`ferry: ${terminalSafeLines(cause ?? err.message)} (${err.code})\n`);
    return CLI_FAILURE;
  }
  if (named(err, 'CredentialError', 'FatalAgentError', 'ExecutorUnavailableError', 'DataFolderLockedError')) {
    process.stderr.write(`ferry: ${terminalSafeLines(err.message)}\n`);
    return CLI_FAILURE;
  }
  const known = knownCause(err);
  if (known) {
    process.stderr.write(`ferry: ${terminalSafeLines(known)}\n`);
    return CLI_FAILURE;
  }
  process.stderr.write(`ferry: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return CLI_FAILURE;
}
