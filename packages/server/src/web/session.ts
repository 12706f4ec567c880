/**
 * Browser sessions: a personal token kept in the session cookie (web/cookies.ts), made by a
 * password sign-in (`POST /v1/web/session`) or by single sign-on in the browser (the provider's
 * callback). Named `web-…` among the person's tokens, so `ferry token list` tells them apart.
 */
import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import type { WebSession } from '@ferry/protocol';
import type { ServerContext } from '../context.js';
import { createSession } from '../routes/people.js';
import type { PrincipalRow } from '../store/teams-types.js';
import { csrfTokenFor, setSessionCookie } from './cookies.js';

/** A browser session lasts 12 hours (a working day); sign in again for another. */
export const WEB_SESSION_MS = 12 * 3600 * 1000;

export function webSessionView(secret: string, email: string, org: string, role: WebSession['role'], expiresAt: number): z.input<typeof WebSession> {
  return { email, org, role, csrfToken: csrfTokenFor(secret), expiresAt: new Date(expiresAt).toISOString() };
}

/** Makes the session, sets its cookie on the answer, and returns what the page needs. */
export async function startBrowserSession(
  ctx: ServerContext,
  reply: FastifyReply,
  person: PrincipalRow,
  orgName: string,
  method: 'password' | 'sso' | 'link',
): Promise<z.input<typeof WebSession>> {
  const s = await createSession(ctx, person, orgName, method, { lifetimeMs: WEB_SESSION_MS, name: 'web' });
  setSessionCookie(reply, s.secret, s.expiresAt);
  return webSessionView(s.secret, person.name, orgName, person.role, s.expiresAt);
}
