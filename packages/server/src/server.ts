/**
 * `ferry server`: prepares the data folder (TLS material, database, default organization,
 * admin token), serves the API over HTTPS, sweeps lapsed leases, and supervises the embedded
 * hosted agent. Shutdown order on SIGTERM: release long polls (they answer at once, empty, and
 * no new work is handed out), stop the embedded agent, stop taking requests (connections still
 * open a moment later are cut), close the store, release the data folder's lock.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import type { Logger } from 'pino';
import { FerryError } from '@ferry/protocol';
import { buildApp, type FerryApp } from './app.js';
import { type ServerConfig, parseListen, publicUrls } from './config.js';
import type { ServerContext } from './context.js';
import { lockDataFolder } from './data-lock.js';
import { DispatchHub } from './dispatch.js';
import { EmbeddedAgent } from './embedded-agent.js';
import { ServerMetrics } from './http/metrics.js';
import { RateLimiter } from './http/rate-limit.js';
import { USER_TOKEN_PREFIX } from './auth.js';
import { hashSecret, newId, newSecret } from './ids.js';
import { createJoinToken } from './routes/agents.js';
import { registerRoutes } from './routes/index.js';
import { createSignInLink } from './web/sign-in-link.js';
import { registerWebUi } from './web/static.js';
import { metricsTokenFor, registerOpsRoutes } from './routes/ops.js';
import { createLogger, resolveLogFormat } from './logger.js';
import { SqliteStore } from './store/sqlite/index.js';
import { PostgresStore } from './store/postgres/index.js';
import { PgHubRelay } from './store/postgres/notify.js';
import type { AuditInput, Store } from './store/types.js';
import { OpenPolls } from './tasks/open-polls.js';
import { OutputRetention } from './tasks/output-retention.js';
import { TaskService } from './tasks/task-service.js';
import { defaultCertNames, ensureTlsMaterial, loadProvidedTls, type TlsMaterial } from './tls.js';
import { Webhooks } from './webhooks/service.js';
import { Runbooks } from './runbooks/service.js';

export interface StartServerOptions {
  config: ServerConfig;
  /** argv that starts a hosted agent (the CLI passes `node <cli> agent start`). */
  embeddedAgentCommand?: readonly string[];
  logger?: Logger;
}

export interface RunningServer {
  url: string;
  caFingerprint: string;
  dataDir: string;
  adminTokenFile: string;
  adminTokenCreated: boolean;
  /** The web UI's address. */
  webUrl: string;
  /** A one-time link that signs the browser in as the `admin` service account (an hour; each start makes a new one). */
  signInLink: string | undefined;
  /** Stops in order (see above); at most a few seconds with idle agents connected. */
  close(): Promise<void>;
  /** For a second stop signal: kills the embedded agent now, so exiting at once leaves nothing behind. */
  kill(): void;
}

/** How long open connections get to end on their own at shutdown before they are cut. */
const CLOSE_GRACE_MS = 1000;
/** Failed sign-ins allowed per account (e-mail) per minute, from all addresses together. */
const ACCOUNT_SIGN_INS_PER_MINUTE = 5;

/** Closes the HTTP side: connections that have not ended within CLOSE_GRACE_MS are cut. */
async function closeApp(app: FerryApp): Promise<void> {
  const cut = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
  try {
    await app.close();
  } finally {
    clearTimeout(cut);
  }
}

/** The PostgreSQL URL the server is configured with, if any (replicas share it). */
function postgresUrl(config: ServerConfig): string | undefined {
  const url = config.database;
  return url !== undefined && /^postgres(ql)?:\/\//.test(url) ? url : undefined;
}

async function openStore(config: ServerConfig, dataDir: string): Promise<Store> {
  const url = config.database;
  if (!url || url.startsWith('sqlite:')) {
    const file = url ? url.replace(/^sqlite:(\/\/)?/, '') : join(dataDir, 'ferry.db');
    return new SqliteStore(resolve(file));
  }
  const pgUrl = postgresUrl(config);
  if (pgUrl) return PostgresStore.open({ url: pgUrl, poolSize: config.databasePoolSize });
  throw new FerryError(
    'FERRY_E_BAD_REQUEST',
    `Unsupported database URL "${url.split(':')[0]}:…": use sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE (sslmode=verify-full&sslrootcert=FILE for TLS).`,
  );
}

/** First-start set-up (TLS material, tokens) one replica at a time on PostgreSQL; SQLite's folder lock already makes it one server. */
function exclusively<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  return store instanceof PostgresStore ? store.exclusively(fn) : fn();
}

/**
 * The first start's admin: a service account of the default organization that is also the
 * instance administrator. Without its token file (first start, or the file was removed to get a
 * new token) it gets a new token; the service account is made once.
 */
