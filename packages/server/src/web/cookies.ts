/**
 * The browser session's cookie and its CSRF token.
 *
 * The cookie holds the session's token itself (a personal token, stored hashed like every other
 * token, with an expiry, revoked at sign-out). It is `HttpOnly` (the page's script never sees
 * it), `Secure`, `SameSite=Strict` and `__Host-` prefixed (this origin only, Path=/).
 *
 * The CSRF token is an HMAC of the session's token: the server can recompute it from the cookie,
 * so nothing more is stored, and nobody without the cookie's value can make it. The page learns
 * it from the sign-in answer (or `GET /v1/web/session`) and sends it in `x-ferry-csrf` on every
 * state-changing request. A write that a cookie authenticates is refused without it (403
 * FERRY_E_CSRF), and refused outright when the browser says it came from another site
 * (`Sec-Fetch-Site`, `Origin`: 403 FERRY_E_CROSS_SITE).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CSRF_HEADER, FerryError, SESSION_COOKIE, SSO_BINDING_COOKIE } from '@ferry/protocol';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** One cookie's value from the request's Cookie header (the first of that name). */
export function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

export function csrfTokenFor(sessionSecret: string): string {
  return createHmac('sha256', sessionSecret).update('ferry-csrf-v1').digest('base64url');
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Refuses a request a browser says came from another site's page. Requests without these
 * headers (the CLI, scripts, older browsers) pass: the CSRF token is the check that always applies.
 */
export function checkSameOrigin(req: FastifyRequest): void {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin') {
    throw new FerryError('FERRY_E_CROSS_SITE', `Refused: this request came from another site (Sec-Fetch-Site: ${site}).`);
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `https://${req.headers.host ?? ''}`) {
    throw new FerryError('FERRY_E_CROSS_SITE', `Refused: this request came from ${origin}, not from this server's own pages.`);
  }
}

/**
 * The checks a cookie-authenticated request must pass before its session is even looked up:
 * reads pass; a write must come from this origin and carry the session's CSRF token.
 */
export function checkCookieRequest(req: FastifyRequest, sessionSecret: string): void {
  if (SAFE_METHODS.has(req.method)) return;
  checkSameOrigin(req);
  const sent = req.headers[CSRF_HEADER];
  if (typeof sent !== 'string' || !sameText(sent, csrfTokenFor(sessionSecret))) throw new FerryError('FERRY_E_CSRF');
}

function cookie(name: string, value: string, maxAgeSeconds: number, sameSite: 'Strict' | 'Lax'): string {
  return `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=${sameSite}; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`;
}

export function setSessionCookie(reply: FastifyReply, secret: string, expiresAt: number): void {
  void reply.header('set-cookie', cookie(SESSION_COOKIE, secret, (expiresAt - Date.now()) / 1000, 'Strict'));
}

export function clearSessionCookie(reply: FastifyReply): void {
  void reply.header('set-cookie', cookie(SESSION_COOKIE, '', 0, 'Strict'));
}

export function setSsoBindingCookie(reply: FastifyReply, value: string, maxAgeSeconds: number): void {
  void reply.header('set-cookie', cookie(SSO_BINDING_COOKIE, value, maxAgeSeconds, 'Lax'));
}
