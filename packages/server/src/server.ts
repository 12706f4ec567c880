/**
 * `ferry server`: prepares the data folder (TLS material, database, default organization,
 * admin token), serves the API over HTTPS, sweeps lapsed leases, and supervises the embedded
 * hosted agent. Shutdown order on SIGTERM: stop taking requests and release long polls, stop
 * the embedded agent, then close the store.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import pino, { type Logger } from 'pino';
import { FerryError } from '@ferry/protocol';
import { buildApp } from './app.js';
import { type ServerConfig, parseListen } from './config.js';
import type { ServerContext } from './context.js';
import { DispatchHub } from './dispatch.js';
import { EmbeddedAgent } from './embedded-agent.js';
import { hashSecret, newId, newSecret } from './ids.js';
import { registerAgentApiRoutes } from './routes/agent-api.js';
import { createJoinToken, registerAgentRoutes } from './routes/agents.js';
import { registerAuditRoutes } from './routes/audit.js';
import { registerPublicRoutes } from './routes/public.js';
import { registerTargetRoutes } from './routes/targets.js';
import { registerTaskRoutes } from './routes/tasks.js';
import { registerSecretRoutes } from './routes/secrets.js';
import { RawOutputDigests, redactingFlush } from './output-pipeline.js';
import { SqliteStore } from './store/sqlite/index.js';
import type { Store } from './store/types.js';
import { defaultCertNames, ensureTlsMaterial, loadProvidedTls } from './tls.js';

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
  throw new FerryError('FERRY_E_BAD_REQUEST', `Unsupported database URL "${url.split(':')[0]}:…": this version supports SQLite (sqlite:PATH); PostgreSQL support is not built yet.`);
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

function startLeaseSweeper(ctx: ServerContext): NodeJS.Timeout {
  const everyMs = Math.max(200, Math.min(1000, (ctx.config.leaseSeconds * 1000) / 4));
  return setInterval(() => {
    ctx.store.expireLeases(Date.now()).then(async (sweep) => {
      for (const t of sweep.requeued) {
        ctx.log.warn({ taskId: t.id }, 'lease lapsed before the task started; queued again');
        const target = await ctx.store.getTargetByName(t.orgId, t.targetName);
        if (target) ctx.hub.notifyTaskAll(target);
      }
      for (const t of sweep.lost) {
        ctx.log.warn({ taskId: t.id }, 'lease lapsed while the task ran; marked lost');
        // What the redactor still held back is stored (redacted), never left raw in the row.
        await ctx.store.flushOutput(t.id, null, redactingFlush(t.targetRedact));
        ctx.digests.forget(t.id);
        ctx.hub.notifyOutput(t.id);
        await ctx.audit({ orgId: t.orgId, actor: 'server', action: 'task.lost', subject: t.id, details: { reason: t.reason } });
      }
    }).catch((err: unknown) => ctx.log.error({ err }, 'lease sweep failed'));
  }, everyMs);
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const { config } = opts;
  const log = opts.logger ?? pino({ level: config.logLevel, base: { component: 'server' } }, pino.destination(2));
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { host, port } = parseListen(config.listen);
  const extraNames = config.tlsSans.split(',').map((s) => s.trim()).filter(Boolean);
  if (config.publicUrl) extraNames.push(new URL(config.publicUrl).hostname.replace(/^\[|\]$/g, ''));
  const tls = config.tlsCert && config.tlsKey && config.tlsCa
    ? loadProvidedTls(config.tlsCert, config.tlsKey, config.tlsCa)
    : ensureTlsMaterial(dataDir, defaultCertNames(host, extraNames));

  const store = openStore(config, dataDir);
  const org = await store.ensureOrg('default', Date.now());
  const adminTokenFile = join(dataDir, 'admin-token');
  const adminTokenCreated = await ensureAdminToken(store, org.id, adminTokenFile);
  // After a restart, running tasks' agents get one lease period to reconnect.
  const resumed = await store.extendRunningLeases(Date.now() + config.leaseSeconds * 1000);
  if (resumed > 0) log.info({ tasks: resumed }, 'resuming leases of running tasks');

  const hub = new DispatchHub();
  const app = buildApp({ keyPem: tls.keyPem, certPem: tls.certPem, log });
  const ctx: ServerContext = {
    store, hub, config, log, caPem: tls.caPem, caFingerprint: tls.caFingerprint, publicUrl: '', digests: new RawOutputDigests(),
    audit: async (entry) => {
      await store.appendAudit({ ...entry, at: Date.now() });
    },
  };
  registerPublicRoutes(app, ctx);
  registerTargetRoutes(app, ctx);
  registerTaskRoutes(app, ctx);
  registerAgentRoutes(app, ctx);
  registerAgentApiRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerSecretRoutes(app, ctx);
  app.addHook('preClose', (done) => {
    hub.close();
    done();
  });

  await app.listen({ host, port });
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  ctx.publicUrl = publicUrlFor(config, boundPort);
  if (adminTokenCreated) await ctx.audit({ orgId: org.id, actor: 'server', action: 'token.create', subject: 'admin', details: { file: adminTokenFile } });
  const sweeper = startLeaseSweeper(ctx);

  let embedded: EmbeddedAgent | undefined;
  if (config.embeddedAgent && opts.embeddedAgentCommand) {
    embedded = new EmbeddedAgent({
      command: [...opts.embeddedAgentCommand, '--executor', config.embeddedAgentExecutor],
      dataDir: join(dataDir, 'hosted-agent'),
      log: log.child({ part: 'embedded-agent' }),
      makeJoinToken: async () => (await createJoinToken(ctx, { orgId: null, hosted: true, targetIds: [], createdBy: 'server', ttlSeconds: 600 })).token,
    });
    await embedded.start();
  }

  let closing: Promise<void> | undefined;
  return {
    url: ctx.publicUrl,
    caFingerprint: tls.caFingerprint,
    dataDir,
    adminTokenFile,
    adminTokenCreated,
    close: () => {
      closing ??= (async () => {
        // The embedded agent first, while the API still answers, so it drains normally.
        await embedded?.stop(15_000);
        clearInterval(sweeper);
        hub.close();
        await app.close();
        await store.close();
      })();
      return closing;
    },
  };
}
