import { z } from 'zod';
import { readFileSync } from 'node:fs';
import { configFile, loadConfig, parseDurationSeconds, parseSizeBytes } from '@ferry/protocol';

/** A duration (`90d`, `12h`, seconds as a number); `0`, `off` or `forever` mean none. */
const durationOrOff = z.preprocess(
  (v) => (typeof v === 'string' ? (/^(off|forever|none)$/i.test(v.trim()) ? 0 : (parseDurationSeconds(v) ?? v)) : v),
  z.number({ error: 'write a duration such as 90d, 12h or 30m, or 0 for none' }).min(0),
);
/** A size (`10GiB`, `500MB`, bytes as a number); `0`, `off` or `none` mean no limit. */
const sizeOrOff = z.preprocess(
  (v) => (typeof v === 'string' ? (/^(off|none|unlimited)$/i.test(v.trim()) ? 0 : (parseSizeBytes(v) ?? v)) : v),
  z.number({ error: 'write a size such as 10GiB or 500MB, or 0 for no limit' }).int().min(0),
);

const bool = z.preprocess((v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean());

export const ServerConfigSchema = z.object({
  dataDir: z.string().default('./ferry-data'),
  listen: z
    .string()
    .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'use HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:8443')
    .default('127.0.0.1:8443'),
  /**
   * Where agents and clients reach this server; defaults to https://<listen>. Goes into join
   * tokens. With replicas: this server's URL first, then the others', comma-separated (join
   * tokens carry them all).
   */
  publicUrl: z
    .string()
    .refine((text) => text.split(',').every((u) => URL.canParse(u.trim())), 'use one URL, or several comma-separated')
    .optional(),
  /** `sqlite:PATH` (default: SQLite in the data folder) or `postgres://…` (replicas share it). */
  database: z.string().optional(),
  /** Connections each server keeps to PostgreSQL at most (one more listens for wake-ups). */
  databasePoolSize: z.coerce.number().int().min(1).max(1000).default(10),
  embeddedAgent: bool.default(true),
  /**
   * The embedded hosted agent's executor. `sandbox` (the default) refuses to run tasks without
   * bubblewrap: with `process`, a task could read this server's data folder, its admin token and
   * the hosted pool's keys. Choose `process` only on a machine where you accept that.
   */
  embeddedAgentExecutor: z.enum(['sandbox', 'process']).default('sandbox'),
  /**
   * Whether hosted-pool targets may use `--network host` (the agent host's network, loopback
   * included). Off by default: hosted tasks reach public endpoints only (`--network public`).
   * Turn on only where every organization on this server may reach what the agent host reaches.
   */
  allowHostNetwork: bool.default(false),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  tlsCa: z.string().optional(),
  /** Extra names (DNS or IP) for the generated server certificate, comma-separated. */
  tlsSans: z.string().default(''),
  leaseSeconds: z.coerce.number().min(2).max(3600).default(15),
  heartbeatSeconds: z.coerce.number().min(0.2).max(600).default(3),
  /** An agent unheard of for this long shows as offline. */
  agentOfflineSeconds: z.coerce.number().min(1).max(3600).default(45),
  // Limits: each has a default (for targets that set none) and a server-wide maximum.
  defaultTimeoutSeconds: z.coerce
    .number()
    .min(1)
    .max(7 * 24 * 3600)
    .default(3600),
  maxTimeoutSeconds: z.coerce
    .number()
    .min(1)
    .max(7 * 24 * 3600)
    .default(24 * 3600),
  defaultMaxOutputBytes: z.coerce
    .number()
    .int()
    .min(1024)
    .default(256 * 1024 * 1024),
  maxOutputBytes: z.coerce
    .number()
    .int()
    .min(1024)
    .default(1024 * 1024 * 1024),
  defaultMaxProcesses: z.coerce.number().int().min(8).default(512),
  maxProcesses: z.coerce.number().int().min(8).default(8192),
  defaultMemoryBytes: z.coerce
    .number()
    .int()
    .min(16 * 1024 * 1024)
    .default(2 * 1024 * 1024 * 1024),
  maxMemoryBytes: z.coerce
    .number()
    .int()
    .min(16 * 1024 * 1024)
    .default(16 * 1024 * 1024 * 1024),
  /**
   * A request whose headers and body have not all arrived this long after it began is cut
   * (408, connection closed): a client trickling a body cannot hold a connection. Waiting for
   * an answer does not count, so long polls (up to 30 s) are unaffected.
   */
  requestTimeoutSeconds: z.coerce.number().min(1).max(600).default(30),
  /** The headers alone must arrive within this (at most requestTimeoutSeconds). */
  headersTimeoutSeconds: z.coerce.number().min(1).max(600).default(10),
  /**
   * An idle kept-alive connection is closed after this (answers say so in their Keep-Alive
   * header, which Node's clients honour). Behind a load balancer, make it longer than the
   * balancer's idle timeout.
   */
  keepAliveTimeoutSeconds: z.coerce.number().min(1).max(600).default(10),
  /** Connections open at once; more are refused until some close. Each agent holds one or two. */
  maxConnections: z.coerce.number().int().min(1).max(1_000_000).default(1024),
  /**
   * Failed authentications allowed per client address (IPv6: per /64) per minute, in a burst
   * of the same size; past it, requests that need a token get 429 until the allowance
   * refills. 0 turns the limit off.
   */
  authFailuresPerMinute: z.coerce.number().int().min(0).max(100_000).default(30),
  /** Agent registrations that do not succeed, per client address per minute (as above). 0: no limit. */
  failedRegistrationsPerMinute: z.coerce.number().int().min(0).max(100_000).default(30),
  /** Failed sign-ins and invitation attempts per client address per minute (per account: at most 5). */
  failedSignInsPerMinute: z.coerce.number().int().min(0).max(100_000).default(10),
  /**
   * Requests per user token (a person's or a service account's) per minute, in a burst of the
   * same size; past it that token gets 429 with Retry-After until the allowance refills. Agents'
   * tokens are exempt (polls and uploads are their normal traffic). 0 turns the limit off.
   * 2000 as GitLab's default for authenticated API calls: a script running tasks in a loop
   * stays well under it, a runaway one does not.
   */
  requestsPerTokenPerMinute: z.coerce.number().int().min(0).max(1_000_000).default(2000),
  /**
   * Accept plain-http OpenID issuers on 127.0.0.1 and localhost (a provider on this machine, for
   * development and tests). Off by default: it would let an organization admin make the server
   * call local services.
   */
  ssoAllowLoopbackHttp: bool.default(false),
  /**
   * Stored output of tasks that finished longer ago than this is removed (the task, its status
   * and its audit entries stay). 0 keeps output for good.
   */
  outputRetention: durationOrOff.default(90 * 24 * 3600),
  /**
   * Task output one organization may store. When it is reached, new tasks are refused with
   * FERRY_E_OUTPUT_QUOTA_REACHED; running tasks keep their output (up to their own cap). 0: no quota.
   */
  orgOutputQuota: sizeOrOff.default(10 * 1024 ** 3),
  /**
   * A file of PEM CA certificates that webhook receivers' certificates may chain to, besides the
   * system's (for receivers behind a private CA).
   */
  webhookCa: z.string().optional(),
  /** The wait before a failed webhook delivery's first retry; each later one waits twice as long (at most an hour), with jitter. */
  webhookRetryBase: z
    .preprocess(
      (v) => (typeof v === 'string' ? (parseDurationSeconds(v) ?? v) : v),
      z.number({ error: 'write a duration such as 10s or 1m' }).min(0.05).max(3600),
    )
    .default(10),
  /** Attempts per webhook delivery before it is given up (12 with the default base: about three and a half hours). */
  webhookMaxAttempts: z.coerce.number().int().min(1).max(50).default(12),
  /** How often every runbook source is synced; 0: only on demand (`ferry runbook source sync`). */
  runbookSyncInterval: durationOrOff.default(300),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `json` (one object a line, for collectors) or `pretty` (readable lines); default: pretty when stderr is a terminal. */
  logFormat: z.enum(['json', 'pretty']).optional(),
  /**
   * The bearer token GET /metrics wants (its labels name every organization's targets). Unset:
   * the server makes one in <data dir>/metrics-token on first start. Set it on every replica.
   */
  metricsToken: z.string().min(16, 'use at least 16 characters').optional(),
});
export type ServerConfig = Readonly<z.infer<typeof ServerConfigSchema>>;

export function loadServerConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv, file?: string): ServerConfig {
  // FERRY_DATABASE_URL, the name operators expect from other servers, is read as FERRY_DATABASE.
  const withUrl = env.FERRY_DATABASE === undefined && env.FERRY_DATABASE_URL !== undefined ? { ...env, FERRY_DATABASE: env.FERRY_DATABASE_URL } : env;
  return loadConfig(ServerConfigSchema, { flags, env: withUrl, file: configFile(file, (f) => readFileSync(f, 'utf8')) });
}

export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(listen.slice(i + 1)) };
}

/** `publicUrl` as a list: this server's URL first, then its replicas' (none when not set). */
export function publicUrls(config: Pick<ServerConfig, 'publicUrl'>): string[] {
  const urls = (config.publicUrl ?? '')
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter((u) => u.length > 0);
  return [...new Set(urls)];
}
