/**
 * Endpoints for the people and systems that operate the server, outside the versioned API:
 * - `GET /healthz`: the process answers (liveness). No token; says nothing else.
 * - `GET /readyz`: the database answers and has every migration this build knows (readiness);
 *   503 FERRY_E_UNAVAILABLE with the details otherwise, and while shutting down. No token.
 * - `GET /v1/openapi.json`: the API's OpenAPI document, generated from the route table
 *   (protocol's openapi.ts). No token: it describes the API, not anyone's data.
 * - `GET /metrics`: Prometheus text. It names every organization's targets (queue depth per
 *   target), so it needs the metrics token as a bearer token: FERRY_METRICS_TOKEN, or else the
 *   one the server writes to `<data dir>/metrics-token` (mode 0600) on first start. A wrong
 *   token counts against the address's failed-authentication allowance like any other.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import { FerryError, Routes, openApiDocument, type OpenApiDoc } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import type { ServerMetrics } from '../http/metrics.js';
import { addRoute } from '../http/route.js';
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

/** Throws 401 for a missing or wrong metrics token, 429 once the address failed too often. */
function checkMetricsToken(req: FastifyRequest, ctx: ServerContext, expected: Buffer): void {
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
}

export function registerOpsRoutes(app: FerryApp, ctx: ServerContext, opts: OpsOptions): void {
  const { metrics } = opts;
  const expected = digest(opts.metricsToken);
  app.addHook('onResponse', async (req, reply) => metrics.observeRequest(req, reply));

  app.get('/healthz', () => Promise.resolve({ ok: true }));

  // Generated once, on first request: it depends only on the route table this build has.
  let document: OpenApiDoc | undefined;
  addRoute(app, ctx, Routes.openApi, () => (document ??= openApiDocument()));

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
    onRequest: (req, _reply, done) => {
      try {
        checkMetricsToken(req, ctx, expected);
        done();
      } catch (err) {
        done(err as FerryError);
      }
    },
    handler: async (_req, reply) => {
      await metrics.refresh(ctx.store, onlineSince(ctx.config));
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    },
  });
}
