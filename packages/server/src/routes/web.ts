/**
 * The web UI's browser session (web/cookies.ts, web/session.ts): sign in with a password into a
 * cookie, ask who is signed in (and the CSRF token), sign out. Single sign-on in the browser is
 * in sso.ts (`webSsoStart` and the provider's callback).
 */
import { FerryError, Routes, SESSION_COOKIE } from '@ferry/protocol';
import type { FastifyRequest } from 'fastify';
import type { FerryApp } from '../app.js';
import { bearer } from '../auth.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { checkPassword } from './people.js';
import { checkSameOrigin, clearSessionCookie, readCookie } from '../web/cookies.js';
import { redeemSignInLink } from '../web/sign-in-link.js';
import { WEB_SESSION_MS, startBrowserSession, webSessionView } from '../web/session.js';

/** The token the caller was let in with: the session cookie, or a bearer token (the CLI's own session). */
function sessionSecret(req: FastifyRequest): string {
  const secret = bearer(req) ?? readCookie(req, SESSION_COOKIE);
  if (!secret) throw new FerryError('FERRY_E_UNAUTHENTICATED');
  return secret;
}

export function registerWebRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.webSignIn,
    async ({ req, reply, body }) => {
      checkSameOrigin(req);
      const account = await checkPassword(ctx, body);
      return startBrowserSession(ctx, reply, account.principal, account.orgName, 'password');
    },
    { what: 'sign-in', limit: ctx.rateLimits.signIns },
  );

  addRoute(
    app,
    ctx,
    Routes.webLinkSignIn,
    async ({ req, reply, body }) => {
      checkSameOrigin(req);
      return redeemSignInLink(ctx, reply, body.link);
    },
    { what: 'sign-in link', limit: ctx.rateLimits.signIns },
  );

  addRoute(app, ctx, Routes.webSession, async ({ req, caller: user }) => {
    const found = await ctx.store.teams.findLiveToken(user.orgId, user.tokenId);
    const org = await ctx.store.teams.getOrg(user.orgId);
    // A token without an expiry (a service account's) is shown as expiring with a browser session would.
    const expiresAt = found?.token.expiresAt ?? Date.now() + WEB_SESSION_MS;
    return webSessionView(sessionSecret(req), user.name, org?.name ?? user.orgId, user.role, expiresAt);
  });

  // Ends the browser session the cookie carries. A bearer token (the CLI's) is no browser
  // session: nothing is revoked (`ferry token revoke` does that), the answer is the same.
  addRoute(app, ctx, Routes.webSignOut, async ({ req, caller: user, reply }) => {
    clearSessionCookie(reply);
    if (bearer(req)) return;
    await ctx.store.teams.revokeToken(user.orgId, user.tokenId, Date.now());
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'user.sign-out', subject: user.name, details: { token: user.tokenId } });
  });
}
