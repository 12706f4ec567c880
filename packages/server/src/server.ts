/**
 * `ferry server`: prepares the data folder (TLS material, database, default organization,
 * admin token), serves the API over HTTPS, sweeps lapsed leases, and supervises the embedded
 * hosted agent. Shutdown order on SIGTERM: stop taking requests and release long polls, stop
 * the embedded agent, then close the store.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import type { Logger } from 'pino';
import { FerryError } from '@ferry/protocol';
import { buildApp } from './app.js';
import { type ServerConfig, parseListen } from './config.js';
import type { ServerContext } from './context.js';
import { DispatchHub } from './dispatch.js';
import { EmbeddedAgent } from './embedded-agent.js';
import { ServerMetrics } from './http/metrics.js';
import { RateLimiter } from './http/rate-limit.js';
import { hashSecret, newId, newSecret } from './ids.js';
import { createJoinToken } from './routes/agents.js';
import { registerRoutes } from './routes/index.js';
import { metricsTokenFor, registerOpsRoutes } from './routes/ops.js';
import { createLogger, resolveLogFormat } from './logger.js';
import { SqliteStore } from './store/sqlite/index.js';
import type { AuditInput, Store } from './store/types.js';
import { OpenPolls } from './tasks/open-polls.js';
import { OutputRetention } from './tasks/output-retention.js';
import { TaskService } from './tasks/task-service.js';
import { defaultCertNames, ensureTlsMaterial, loadProvidedTls, type TlsMaterial } from './tls.js';

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
  close(): Promise<void>;
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

async function ensureAdminToken(store: Store, orgId: string, file: string): Promise<boolean> {
  if (existsSync(file)) return false;
  const token = newSecret('ferry_u');
  await store.createApiToken({ id: newId('k'), orgId, name: 'admin', role: 'admin', createdAt: Date.now(), revokedAt: null }, hashSecret(token));
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return true;
}

function publicUrlFor(config: ServerConfig, port: number): string {
  if (config.publicUrl) return config.publicUrl.replace(/\/+$/, '');
  const { host } = parseListen(config.listen);
  const h = host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host;
  return `https://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** Lapsed leases are found within a quarter of the lease period (see TaskService.sweepLeases). */
function startLeaseSweeper(ctx: ServerContext): NodeJS.Timeout {
  const everyMs = Math.max(200, Math.min(1000, (ctx.config.leaseSeconds * 1000) / 4));
  return setInterval(() => {
    ctx.tasks.sweepLeases().catch((err: unknown) => ctx.log.error({ err }, 'lease sweep failed'));
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

function buildContext(config: ServerConfig, store: Store, tls: TlsMaterial, log: Logger, metrics: ServerMetrics): ServerContext {
  const hub = new DispatchHub();
  const audit = async (entry: Omit<AuditInput, 'at'>): Promise<void> => {
    await store.appendAudit({ ...entry, at: Date.now() });
  };
  const tasks = new TaskService({ store, hub, config, log, audit, events: metrics });
  const rateLimits = {
    authFailures: new RateLimiter(config.authFailuresPerMinute, 'failed authentications'),
    registrations: new RateLimiter(config.failedRegistrationsPerMinute, 'failed agent registrations'),
  };
  return { store, hub, config, log, caPem: tls.caPem, caFingerprint: tls.caFingerprint, publicUrl: '', tasks, audit, polls: new OpenPolls(), rateLimits };
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
  const { host, port } = parseListen(config.listen);
  const tls = loadTls(config, dataDir, host);
  const { store, orgId, adminTokenFile, adminTokenCreated } = await prepareStore(config, dataDir, log);
  const metrics = new ServerMetrics();
  const ctx = buildContext(config, store, tls, log, metrics);
  const app = buildApp({ keyPem: tls.keyPem, certPem: tls.certPem, log, bounds: config });
  registerOpsRoutes(app, ctx, { metrics, metricsToken: metricsTokenFor(config.metricsToken, dataDir).token });
  registerRoutes(app, ctx);
  app.addHook('preClose', (done) => {
    ctx.hub.close();
    done();
  });

  await app.listen({ host, port });
  const address = app.server.address();
  ctx.publicUrl = publicUrlFor(config, typeof address === 'object' && address ? address.port : port);
  if (adminTokenCreated) await ctx.audit({ orgId, actor: 'server', action: 'token.create', subject: 'admin', details: { file: adminTokenFile } });
  const sweeper = startLeaseSweeper(ctx);
  const retention = new OutputRetention({ store, retentionSeconds: config.outputRetention, log: ctx.log, audit: (entry) => ctx.audit(entry) });
  retention.start();
  const embedded = await startEmbeddedAgent(opts, ctx, dataDir);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      // The embedded agent first, while the API still answers, so it drains normally.
      await embedded?.stop(15_000);
      clearInterval(sweeper);
      await retention.stop();
      ctx.hub.close();
      await app.close();
      await store.close();
    })();
    return closing;
  };
  return { url: ctx.publicUrl, caFingerprint: tls.caFingerprint, dataDir, adminTokenFile, adminTokenCreated, close };
}
