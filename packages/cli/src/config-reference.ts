/**
 * docs/configuration.md, generated: every setting of `ferry server` and `ferry agent start`
 * with its flag, environment variable, config-file key, default and limits, read from the
 * config schemas (server config.ts, agent config.ts), the `ferry server` command's options and
 * the agent's flag table. Only the one-line descriptions are written here, in tables typed by
 * the config keys, so a new setting without a description does not compile.
 * `node scripts/generate-config-reference.mjs` writes the file; a test fails when it is stale.
 */
import { Command } from 'commander';
import { z } from 'zod';
import { AGENT_START_FLAGS } from '@ferry/agent/flags';
import { AgentConfigSchema, type AgentConfig } from '@ferry/agent';
import { envName, formatDuration, formatSize } from '@ferry/protocol';
import { ServerConfigSchema, type ServerConfig } from '@ferry/server';
import { registerServerCommand } from './commands/server.js';

type Notes<C> = { readonly [K in keyof C]-?: string };

const SERVER_NOTES: Notes<ServerConfig> = {
  dataDir: 'Data folder: SQLite database, CA and server certificate, admin and metrics tokens, the embedded agent’s data.',
  listen: 'Address and port to listen on (HTTPS). Port 0 picks a free one.',
  publicUrl:
    "URL agents and clients use to reach this server; goes into join tokens. Default: `https://<listen>`. With replicas, this server's URL first, then the others', comma-separated: join tokens carry them all and agents fail over between them.",
  database:
    'Database URL. Default: SQLite in the data folder; `sqlite:PATH` for another file; `postgres://USER:PASSWORD@HOST:PORT/DB` for PostgreSQL ≥ 13, which replicas share (`?sslmode=verify-full&sslrootcert=FILE` for TLS). Also read from `FERRY_DATABASE_URL`.',
  databasePoolSize: 'PostgreSQL only: connections each server keeps to the database at most (one more listens for wake-ups from the other replicas).',
  embeddedAgent: 'Start the embedded hosted agent (a child process). `--no-embedded-agent` turns it off.',
  embeddedAgentExecutor: 'The embedded agent’s executor. `process` lets tasks read the server’s data folder: only where you accept that.',
  allowHostNetwork:
    'Whether hosted-pool targets may use `--network host` (off by default: hosted tasks get `--network public`). Turn on only where every organization may reach what the agent host reaches.',
  tlsCert: 'File of a PEM certificate to serve instead of the generated one (all three of `tlsCert`, `tlsKey`, `tlsCa`).',
  tlsKey: 'File of the PEM private key of `tlsCert`.',
  tlsCa: 'File of the PEM CA certificate that issued `tlsCert`; its fingerprint goes into join tokens and login lines.',
  tlsSans: 'Extra names (DNS or IP) for the generated certificate, comma-separated.',
  leaseSeconds: 'How long a claim holds a task without a heartbeat; a lapsed lease requeues a task that never started or marks a started one lost.',
  heartbeatSeconds: 'How often agents renew their leases (the server tells them).',
  agentOfflineSeconds: 'An agent unheard of for this long shows as offline.',
  defaultTimeoutSeconds: 'Task time limit for targets that set none.',
  maxTimeoutSeconds: 'The largest time limit a target or task may ask for.',
  defaultMaxOutputBytes: 'Output cap per task for targets that set none.',
  maxOutputBytes: 'The largest output cap a target may ask for.',
  defaultMaxProcesses: 'Process limit per task for targets that set none.',
  maxProcesses: 'The largest process limit a target may ask for.',
  defaultMemoryBytes: 'Memory limit per task for targets that set none.',
  maxMemoryBytes: 'The largest memory limit a target may ask for.',
  requestTimeoutSeconds: 'A request must arrive whole (headers and body) within this, or it is cut with 408. Waiting for an answer does not count.',
  headersTimeoutSeconds: 'The headers alone must arrive within this.',
  keepAliveTimeoutSeconds: 'Idle kept-alive connections close after this; behind a load balancer, set it longer than the balancer’s idle timeout.',
  maxConnections: 'Connections open at once; more are refused until some close.',
  authFailuresPerMinute: 'Failed authentications allowed per client address (IPv6: per /64) per minute; then 429. 0: no limit.',
  failedRegistrationsPerMinute: 'Failed agent registrations allowed per client address per minute; then 429. 0: no limit.',
  failedSignInsPerMinute:
    'Failed sign-ins and invitation attempts allowed per client address per minute, and at most 5 a minute per account whatever the address; then 429. 0: no limit.',
  requestsPerTokenPerMinute:
    "Requests allowed per user token (a person's or a service account's) per minute, in a burst of the same size; then 429 with Retry-After until it refills. Agents' tokens are exempt. 0: no limit.",
  ssoAllowLoopbackHttp:
    'Accept plain-http OpenID Connect issuers on 127.0.0.1 and localhost (a provider on this machine, for development and tests). Off by default, since it lets an organization admin make the server call local services.',
  outputRetention: 'Stored output of tasks that finished longer ago than this is removed (the task stays). A duration such as `30d`; 0 keeps it.',
  orgOutputQuota: 'Task output one organization may store; then new tasks are refused. A size such as `50GiB`; 0: no quota.',
  webhookCa: 'File of PEM CA certificates webhook receivers’ certificates may chain to, besides the system’s.',
  webhookRetryBase:
    'Wait before a failed webhook delivery’s first retry; each later one waits twice as long (at most 1h), with jitter. A duration such as `10s`.',
  webhookMaxAttempts: 'Attempts per webhook delivery before it is given up (12 with a 10s base: about 3.5 hours); every attempt is logged.',
  runbookSyncInterval: 'How often every runbook source is synced from Git (a duration such as `5m`); 0: only on demand.',
  logLevel: 'How much to log; `debug` adds a line per request.',
  logFormat: 'Log lines as `json` (for collectors) or `pretty` (for a person). Default: pretty when stderr is a terminal.',
  metricsToken:
    'Bearer token that `GET /metrics` wants. Unset: made in `<data dir>/metrics-token` on first start. Set the same one on every replica. Not a flag: a command line is visible to other users.',
};

