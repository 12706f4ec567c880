/**
 * What a task gets besides its script: bytes on its stdin, arguments (`$1 $2` in a shell
 * script), and plain environment variables. All bounded, because they are stored with the task
 * and travel to the agent in the claim. Secrets stay in secrets: these values are stored and
 * shown as they are (`ferry task show`), never masked.
 */
import { z } from 'zod';
import { base64DecodedLength } from './bytes.js';

export const MAX_STDIN_BYTES = 1024 * 1024;
export const MAX_TASK_ARGS = 256;
export const MAX_TASK_ARG_CHARS = 4096;
export const MAX_TASK_ENV = 64;
export const MAX_TASK_ENV_VALUE_CHARS = 8192;

export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Names the agent sets itself for every task or for a target type's client (psql's PG*,
 * kubectl's KUBECONFIG, the aws CLI's settings): a task's `env` may not replace them. `FERRY_`
 * is Ferry's own prefix.
 */
const RESERVED_ENV_NAMES: ReadonlySet<string> = new Set([
  'PATH',
  'HOME',
  'TMPDIR',
  'PWD',
  'LANG',
  'LC_ALL',
  'TERM',
  'PYTHONUNBUFFERED',
  'PYTHONDONTWRITEBYTECODE',
  'PGHOST',
  'PGPORT',
  'PGUSER',
  'PGPASSWORD',
  'PGDATABASE',
  'PGAPPNAME',
  'PGCONNECT_TIMEOUT',
  'KUBECONFIG',
  'AWS_DEFAULT_REGION',
  'AWS_PAGER',
  'AWS_CONFIG_FILE',
]);

/** Why `name` cannot be a task's environment variable, or undefined when it can. */
export function envNameProblem(name: string): string | undefined {
  if (!ENV_NAME_PATTERN.test(name)) return `${JSON.stringify(name)} is not a variable name (letters, digits and _, not starting with a digit)`;
  if (name.startsWith('FERRY_') || RESERVED_ENV_NAMES.has(name)) return `${name} is set by Ferry for every task and cannot be replaced`;
  return undefined;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/** Bytes for the task's stdin, base64 (standard, padded): at most MAX_STDIN_BYTES once decoded. */
export const TaskStdin = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'stdin must be base64')
  .refine((s) => base64DecodedLength(s) <= MAX_STDIN_BYTES, { message: 'stdin is over 1 MiB, the most a task takes' });

export const TaskArgs = z
  .array(
    z
      .string()
      .max(MAX_TASK_ARG_CHARS, `an argument is over ${MAX_TASK_ARG_CHARS} characters`)
      .refine((a) => !CONTROL_CHARACTER.test(a), { message: 'arguments must not contain control characters (escape sequences, tabs, newlines, NUL)' }),
  )
  .max(MAX_TASK_ARGS, `at most ${MAX_TASK_ARGS} arguments`);

export const TaskEnv = z
  .record(z.string(), z.string().max(MAX_TASK_ENV_VALUE_CHARS, `a value is over ${MAX_TASK_ENV_VALUE_CHARS} characters`))
  .superRefine((env, ctx) => {
    const names = Object.keys(env);
    if (names.length > MAX_TASK_ENV) ctx.addIssue({ code: 'custom', message: `at most ${MAX_TASK_ENV} variables` });
    for (const name of names) {
      const problem = envNameProblem(name);
      if (problem) ctx.addIssue({ code: 'custom', message: problem, path: [name] });
      if (env[name]?.includes('\0')) ctx.addIssue({ code: 'custom', message: 'a value must not contain NUL', path: [name] });
    }
  });
