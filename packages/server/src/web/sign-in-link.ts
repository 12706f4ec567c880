/**
 * The first admin's way into the web UI: each start of `ferry server` prints a one-time sign-in
 * link for the `admin` service account (`https://HOST/ui/sign-in#link=SECRET`; the secret is in
 * the fragment, so no request line, log or Referer holds it). The secret is a user token of its
 * own, named `sign-in-link-…`, stored hashed like every token, that expires after an hour and is
 * used up (revoked, compare-and-set) when redeemed for a browser session. It is good for nothing
 * else: auth.ts refuses it as a bearer token or cookie.
 */
import { FerryError } from '@ferry/protocol';
import type { FastifyReply } from 'fastify';
import { LINK_NAME, USER_TOKEN_PREFIX } from '../auth.js';
import type { ServerContext } from '../context.js';
import { hashSecret, newId, newSecret } from '../ids.js';
import { startBrowserSession } from './session.js';

const LINK_MS = 60 * 60 * 1000;

/** A fresh link for the organization's `admin` service account, or undefined if there is none. */
export async function createSignInLink(ctx: ServerContext, orgId: string): Promise<string | undefined> {
  const admin = await ctx.store.teams.findPrincipal(orgId, 'admin');
  if (!admin || admin.kind !== 'service') return undefined;
  const now = Date.now();
  const secret = newSecret(USER_TOKEN_PREFIX);
  const id = newId('k');
  const name = `${LINK_NAME}-${id.slice(2)}`;
  const made = await ctx.store.teams.createToken(
    { id, orgId, principalId: admin.id, name, createdAt: now, expiresAt: now + LINK_MS, lastUsedAt: null, revokedAt: null },
    hashSecret(secret),
  );
  if (made !== 'ok') return undefined;
  await ctx.audit({
    orgId,
    actor: 'server',
    action: 'token.create',
    subject: name,
    details: { principal: admin.name, purpose: 'web sign-in link', expiresAt: now + LINK_MS },
  });
  return `${ctx.publicUrl}/ui/sign-in#link=${secret}`;
}

/** Redeems a link once: its token is revoked (the one write that decides), and a browser session made. */
export async function redeemSignInLink(ctx: ServerContext, reply: FastifyReply, secret: string): ReturnType<typeof startBrowserSession> {
  const invalid = new FerryError('FERRY_E_SIGN_IN_LINK_INVALID');
  if (!secret.startsWith(`${USER_TOKEN_PREFIX}_`)) throw invalid;
  const found = await ctx.store.teams.findToken(hashSecret(secret));
  const now = Date.now();
  if (!found || !found.token.name.startsWith(`${LINK_NAME}-`) || found.token.revokedAt !== null) throw invalid;
  if (found.token.expiresAt !== null && found.token.expiresAt <= now) throw invalid;
  if (!(await ctx.store.teams.revokeToken(found.token.orgId, found.token.id, now))) throw invalid;
  const org = await ctx.store.teams.getOrg(found.token.orgId);
  return startBrowserSession(ctx, reply, found.principal, org?.name ?? found.token.orgId, 'link');
}
