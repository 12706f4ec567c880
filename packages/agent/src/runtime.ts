/**
 * Runtimes map a task's target type, its settings and its secrets to what runs in the sandbox:
 * a command, an environment and (for kubeconfigs and client option files) small private files.
 * Secrets never go on a command line: they travel in the environment or in files only the task
 * sees. A type's non-secret parts (PG_HOST, PG_PORT, MYSQL_USER, AWS_REGION…) come from a
 * setting or a secret alike; when both exist (the server refuses that), the secret wins.
 */
import { TARGET_TYPE_INFO, base64Decode, type Assignment, type TargetType } from '@ferry/protocol';
import { TASK_PATH, type RunSpec } from './executor/types.js';

export class MissingSecretError extends Error {
  constructor(
    readonly missing: string[],
    target: string,
    type: TargetType,
  ) {
    super(
      `target ${target} (${type}) needs secret${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not set: ` +
        `ferry secret set ${target} ${missing[0] ?? ''} (or, for a value that is not secret, ferry target update ${target} --setting ${missing[0] ?? ''}=VALUE)`,
    );
    this.name = 'MissingSecretError';
  }
}

/** TSV from `mysql --batch` (with its \t \n \\ escapes) to RFC 4180 CSV. */
const TSV_TO_CSV = String.raw`BEGIN { FS = "\t"; OFS = "," }
{ for (i = 1; i <= NF; i++) { f = $i; gsub(/\\t/, "\t", f); gsub(/\\n/, "\n", f); gsub(/\\\\/, "\\", f);
    if (f ~ /[",\n]/) { gsub(/"/, "\"\"", f); f = "\"" f "\"" } $i = f } print }`;

function mysqlOptionFile(s: ReadonlyMap<string, string>): string {
  const quote = (v: string): string => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return [
    '[client]',
    `host=${quote(s.get('MYSQL_HOST') ?? '')}`,
    `port=${s.get('MYSQL_PORT') ?? '3306'}`,
    `user=${quote(s.get('MYSQL_USER') ?? '')}`,
    `password=${quote(s.get('MYSQL_PASS') ?? '')}`,
    `database=${quote(s.get('MYSQL_DB') ?? '')}`,
    'protocol=tcp',
    '',
  ].join('\n');
}

/** Settings and secrets by name, where a type reads its parts from; a secret wins over a setting. */
function taskValues(task: Assignment, secrets: ReadonlyMap<string, string>): Map<string, string> {
  return new Map([...Object.entries(task.settings), ...secrets]);
}

/** The task's own input: its arguments (script types only; the server refuses them for SQL) and its stdin. */
export function runSpecFor(task: Assignment, openedSecrets: ReadonlyMap<string, string> = new Map()): RunSpec {
  const spec = commandFor(task, openedSecrets);
  const stdin = task.stdin ? base64Decode(task.stdin) : undefined;
  return { ...spec, ...(task.args?.length ? { args: task.args } : {}), ...(stdin?.length ? { stdin } : {}) };
}

function commandFor(task: Assignment, openedSecrets: ReadonlyMap<string, string>): RunSpec {
  const type = task.target.type;
  const secrets = taskValues(task, openedSecrets);
  const missing = TARGET_TYPE_INFO[type].required.filter((k) => !secrets.has(k));
  if (missing.length > 0) throw new MissingSecretError(missing, task.target.name, type);
  // Precedence: what Ferry sets > secrets > the task's plain --env > the target's settings (the
  // server refuses a setting or an --env that clashes with a secret).
  const env: Record<string, string> = {
    ...task.settings,
    ...task.env,
    ...Object.fromEntries(openedSecrets),
    PATH: TASK_PATH,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TERM: 'dumb',
    FERRY_TASK_ID: task.id,
    FERRY_TARGET: task.target.name,
  };
  const s = (k: string): string => secrets.get(k) ?? '';
  switch (type) {
    case 'shell':
      return { argv: ['bash', '--noprofile', '--norc', '{script}'], env, script: task.script };
    case 'python':
      return { argv: ['python3', '-u', '{script}'], env: { ...env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' }, script: task.script };
    case 'node':
      return { argv: ['node', '{script}'], env, script: task.script };
    case 'postgres':
    case 'postgres-csv': {
      const pgEnv = {
        ...env,
        PGHOST: s('PG_HOST'),
        PGPORT: secrets.get('PG_PORT') ?? '5432',
        PGUSER: s('PG_USER'),
        PGPASSWORD: s('PG_PASS'),
        PGDATABASE: s('PG_DB'),
        PGAPPNAME: 'ferry',
        PGCONNECT_TIMEOUT: '15',
      };
      const format = type === 'postgres-csv' ? ['--csv'] : ['--no-align', '--field-separator=\t', '--pset=footer=off'];
      return { argv: ['psql', '-X', '--quiet', '-v', 'ON_ERROR_STOP=1', ...format, '-f', '{script}'], env: pgEnv, script: task.script };
    }
    case 'mysql':
    case 'mysql-csv': {
      const client = 'exec_client() { if command -v mariadb >/dev/null; then mariadb "$@"; else mysql "$@"; fi; }';
      const run =
        type === 'mysql-csv'
          ? `set -o pipefail; exec_client --defaults-extra-file="$1" --batch < "$2" | awk '${TSV_TO_CSV.replace(/'/g, "'\\''")}'`
          : 'exec_client --defaults-extra-file="$1" --batch < "$2"';
      return {
        argv: ['bash', '-c', `${client}; ${run}`, 'ferry-sql', '{files}/client.cnf', '{script}'],
        env,
        script: task.script,
        files: { 'client.cnf': mysqlOptionFile(secrets) },
      };
    }
    case 'kubernetes': {
      const { KUBE_CONFIG: kubeconfig, ...rest } = env;
      return {
        argv: ['bash', '--noprofile', '--norc', '{script}'],
        env: { ...rest, KUBECONFIG: '{files}/kubeconfig' },
        script: task.script,
        files: { kubeconfig: kubeconfig ?? '' },
      };
    }
    case 'aws': {
      const region = secrets.get('AWS_REGION');
      return {
        argv: ['bash', '--noprofile', '--norc', '{script}'],
        env: { ...env, ...(region ? { AWS_DEFAULT_REGION: region } : {}), AWS_PAGER: '', AWS_CONFIG_FILE: '/dev/null' },
        script: task.script,
      };
    }
  }
}
