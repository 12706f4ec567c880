import type { z } from 'zod';
import { FerryError } from '@ferry/protocol';

/** Parses untrusted input with a protocol schema; a failure is a 400 that says what to fix. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => {
    const path = i.path.join('.');
    if (i.code === 'unrecognized_keys') return `unknown field(s) ${i.keys.join(', ')}`;
    return path ? `${path}: ${i.message}` : i.message;
  });
  throw new FerryError('FERRY_E_BAD_REQUEST', `Invalid ${where}: ${problems.join('; ')}.`, { details: { issues: problems } });
}
