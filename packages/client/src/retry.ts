/**
 * The one retry helper: exponential backoff with jitter, bounded by attempts or a deadline,
 * interruptible by an AbortSignal. What is retryable is decided in errors.ts unless the caller
 * says otherwise.
 */
import { isRetryable } from './errors.js';

/** Exponential backoff with jitter: attempt 0 waits between base/2 and base, doubling, capped. */
export function backoffMs(attempt: number, baseMs = 250, capMs = 15_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** Resolves after `ms`, or at once when `signal` aborts (it never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface RetryOptions {
  baseMs?: number;
  capMs?: number;
  /** Give up after this many attempts (default: no limit). */
  maxAttempts?: number;
  /** Give up once this time (ms since the epoch) has passed; the last wait is cut to fit. */
  deadline?: number;
  /** Stops waiting and rethrows the last error. */
  signal?: AbortSignal;
  /** Which errors to retry; default `isRetryable`. */
  retryable?: (err: unknown) => boolean;
  onRetry?: (err: unknown, attempt: number, waitMs: number) => void;
}

/** Calls `fn` until it succeeds, a non-retryable error, or the attempts or deadline run out. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const retryable = opts.retryable ?? isRetryable;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const last = opts.maxAttempts !== undefined && attempt + 1 >= opts.maxAttempts;
      const late = opts.deadline !== undefined && Date.now() >= opts.deadline;
      if (!retryable(err) || last || late || opts.signal?.aborted) throw err;
      let wait = backoffMs(attempt, opts.baseMs, opts.capMs);
      if (opts.deadline !== undefined) wait = Math.max(0, Math.min(wait, opts.deadline - Date.now()));
      opts.onRetry?.(err, attempt, wait);
      await sleep(wait, opts.signal);
    }
  }
}
