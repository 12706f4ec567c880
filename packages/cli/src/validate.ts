import type { z } from 'zod';
import { UsageError } from './errors.js';

/**
 * Checks what the user typed against the request's schema before anything is sent. `flags`
 * names, by the first segment of a problem's path, the flag or argument the user typed it as,
 * so the message speaks of `--type`, not of `type`.
 */
export function parseOrUsage<S extends z.ZodType>(schema: S, value: unknown, what: string, flags: Record<string, string> = {}): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => {
    const first = i.path[0];
    const flag = typeof first === 'string' ? flags[first] : undefined;
    if (flag) return `${flag}: ${i.message}`;
    return i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message;
  });
  throw new UsageError(`Invalid ${what}: ${problems.join('; ')}.`);
}

/** A count flag (`--limit 50`) as a whole number within bounds, or a UsageError that says the bounds. */
export function countFlag(flag: string, text: string, min: number, max: number): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${flag} ${text}: give a whole number from ${min} to ${max}.`);
  return n;
}
