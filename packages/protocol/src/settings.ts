/**
 * Target settings: plain, non-secret values a target's tasks get as environment variables
 * (`PG_HOST`, `AWS_REGION`, `GREETING`…). Unlike secrets they are stored and shown in clear and
 * never masked. A name is either a setting or a secret of a target, never both, so what a task
 * sees under a name never depends on which one won.
 */
import { z } from 'zod';
import { utf8Encode } from './bytes.js';
import { isReservedSecretName } from './secrets.js';

export const SETTING_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_SETTING_NAME_LENGTH = 128;
export const MAX_SETTING_VALUE_BYTES = 4096;
export const MAX_SETTINGS_PER_TARGET = 64;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `name` cannot be a setting's name, or undefined when it can. */
export function settingNameProblem(name: string): string | undefined {
  if (name.length > MAX_SETTING_NAME_LENGTH) return `setting names are at most ${MAX_SETTING_NAME_LENGTH} characters`;
  if (!SETTING_NAME_PATTERN.test(name)) return `"${name}" is not a setting name: use letters, digits and _, not starting with a digit (e.g. PG_HOST)`;
  if (isReservedSecretName(name)) return `${name} is reserved for the task environment; pick another name`;
  return undefined;
}

/** Why `value` cannot be a setting's value, or undefined when it can. */
export function settingValueProblem(name: string, value: string): string | undefined {
  if (utf8Encode(value).length > MAX_SETTING_VALUE_BYTES) return `the value of ${name} is over ${MAX_SETTING_VALUE_BYTES} bytes (4 KiB)`;
  if (CONTROL_CHARACTER.test(value)) return `the value of ${name} contains a control character (newline, tab, escape…); settings are single-line text`;
  return undefined;
}

function checkEntries(entries: Record<string, string | null>, ctx: z.RefinementCtx): void {
  for (const [name, value] of Object.entries(entries)) {
    const problem = settingNameProblem(name) ?? (value === null ? undefined : settingValueProblem(name, value));
    if (problem) ctx.addIssue({ code: 'custom', message: problem, path: [name] });
  }
}

/** A target's settings, as stored and shown: at most MAX_SETTINGS_PER_TARGET of them. */
export const TargetSettings = z
  .record(z.string(), z.string())
  .superRefine(checkEntries)
  .refine((s) => Object.keys(s).length <= MAX_SETTINGS_PER_TARGET, {
    message: `a target has at most ${MAX_SETTINGS_PER_TARGET} settings`,
  });
export type TargetSettings = z.infer<typeof TargetSettings>;

/** Changes to a target's settings: a value sets one, null removes it. */
export const SettingsPatch = z
  .record(z.string(), z.string().nullable())
  .superRefine(checkEntries)
  .refine((s) => Object.keys(s).length <= 2 * MAX_SETTINGS_PER_TARGET, { message: 'too many setting changes in one request' });
export type SettingsPatch = z.infer<typeof SettingsPatch>;

/** The settings after `patch`; the caller checks the count. */
export function applySettingsPatch(current: Readonly<TargetSettings>, patch: Readonly<SettingsPatch>): TargetSettings {
  const next: TargetSettings = { ...current };
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete next[name];
    else next[name] = value;
  }
  return next;
}
