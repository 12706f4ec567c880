/**
 * /readyz says "not ready" (503 FERRY_E_UNAVAILABLE, with what is wrong) when the database does
 * not answer or lacks a migration this build knows, and "ready" otherwise; /healthz only says the
 * process answers. A real store behind the real routes, through Fastify's inject, on both
 * backends (helpers/stores.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import pino from 'pino';
import { buildApp } from '../src/app.js';
import { ServerConfigSchema } from '../src/config.js';
import type { ServerContext } from '../src/context.js';
import { ServerMetrics } from '../src/http/metrics.js';
import { RateLimiter } from '../src/http/rate-limit.js';
import { registerOpsRoutes } from '../src/routes/ops.js';
import type { Readiness, Store } from '../src/store/types.js';
import { defaultCertNames, ensureTlsMaterial } from '../src/tls.js';
import { forEachStore } from './helpers/stores.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-readyz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function opsApp(store: Store): Promise<ReturnType<typeof buildApp>> {
  const tls = ensureTlsMaterial(dir, defaultCertNames('127.0.0.1', []));
  const app = buildApp({ keyPem: tls.keyPem, certPem: tls.certPem, log: pino({ level: 'silent' }) });
  const limiter = new RateLimiter(30, 'failed authentications');
  // Only what the ops routes read.
  const ctx = { store, config: ServerConfigSchema.parse({}), rateLimits: { authFailures: limiter, registrations: limiter } } as unknown as ServerContext;
  registerOpsRoutes(app, ctx, { metrics: new ServerMetrics(), metricsToken: 'a-metrics-token-for-tests' });
  await app.ready();
  return app;
}

forEachStore('/readyz', (backend) => {
  it('is ready with every migration applied', async () => {
    const store = await backend.open();
    const app = await opsApp(store);
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json<{ ready: boolean }>().ready, true);
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    await app.close();
    await store.close();
  });

  it('is not ready when a migration this build knows is missing', async () => {
    const store = await backend.open();
    const real = await store.readiness();
    const missing = real.knownMigrations.at(-1) ?? 0;
    // As a database left by an older build would read: its last migration not applied yet.
    store.readiness = (): Promise<Readiness> => Promise.resolve({ ...real, appliedMigrations: real.appliedMigrations.filter((v) => v !== missing) });
    const app = await opsApp(store);
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 503);
    const body = res.json<{ code: string; message: string; details: { missingMigrations: number[] } }>();
    assert.equal(body.code, 'FERRY_E_UNAVAILABLE');
    assert.deepEqual(body.details.missingMigrations, [missing]);
    assert.match(body.message, new RegExp(`migrations ${missing} are not applied`));
    await app.close();
    await store.close();
  });

  it('is not ready when the database does not answer, and /healthz still answers', async () => {
    const store = await backend.open();
    const app = await opsApp(store);
    await store.close();
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 503);
    assert.match(res.json<{ message: string }>().message, /database does not answer/);
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    await app.close();
  });
});
