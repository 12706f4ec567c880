/**
 * A runbook's front matter: a block of comment lines at the top of the script (after an optional
 * `#!` line), between two `---` lines, in the script's own comment syntax (`#`, `--` or `//`):
 *
 *     # ---
 *     # description: Restart a systemd service
 *     # target-type: shell
 *     # default-target: web1
 *     # param service: string, required, pattern=[a-z][a-z0-9@.-]* -- the unit to restart
 *     # param count: int, default=1
 *     # param env: string, allowed=staging|production, default=staging
 *     # ---
 *
 * A file without the block is not a runbook. Parameters become environment variables of the
 * same names, so a name must be one a task may set (`envNameProblem`).
 */
import { TARGET_TYPES, envNameProblem, type RunbookParam } from '@ferry/protocol';
import type { RunbookMeta } from '../store/runbook-types.js';

const COMMENT = /^\s*(?:#|--|\/\/)\s?(.*)$/;
const FENCE = /^---\s*$/;
/** The block must begin within the first lines. */
const MAX_LEADING_LINES = 3;
const OPTION_SPLIT = /,\s*(?=required\b|default=|allowed=|pattern=)/;

/** The front matter of `text`, undefined when it has none, or the problem with it. */
export function parseFrontMatter(text: string): RunbookMeta | undefined | { problem: string } {
  const lines = text.split('\n');
  let i = lines[0]?.startsWith('#!') ? 1 : 0;
  while (i < MAX_LEADING_LINES && i < lines.length && lines[i]!.trim() === '') i++;
  const open = COMMENT.exec(lines[i] ?? '');
  if (!open || !FENCE.test(open[1] ?? '')) return undefined;
  const meta: RunbookMeta = { description: null, targetType: '', defaultTarget: null, params: [] };
  for (i++; i < lines.length; i++) {
    const body = COMMENT.exec(lines[i]!)?.[1];
    if (body === undefined) return { problem: `line ${i + 1}: the front matter ends without its closing ---` };
    if (FENCE.test(body)) return finish(meta);
    if (body.trim() === '') continue;
    const problem = readLine(meta, body.trim());
    if (problem) return { problem: `line ${i + 1}: ${problem}` };
  }
  return { problem: 'the front matter has no closing ---' };
}

function finish(meta: RunbookMeta): RunbookMeta | { problem: string } {
  if (!meta.targetType) return { problem: 'the front matter names no target-type' };
  return meta;
}

function readLine(meta: RunbookMeta, line: string): string | undefined {
  const param = /^param\s+([^:\s]+)\s*:\s*(.*)$/.exec(line);
  if (param) return readParam(meta, param[1]!, param[2]!);
  const kv = /^([a-z-]+)\s*:\s*(.*)$/.exec(line);
  if (!kv) return `"${line}" is not "key: value" nor "param NAME: TYPE, …"`;
  const [, key, value] = kv as unknown as [string, string, string];
  switch (key) {
    case 'description':
      meta.description = value;
      return undefined;
    case 'target-type':
      if (!(TARGET_TYPES as readonly string[]).includes(value)) return `target-type ${value} is not one of ${TARGET_TYPES.join(', ')}`;
      meta.targetType = value;
      return undefined;
    case 'default-target':
      meta.defaultTarget = value;
      return undefined;
    default:
      return `unknown key ${key} (description, target-type, default-target, param)`;
  }
}

function readParam(meta: RunbookMeta, name: string, spec: string): string | undefined {
  const nameProblem = envNameProblem(name);
  if (nameProblem) return `param ${name}: ${nameProblem}`;
  if (meta.params.some((p) => p.name === name)) return `param ${name} is declared twice`;
  const dash = spec.indexOf(' -- ');
  const description = dash >= 0 ? spec.slice(dash + 4).trim() : null;
  const [type, ...options] = (dash >= 0 ? spec.slice(0, dash) : spec).split(OPTION_SPLIT).map((s) => s.trim());
  if (type !== 'string' && type !== 'int' && type !== 'bool') return `param ${name}: type ${type ?? ''} is not string, int or bool`;
  const param: RunbookParam = { name, type, required: false, default: null, allowed: null, pattern: null, description };
  for (const option of options) {
    if (option === 'required') param.required = true;
    else if (option.startsWith('default=')) param.default = option.slice('default='.length);
    else if (option.startsWith('allowed=')) param.allowed = option.slice('allowed='.length).split('|');
    else if (option.startsWith('pattern=')) param.pattern = option.slice('pattern='.length);
    else return `param ${name}: unknown option ${option}`;
  }
  if (param.pattern !== null) {
    try {
      new RegExp(param.pattern, 'u');
    } catch (err) {
      return `param ${name}: pattern ${param.pattern} is not a regular expression (${(err as Error).message})`;
    }
  }
  if (param.default !== null) {
    const problem = valueProblem(param, param.default);
    if (problem) return `param ${name}: its default ${problem}`;
  }
  meta.params.push(param);
  return undefined;
}

/** Why `value` does not fit `param`, or undefined when it does. */
function valueProblem(param: RunbookParam, value: string): string | undefined {
  if (param.type === 'int' && !/^-?\d{1,15}$/.test(value)) return `${JSON.stringify(value)} is not a whole number`;
  if (param.type === 'bool' && value !== 'true' && value !== 'false') return `${JSON.stringify(value)} is not true or false`;
  if (param.allowed && !param.allowed.includes(value)) return `${JSON.stringify(value)} is not one of ${param.allowed.join(', ')}`;
  if (param.pattern !== null && !new RegExp(`^(?:${param.pattern})$`, 'u').test(value)) return `${JSON.stringify(value)} does not match ${param.pattern}`;
  return undefined;
}

/**
 * The environment a run gets from `given`: every declared parameter with a value (given, or its
 * default), or every problem at once.
 */
export function paramEnv(params: readonly RunbookParam[], given: Readonly<Record<string, string>>): { env: Record<string, string> } | { problems: string[] } {
  const problems: string[] = [];
  const known = new Set(params.map((p) => p.name));
  for (const name of Object.keys(given))
    if (!known.has(name)) problems.push(`unknown parameter ${name} (this runbook takes ${params.map((p) => p.name).join(', ') || 'none'})`);
  const env: Record<string, string> = {};
  for (const p of params) {
    const value = Object.hasOwn(given, p.name) ? given[p.name]! : p.default;
    if (value === null) {
      if (p.required) problems.push(`missing parameter ${p.name} (${p.type}${p.description ? `: ${p.description}` : ''})`);
      continue;
    }
    const problem = valueProblem(p, value);
    if (problem) problems.push(`parameter ${p.name}: ${problem}`);
    else env[p.name] = value;
  }
  return problems.length > 0 ? { problems } : { env };
}