const AGENT_NOTES: Notes<AgentConfig> = {
  dataDir: 'Where the agent keeps its credential (0600), target keys and output spool.',
  joinToken: 'One-time join token, needed only until the agent has registered.',
  server:
    "Server URL(s) to use instead of the join token's (and the stored credential's): several replicas comma-separated; the agent fails over between them and stays with the one that answers.",
  name: 'Agent name shown in `ferry agent list`. Default: the host name.',
  concurrency: 'Tasks to run at once.',
  executor: '`sandbox` (bubblewrap; fails if it cannot sandbox), `process` (weak isolation, with a warning) or `auto` (sandbox where it works).',
  graceSeconds: 'Time between SIGTERM and SIGKILL when a task is cancelled or times out.',
  pollWaitSeconds: 'How long one long poll waits for work.',
  logLevel: 'How much to log; `silent` logs nothing.',
  logFormat: 'Log lines as `json` (for collectors) or `pretty` (for a person). Default: pretty when stderr is a terminal.',
  taskUids: 'Host uids (and gids) for sandboxed tasks, one per running task: `FIRST-LAST`. Default 1879048192-1879113727.',
  publicDns: 'Resolvers (public IP addresses, comma-separated) in the /etc/resolv.conf of `--network public` tasks.',
  sandboxPool:
    'Most sandboxes the agent starts ahead of their tasks, so a claimed task only hands over its script and environment. Sized by recent demand up to this (none within a minute without tasks); each waits at most 30 s. Default: `concurrency`. 0 turns the pool off.',
};

/** Settings read from the environment outside the two schemas. */
const OTHER_VARIABLES: readonly (readonly [string, string])[] = [
  ['FERRY_SERVER_CONFIG', '`ferry server`: the JSON config file (as `--config`). A file named here must exist.'],
  ['FERRY_AGENT_CONFIG', '`ferry agent start`: the JSON config file (as `--config`). A file named here must exist.'],
  ['FERRY_CONFIG', 'The CLI’s login file. Default `~/.config/ferry/config.json` (mode 0600).'],
  ['FERRY_SERVER', 'The CLI: server URL(s), comma-separated, over the stored login.'],
  ['FERRY_TOKEN', 'The CLI: API token, over the stored login.'],
  ['FERRY_CA_FINGERPRINT', 'The CLI: the server CA’s SHA-256 fingerprint, over the stored login.'],
  ['FERRY_CLI_HINT', '`ferry server`: how its login line spells the command (default `ferry`).'],
];

/** Byte settings are shown with their unit too; durations likewise. */
const SIZE_KEYS = new Set(['defaultMaxOutputBytes', 'maxOutputBytes', 'defaultMemoryBytes', 'maxMemoryBytes', 'orgOutputQuota']);
const DURATION_KEYS = new Set(['outputRetention', 'webhookRetryBase', 'runbookSyncInterval']);