async function ensureAdminToken(store: Store, orgId: string, file: string): Promise<boolean> {
  if (existsSync(file)) return false;
  const now = Date.now();
  let admin = await store.teams.findPrincipal(orgId, 'admin');
  if (!admin) {
    admin = { id: newId('p'), orgId, kind: 'service', name: 'admin', role: 'admin', instanceAdmin: true, createdBy: null, createdAt: now };
    await store.teams.createPrincipal(admin);
  }
  const secret = newSecret(USER_TOKEN_PREFIX);
  for (let n = 0; ; n++) {
    // A token name is unique among the organization's live tokens: a second admin token is admin-2.
    const name = n === 0 ? 'admin' : `admin-${n + 1}`;
    const token = { id: newId('k'), orgId, principalId: admin.id, name, createdAt: now, expiresAt: null, lastUsedAt: null, revokedAt: null };
    if ((await store.teams.createToken(token, hashSecret(secret))) === 'ok') break;
  }
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return true;
}

function publicUrlFor(config: ServerConfig, port: number): string {
  const [own] = publicUrls(config);
  if (own) return own;
  const { host } = parseListen(config.listen);
  const h = host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host;
  return `https://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/**
 * Lapsed leases are found within a quarter of the lease period (see TaskService.sweepLeases);
 * expired reviews on the same beat (TaskService.sweepReviews), so within a second.
 */
function startLeaseSweeper(ctx: ServerContext): NodeJS.Timeout {
  const everyMs = Math.max(200, Math.min(1000, (ctx.config.leaseSeconds * 1000) / 4));
  return setInterval(() => {
    ctx.tasks.sweepLeases().catch((err: unknown) => ctx.log.error({ err }, 'lease sweep failed'));
    ctx.tasks.sweepReviews().catch((err: unknown) => ctx.log.error({ err }, 'review expiry sweep failed'));
  }, everyMs);
}

function loadTls(config: ServerConfig, dataDir: string, host: string): TlsMaterial {
  if (config.tlsCert && config.tlsKey && config.tlsCa) return loadProvidedTls(config.tlsCert, config.tlsKey, config.tlsCa);
  const extraNames = config.tlsSans
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // Replicas share the data folder and so this certificate: it names every one of them.
  for (const url of publicUrls(config)) extraNames.push(new URL(url).hostname.replace(/^\[|\]$/g, ''));
  return ensureTlsMaterial(dataDir, defaultCertNames(host, extraNames));
}

interface Prepared {
  store: Store;
  tls: TlsMaterial;
  orgId: string;
  adminTokenFile: string;
  adminTokenCreated: boolean;
  metricsToken: string;
}

/**
 * The database, the TLS material, its default organization, the admin and metrics tokens, and
 * the leases of tasks that were running. Replicas sharing a data folder do the part that makes
 * files one at a time (`exclusively`), so two starting together make one CA and one admin token.
 */
async function prepareStore(config: ServerConfig, dataDir: string, host: string, log: Logger): Promise<Prepared> {
  const store = await openStore(config, dataDir);
  try {
    const made = await exclusively(store, async () => {
      const tls = loadTls(config, dataDir, host);
      const org = await store.ensureOrg('default', Date.now());
      const adminTokenFile = join(dataDir, 'admin-token');
      const adminTokenCreated = await ensureAdminToken(store, org.id, adminTokenFile);
      const metricsToken = metricsTokenFor(config.metricsToken, dataDir).token;
      return { tls, orgId: org.id, adminTokenFile, adminTokenCreated, metricsToken };
    });
    // After a restart, running tasks' agents get one lease period to reconnect.
    const resumed = await store.extendRunningLeases(Date.now() + config.leaseSeconds * 1000);
    if (resumed > 0) log.info({ tasks: resumed }, 'resuming leases of running tasks');
    return { store, ...made };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** How often a waiting poll or output read looks again on its own with replicas (a lost notification costs at most this). */
const REPLICA_RECHECK_MS = 1000;

/** The dispatch hub; with PostgreSQL, its wake-ups also go to and come from the other replicas. */
async function buildHub(config: ServerConfig, store: Store, log: Logger): Promise<{ hub: DispatchHub; relay?: PgHubRelay }> {
  const url = postgresUrl(config);
  if (!url || !(store instanceof PostgresStore)) return { hub: new DispatchHub() };
  const holder: { hub?: DispatchHub } = {};
  const relay = new PgHubRelay({
    db: store.db,
    url,
    deliver: (signal) => holder.hub?.receive(signal),
    resync: () => holder.hub?.wakeEveryone(),
    onError: (err, what) => log.warn({ err }, `${what} failed`),
  });
  const hub = new DispatchHub({ relay, recheckMs: REPLICA_RECHECK_MS });
  holder.hub = hub;
  await relay.start();
  return { hub, relay };
}

function buildContext(
  config: ServerConfig,
  store: Store,
  hub: DispatchHub,
  tls: TlsMaterial,
  log: Logger,
  metrics: ServerMetrics,
  dataDir: string,
): ServerContext {
  const audit = async (entry: Omit<AuditInput, 'at'>): Promise<void> => {
    await store.appendAudit({ ...entry, at: Date.now() });
  };
  const context = { publicUrl: '' };
  const webhooks = new Webhooks({ store, config, log, publicUrl: () => context.publicUrl });
  const tasks = new TaskService({ store, hub, config, log, audit, events: metrics, notify: (event, task) => webhooks.taskEvent(event, task) });
  const runbooks = new Runbooks({ store, config, log: log.child({ part: 'runbooks' }), tasks, dataDir, audit });
  const rateLimits = {
    authFailures: new RateLimiter(config.authFailuresPerMinute, 'failed authentications'),
    registrations: new RateLimiter(config.failedRegistrationsPerMinute, 'failed agent registrations'),
    signIns: new RateLimiter(config.failedSignInsPerMinute, 'failed sign-ins or invitation attempts'),
    // Per account: a guesser spreading over many addresses still gets this many a minute in all.
    accountSignIns: new RateLimiter(Math.min(config.failedSignInsPerMinute, ACCOUNT_SIGN_INS_PER_MINUTE), 'failed sign-ins for this account'),
    userTokens: new RateLimiter(config.requestsPerTokenPerMinute, 'requests', Date.now, undefined, 'with this token'),
  };
  // The public URL is known once the server listens: webhooks read it from the context then.
  return Object.assign(context, {
    store,
    hub,
    config,
    log,
    caPem: tls.caPem,
    caFingerprint: tls.caFingerprint,
    tasks,
    webhooks,
    runbooks,
    audit,
    polls: new OpenPolls(),
    rateLimits,
  });
}

async function startEmbeddedAgent(opts: StartServerOptions, ctx: ServerContext, dataDir: string): Promise<EmbeddedAgent | undefined> {
  if (!opts.config.embeddedAgent || !opts.embeddedAgentCommand) return undefined;
  const embedded = new EmbeddedAgent({
    command: [...opts.embeddedAgentCommand, '--executor', opts.config.embeddedAgentExecutor, '--log-format', resolveLogFormat(opts.config.logFormat)],
    dataDir: join(dataDir, 'hosted-agent'),
    log: ctx.log.child({ part: 'embedded-agent' }),
    makeJoinToken: async () => (await createJoinToken(ctx, { orgId: null, hosted: true, targetIds: [], createdBy: 'server', ttlSeconds: 600 })).token,
  });
  await embedded.start();
  return embedded;
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const { config } = opts;
  const log = opts.logger ?? createLogger(config.logLevel, resolveLogFormat(config.logFormat), 'server');
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // SQLite: one server per folder. PostgreSQL: replicas share the folder (CA, keys, admin token).
  const lock = postgresUrl(config) ? undefined : lockDataFolder(dataDir);
  try {
    return await serve(opts, log, dataDir, () => lock?.release());
  } catch (err) {
    lock?.release();
    throw err;
  }
}

async function serve(opts: StartServerOptions, log: Logger, dataDir: string, releaseLock: () => void): Promise<RunningServer> {
  const { config } = opts;
  const { host, port } = parseListen(config.listen);
  const { store, tls, orgId, adminTokenFile, adminTokenCreated, metricsToken } = await prepareStore(config, dataDir, host, log);
  const { hub, relay } = await buildHub(config, store, log).catch(async (err: unknown) => {
    await store.close();
    throw err;
  });
  const metrics = new ServerMetrics();
  const ctx = buildContext(config, store, hub, tls, log, metrics, dataDir);
  const app = buildApp({ keyPem: tls.keyPem, certPem: tls.certPem, log, bounds: config });
  registerOpsRoutes(app, ctx, { metrics, metricsToken });
  registerRoutes(app, ctx);
  registerWebUi(app);
  app.addHook('preClose', (done) => {
    ctx.hub.close();
    done();
  });

  await app.listen({ host, port }).catch(async (err: unknown) => {
    await relay?.close();
    await store.close();
    throw err;
  });
  const address = app.server.address();
  ctx.publicUrl = publicUrlFor(config, typeof address === 'object' && address ? address.port : port);
  if (adminTokenCreated) await ctx.audit({ orgId, actor: 'server', action: 'token.create', subject: 'admin', details: { file: adminTokenFile } });
  const signInLink = await createSignInLink(ctx, orgId);
  const sweeper = startLeaseSweeper(ctx);
  ctx.webhooks.start();
  ctx.runbooks.start();
  const retention = new OutputRetention({ store, retentionSeconds: config.outputRetention, log: ctx.log, audit: (entry) => ctx.audit(entry) });
  retention.start();
  const embedded = await startEmbeddedAgent(opts, ctx, dataDir);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      // Agents' long polls answer now and no new work goes out; the API still answers, so the
      // embedded agent (and any other) drains what it runs normally.
      ctx.hub.releaseAgents();
      await embedded?.stop(15_000);
      clearInterval(sweeper);
      await ctx.webhooks.stop();
      ctx.runbooks.stop();
      await retention.stop();
      ctx.hub.close();
      await closeApp(app);
      await relay?.close();
      await store.close();
      releaseLock();
    })();
    return closing;
  };
  const kill = (): void => embedded?.kill();
  return {
    url: ctx.publicUrl,
    caFingerprint: tls.caFingerprint,
    dataDir,
    adminTokenFile,
    adminTokenCreated,
    webUrl: `${ctx.publicUrl}/`,
    signInLink,
    close,
    kill,
  };
}
