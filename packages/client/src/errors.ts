/**
 * What a failed API call looks like to callers, and the one place that decides which failures
 * are worth retrying.
 * Retry: 429, 5xx (but 501), and connection-level failures (a server restarting, a network blip).
 * Fatal: 401 and 403: the credential is wrong or revoked; retrying cannot fix that.
 * Everything else (4xx) is a definite answer the caller must handle.
 */
import { ClientErrorCodes, isErrorCode, type ClientErrorCode, type ErrorCode } from '@ferry/protocol';

export class ApiError extends Error {
  constructor(
    /** HTTP status, or 0 when no answer came (network, pinning, malformed answer before a status). */
    readonly status: number,
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    readonly details: Record<string, unknown> | undefined = undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiError';
  }
}

/** A client-side failure with one of the client codes (no server answer carried a code). */
export function clientError(code: ClientErrorCode, message: string = ClientErrorCodes[code], cause?: unknown): ApiError {
  return new ApiError(0, code, message, undefined, cause === undefined ? undefined : { cause });
}

/** Maps an error answer to an ApiError carrying the server's stable code. */
export function errorFromAnswer(status: number, text: string): ApiError {
  try {
    const parsed = JSON.parse(text) as { code?: unknown; message?: unknown; details?: unknown };
    if (isErrorCode(parsed.code) && typeof parsed.message === 'string') {
      const details = typeof parsed.details === 'object' && parsed.details !== null ? (parsed.details as Record<string, unknown>) : undefined;
      return new ApiError(status, parsed.code, parsed.message, details);
    }
  } catch {
    // not one of ours: described below
  }
  const code = status >= 500 ? 'FERRY_E_INTERNAL' : 'FERRY_E_UNEXPECTED_RESPONSE';
  return new ApiError(status, code, `HTTP ${status} from the server: ${text.slice(0, 200)}`);
}

export function isRetryable(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  if (err.code === 'FERRY_E_NETWORK') return true;
  return err.status === 429 || (err.status >= 500 && err.status !== 501);
}

export function isFatal(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 401 || err.status === 403);
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}
