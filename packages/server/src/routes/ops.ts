/**
 * Endpoints for the people and systems that operate the server, outside the versioned API:
 * - `GET /healthz`: the process answers (liveness). No token; says nothing else.
 * - `GET /readyz`: the database answers and has every migration this build knows (readiness);
 *   503 FERRY_E_UNAVAILABLE with the details otherwise, and while shutting down. No token.
 * - `GET /metrics`: Prometheus text. It names every organization's targets (queue depth per
 *   target), so it needs the metrics token as a bearer token: FERRY_METRICS_TOKEN, or else the
 *   one the server writes to `<data dir>/metrics-token` (mode 0600) on first start. A wrong
 *   token counts against the address's failed-authentication allowance like any other.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import { FerryError } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import type { ServerMetrics } from '../http/metrics.js';
import { newSecret } from '../ids.js';
import { onlineSince } from '../presence.js';

export interface OpsOptions {
  metrics: ServerMetrics;
  /** The bearer token /metrics wants. */
  metricsToken: string;
}

/** The configured metrics token, or the one kept in the data folder (made on first start). */
export function metricsTokenFor(configured: string | undefined, dataDir: string): { token: string; file?: string } {
  if (configured) return { token: configured };
  const file = join(dataDir, 'metrics-token');
  if (!existsSync(file)) writeFileSync(file, newSecret('ferry_m') + '\n', { mode: 0o600 });
  return { token: readFileSync(file, 'utf8').trim(), file };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

function bearer(req: FastifyRequest): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
}

export function registerOpsRoutes(app: FerryApp, ctx: ServerContext, opts: OpsOptions): void {
  const { metrics } = opts;
  const expected = digest(opts.metricsToken);
  app.addHook('onResponse', async (req, reply) => metrics.observeRequest(req, reply));

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/readyz', async () => {
    let state;
    try {
      state = await ctx.store.readiness();
    } catch (err) {
      throw new FerryError('FERRY_E_UNAVAILABLE', 'Not ready: the database does not answer.', { cause: err, details: { database: 'unreachable' } });
    }
    const applied = new Set(state.appliedMigrations);
    const missing = state.knownMigrations.filter((v) => !applied.has(v));
    if (missing.length > 0) {
      throw new FerryError('FERRY_E_UNAVAILABLE', `Not ready: database migrations ${missing.join(', ')} are not applied.`, {
        details: { database: 'ok', missingMigrations: missing },
      });
    }
    return { ready: true, database: 'ok', migrations: state.appliedMigrations.length };
  });

  app.get('/metrics', {
    onRequest: async (req) => {
      const limiter = ctx.rateLimits.authFailures;
      limiter.take(req.ip);
      const given = bearer(req);
      if (given === undefined || !timingSafeEqual(digest(given), expected)) {
        throw new FerryError(
          'FERRY_E_UNAUTHENTICATED',
          'The metrics need the metrics token: send "Authorization: Bearer <token>" with the value of FERRY_METRICS_TOKEN, or of the metrics-token file in the server\'s data folder.',
        );
      }
      limiter.refund(req.ip);
    },
    handler: async (_req, reply) => {
      await metrics.refresh(ctx.store, onlineSince(ctx.config));
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    },
  });
}
