import type { z } from 'zod';
import { UsageError } from './errors.js';

/** Checks what the user typed against the request's schema before anything is sent. */
export function parseOrUsage<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
  throw new UsageError(`Invalid ${what}: ${problems.join('; ')}.`);
}
