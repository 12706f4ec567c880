/**
 * The server's answers the agent acts on specially. Which failures are worth retrying is
 * decided once, in @ferry/client (`isRetryable`: 429, 5xx, network; `isFatal`: 401, 403);
 * these are the answers that mean something more to an agent:
 * - FERRY_E_OUTPUT_GAP with `details.expectedOffset`: the server wants output from that offset
 *   (it lost some, or an acknowledgement was lost): resend from there.
 * - FERRY_E_LEASE_LOST: the task is no longer this agent's: abandon it and drop its output.
 * - 401/403: the credential is wrong or revoked, or every target the agent served was deleted
 *   (FERRY_E_AGENT_ORPHANED): the agent stops with a FatalAgentError that says what to do.
 */
import { ApiError, isFatal } from '@ferry/client';
import { toError } from '@ferry/protocol';

export class FatalAgentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FatalAgentError';
  }
}

/** The offset the server expects output from, when `err` is an output-gap answer. */
export function expectedOffsetOf(err: unknown): number | undefined {
  if (!(err instanceof ApiError) || err.code !== 'FERRY_E_OUTPUT_GAP') return undefined;
  const offset = err.details?.expectedOffset;
  return typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0 ? offset : undefined;
}

export function isLeaseLost(err: unknown): boolean {
  return err instanceof ApiError && err.code === 'FERRY_E_LEASE_LOST';
}

/** The error that stops the agent when `err` says its credential was refused; otherwise undefined. */
export function fatalFrom(err: unknown): FatalAgentError | undefined {
  if (err instanceof FatalAgentError) return err;
  if (!isFatal(err)) return undefined;
  // These say what to do in the server's own words: passed on as they are.
  if (err instanceof ApiError && (err.code === 'FERRY_E_AGENT_REVOKED' || err.code === 'FERRY_E_AGENT_ORPHANED')) {
    return new FatalAgentError(err.message, { cause: err });
  }
  return new FatalAgentError(`The server refused this agent's credential: ${toError(err).message}`, { cause: err });
}

/** A short message for a log line, whatever was thrown. */
export function messageOf(err: unknown): string {
  return toError(err).message;
}
