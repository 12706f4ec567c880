import { API_VERSION, FERRY_VERSION, Routes } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';

/** Unauthenticated endpoints: health and the CA certificate (public by nature; clients check its fingerprint). */
export function registerPublicRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(app, ctx, Routes.health, () => ({ ok: true, version: FERRY_VERSION, api: API_VERSION }));
  addRoute(app, ctx, Routes.caCertificate, () => ({ contentType: 'application/x-pem-file', text: ctx.caPem }));
}