interface Row {
  key: string;
  flag: string;
  env: string;
  def: string;
  limits: string;
  note: string;
}

type JsonField = { type?: string; enum?: string[]; minimum?: number; maximum?: number; minLength?: number; pattern?: string; format?: string };

function limitsOf(field: JsonField | undefined): string {
  if (!field) return '';
  const parts: string[] = [];
  if (field.enum) parts.push(field.enum.map((e) => `\`${e}\``).join(', '));
  if (field.type === 'integer') parts.push('integer');
  if (field.minimum !== undefined) parts.push(`≥ ${field.minimum}`);
  if (field.maximum !== undefined && field.maximum < Number.MAX_SAFE_INTEGER) parts.push(`≤ ${field.maximum}`);
  if (field.minLength !== undefined) parts.push(`at least ${field.minLength} characters`);
  if (field.format === 'uri') parts.push('a URL');
  if (field.pattern) parts.push(`matches \`${field.pattern}\``);
  return parts.join('; ');
}

function defaultOf(key: string, value: unknown): string {
  if (value === undefined) return '(none)';
  if (typeof value === 'number' && SIZE_KEYS.has(key)) return value === 0 ? '`0` (none)' : `\`${value}\` (${formatSize(value)})`;
  if (typeof value === 'number' && DURATION_KEYS.has(key)) return value === 0 ? '`0` (none)' : `\`${value}\` s (${formatDuration(value)})`;
  return `\`${JSON.stringify(value)}\``;
}

function rows(schema: z.ZodObject, notes: Readonly<Record<string, string>>, flags: ReadonlyMap<string, string>): Row[] {
  const defaults = schema.parse({});
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { properties: Record<string, JsonField> };
  return Object.keys(schema.shape).map((key) => ({
    key,
    flag: flags.get(key) ?? '',
    env: envName(key),
    def: defaultOf(key, defaults[key]),
    limits: limitsOf(json.properties[key]),
    note: notes[key] ?? '',
  }));
}

/** The `ferry server` flags by config key: commander's attribute name is the key (`--no-embedded-agent` → embeddedAgent). */
function serverFlags(): Map<string, string> {
  const program = new Command();
  registerServerCommand(program);
  const server = program.commands.find((c) => c.name() === 'server');
  return new Map((server?.options ?? []).map((o) => [o.attributeName(), o.long ?? '']));
}

function agentFlags(): Map<string, string> {
  return new Map(AGENT_START_FLAGS.map((f) => [f.key, `--${f.flag}`]));
}

const cell = (s: string): string => (s === '' ? '' : s).replace(/\|/g, '\\|');
const code = (s: string): string => (s === '' ? '' : `\`${s}\``);

function table(list: readonly Row[]): string {
  const head = '| setting (config-file key) | flag | environment | default | limits | what it does |\n|---|---|---|---|---|---|';
  const body = list.map((r) => `| ${code(r.key)} | ${code(r.flag)} | ${code(r.env)} | ${cell(r.def)} | ${cell(r.limits)} | ${cell(r.note)} |`);
  return [head, ...body].join('\n');
}

export function configReference(): string {
  return `<!-- Generated by scripts/generate-config-reference.mjs from the config schemas; do not edit by hand. -->
# Configuration reference

Every setting comes from, in this order: a flag, a \`FERRY_*\` environment variable, a JSON
config file (\`--config FILE\`, or \`FERRY_SERVER_CONFIG\` / \`FERRY_AGENT_CONFIG\`), then the
default. The config file is one JSON object keyed by the names in the first column; unknown
keys are errors, and so is a value outside its limits, whatever its source. Durations are
seconds or units added together (\`90\`, \`5m\`, \`1h30m\`, \`1d\`); sizes are bytes or a number with
a unit (\`KB\`/\`MB\`/\`GB\` decimal, \`K\`/\`Ki\`/\`KiB\`… binary). Settings without a flag are set
through the environment or the file.

## \`ferry server\`

${table(rows(ServerConfigSchema, SERVER_NOTES, serverFlags()))}

## \`ferry agent start\` (and \`ferry-agent start\`)

${table(rows(AgentConfigSchema, AGENT_NOTES, agentFlags()))}

## Other environment variables

| variable | what it does |
|---|---|
${OTHER_VARIABLES.map(([name, note]) => `| ${code(name)} | ${cell(note)} |`).join('\n')}
`;
}
