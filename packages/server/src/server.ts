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
import { type ServerConfig, parseListen } from './config.js';
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

function openStore(config: ServerConfig, dataDir: string): Store {
  const url = config.database;
  if (!url || url.startsWith('sqlite:')) {
    const file = url ? url.replace(/^sqlite:(\/\/)?/, '') : join(dataDir, 'ferry.db');
    return new SqliteStore(resolve(file));
  }
  throw new FerryError(
    'FERRY_E_BAD_REQUEST',
    `Unsupported database URL "${url.split(':')[0]}:…": this version supports SQLite (sqlite:PATH); PostgreSQL support is not built yet.`,
  );
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
  if (config.publicUrl) return config.publicUrl.replace(/\/+$/, '');
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
  if (config.publicUrl) extraNames.push(new URL(config.publicUrl).hostname.replace(/^\[|\]$/g, ''));
  return ensureTlsMaterial(dataDir, defaultCertNames(host, extraNames));
}

/** The database, its default organization and admin token, and the leases of tasks that were running. */
async function prepareStore(
  config: ServerConfig,
  dataDir: string,
  log: Logger,
): Promise<{ store: Store; orgId: string; adminTokenFile: string; adminTokenCreated: boolean }> {
  const store = openStore(config, dataDir);
  const org = await store.ensureOrg('default', Date.now());
  const adminTokenFile = join(dataDir, 'admin-token');
  const adminTokenCreated = await ensureAdminToken(store, org.id, adminTokenFile);
  // After a restart, running tasks' agents get one lease period to reconnect.
  const resumed = await store.extendRunningLeases(Date.now() + config.leaseSeconds * 1000);
  if (resumed > 0) log.info({ tasks: resumed }, 'resuming leases of running tasks');
  return { store, orgId: org.id, adminTokenFile, adminTokenCreated };
}

function buildContext(config: ServerConfig, store: Store, tls: TlsMaterial, log: Logger, metrics: ServerMetrics, dataDir: string): ServerContext {
  const hub = new DispatchHub();
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
  const lock = lockDataFolder(dataDir);
  try {
    return await serve(opts, log, dataDir, () => lock.release());
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function serve(opts: StartServerOptions, log: Logger, dataDir: string, releaseLock: () => void): Promise<RunningServer> {
  const { config } = opts;
  const { host, port } = parseListen(config.listen);
  const tls = loadTls(config, dataDir, host);
  const { store, orgId, adminTokenFile, adminTokenCreated } = await prepareStore(config, dataDir, log);
  const metrics = new ServerMetrics();
  const ctx = buildContext(config, store, tls, log, metrics, dataDir);
  const app = buildApp({ keyPem: tls.keyPem, certPem: tls.certPem, log, bounds: config });
  registerOpsRoutes(app, ctx, { metrics, metricsToken: metricsTokenFor(config.metricsToken, dataDir).token });
  registerRoutes(app, ctx);
  registerWebUi(app);
  app.addHook('preClose', (done) => {
    ctx.hub.close();
    done();
  });

  await app.listen({ host, port }).catch(async (err: unknown) => {
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
