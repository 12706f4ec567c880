/**
 * The one place that decides which API failures are worth retrying.
 * Retry: 429, 5xx, and connection-level failures (the server restarting, a network blip).
 * Fatal: 401 and 403: the credential is wrong or revoked; retrying cannot fix that.
 * Everything else (4xx) is a definite answer the caller must handle.
 */
import type { ErrorCode } from '@ferry/protocol';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | 'FERRY_E_NETWORK' | 'FERRY_E_UNEXPECTED_RESPONSE',
    message: string,
    readonly details: Record<string, unknown> | undefined = undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiError';
  }
}

export function isRetryable(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  if (err.code === 'FERRY_E_NETWORK') return true;
  return err.status === 429 || (err.status >= 500 && err.status !== 501);
}

export function isFatal(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 401 || err.status === 403);
}

/** Exponential backoff with full jitter: attempt 0 → up to `baseMs`, doubling, capped. */
export function backoffMs(attempt: number, baseMs = 250, capMs = 15_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
