/**
 * Wire schemas of runbooks: Git repositories of parameterized scripts (sources), the runbooks
 * found in them, and running one. A runbook's parameters are validated by the server and given
 * to the script as environment variables of the same names, never spliced into its text.
 */
import { z } from 'zod';
import { TeamName } from './teams.js';

export const RunbookParamType = z.enum(['string', 'int', 'bool']);

export const RunbookParam = z.object({
  name: z.string(),
  type: RunbookParamType,
  required: z.boolean(),
  default: z.string().nullable(),
  allowed: z.array(z.string()).nullable(),
  pattern: z.string().nullable(),
  description: z.string().nullable(),
});
export type RunbookParam = z.infer<typeof RunbookParam>;

export const AddRunbookSourceRequest = z
  .object({
    name: TeamName,
    /** https://…, ssh://…, user@host:path, or a local path / file://… (the server's own disk). */
    git: z.string().min(1).max(2000),
    ref: z
      .string()
      .regex(/^[A-Za-z0-9._/-]{1,200}$/, 'a branch, tag or commit: letters, digits, ".", "_", "/" and "-"')
      .refine((r) => !r.startsWith('-') && !r.includes('..'), 'not a usable ref')
      .default('HEAD'),
    /** The folder of the repository that holds the runbooks; empty: its top. */
    path: z
      .string()
      .max(500)
      .refine((p) => !p.split('/').includes('..') && !p.startsWith('/'), 'a folder inside the repository')
      .default(''),
  })
  .strict();

export const RunbookSourceInfo = z.object({
  name: z.string(),
  git: z.string(),
  ref: z.string(),
  path: z.string(),
  /** The commit the runbooks come from (null: never synced successfully). */
  commit: z.string().nullable(),
  syncedAt: z.string().nullable(),
  /** Why the last sync failed; the last good copy stays in use. */
  lastError: z.string().nullable(),
  runbooks: z.number().int(),
});

export const RunbookInfo = z.object({
  name: z.string(),
  source: z.string(),
  file: z.string(),
  commit: z.string(),
  description: z.string().nullable(),
  targetType: z.string(),
  defaultTarget: z.string().nullable(),
  params: z.array(RunbookParam),
  script: z.string(),
});
export type RunbookInfo = z.infer<typeof RunbookInfo>;
export type RunbookSourceInfo = z.infer<typeof RunbookSourceInfo>;

export const RunRunbookRequest = z
  .object({
    /** A target name (the target-name rule is TeamName's; schemas.ts imports this module). */
    target: TeamName.optional(),
    params: z.record(z.string(), z.string()).default({}),
    timeoutSeconds: z.number().positive().optional(),
  })
  .strict();

/** What a task records of the runbook it ran. */
export const TaskRunbook = z.object({ source: z.string(), name: z.string(), file: z.string(), commit: z.string(), params: z.record(z.string(), z.string()) });
