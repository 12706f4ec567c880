import type { FerryApp } from '../app.js';
import { API_VERSION, FERRY_VERSION } from '@ferry/protocol';
import type { ServerContext } from '../context.js';

/** Unauthenticated endpoints: health and the CA certificate (public by nature; clients check its fingerprint). */
export function registerPublicRoutes(app: FerryApp, ctx: ServerContext): void {
  app.get('/v1/health', () => Promise.resolve({ ok: true, version: FERRY_VERSION, api: API_VERSION }));
  app.get('/v1/ca.pem', async (_req, reply) => reply.type('application/x-pem-file').send(ctx.caPem));
}
