/**
 * Small statistics and clock helpers for the benchmarks. No dependencies.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout } from 'node:timers';

/** Median; the mean of the two middle values for an even count. NaN for no samples. */
export function median(xs) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile (p in 0..100): the smallest sample with at least p % of samples at or below it. */
export function percentile(xs, p) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[Math.min(rank, s.length) - 1];
}

export function spread(xs) {
  if (xs.length === 0) return [NaN, NaN];
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of xs) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

/** Rounds for the JSON: 3 decimals, null for anything not finite. */
export function round(x, digits = 3) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function summary(xs) {
  return {
    n: xs.length,
    min: round(spread(xs)[0]),
    p50: round(percentile(xs, 50)),
    p95: round(percentile(xs, 95)),
    p99: round(percentile(xs, 99)),
    max: round(spread(xs)[1]),
  };
}

/** Splits `n` items into `rounds` rounds as evenly as possible. */
export function roundSizes(n, rounds) {
  const base = Math.floor(n / rounds);
  return Array.from({ length: rounds }, (_, i) => base + (i < n % rounds ? 1 : 0));
}

/**
 * One wall clock with sub-millisecond resolution: performance.now() (monotonic) shifted onto
 * the system's real-time clock, the one `$EPOCHREALTIME` in bash reads (gettimeofday). The
 * shift is found by spinning until Date.now() ticks to the next millisecond: at that instant
 * real time is the new value (to within one loop turn, well under a microsecond).
 */
let realtimeOffset = 0;

export function calibrateRealtime() {
  let best = -Infinity;
  for (let i = 0; i < 7; i++) {
    const a = Date.now();
    let b = a;
    const spinUntil = performance.now() + 5;
    while (b === a && performance.now() < spinUntil) b = Date.now();
    const mono = performance.timeOrigin + performance.now();
    // Detection is always a little late, so every estimate is at or below the truth: keep the largest.
    if (b !== a) best = Math.max(best, b - mono);
  }
  if (Number.isFinite(best)) realtimeOffset = best;
  return realtimeOffset;
}

/** Milliseconds since the epoch, sub-millisecond resolution, on the system real-time clock. */
export function realNowMs() {
  return performance.timeOrigin + performance.now() + realtimeOffset;
}

/** A performance.now() reading → ms since the epoch on the real-time clock. */
export function perfToRealMs(t) {
  return performance.timeOrigin + t + realtimeOffset;
}

/** `$EPOCHREALTIME` text ("1712345678.123456") → ms since the epoch, or NaN. */
export function parseEpochRealtime(text) {
  const m = /(\d+)[.,](\d{1,9})/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * 1000 + Number(m[2]) / 10 ** (m[2].length - 3);
}

/** Runs `worker(item)` over items with at most `limit` in flight; results in order. */
export async function pool(items, limit, worker) {
  const results = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      results[i] = await worker(items[i], i);
    }
  });
  await Promise.all(lanes);
  return results;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
