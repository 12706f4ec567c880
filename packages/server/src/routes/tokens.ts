/**
 * Tokens and service accounts. `createToken` with a role makes a service account of that name
 * (never above its creator's role) and its first token; with `personal`, another token for the
 * caller's own principal. Secrets are shown once and stored hashed.
 *
 * Admins see and revoke every token of their organization; others their own principal's and
 * those of the service accounts they made. A token the caller may not see is "not found".
 */
import { FerryError, Routes, type ParsedBody } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import { USER_TOKEN_PREFIX, type UserPrincipal } from '../auth.js';
import { roleAtLeast } from '../authz.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { hashSecret, newId, newSecret } from '../ids.js';
import type { PrincipalRow, TokenRow, TokenWithPrincipal } from '../store/teams-types.js';
import { tokenView } from '../teams-views.js';

type CreateToken = ParsedBody<typeof Routes.createToken>;

function nameTaken(name: string): FerryError {
  return new FerryError(
    'FERRY_E_NAME_TAKEN',
    `"${name}" is already the name of a token or service account here; pick another (\`ferry token list\` shows them).`,
  );
}

/** May the caller see (and so revoke) this token? */
function mayManage(user: UserPrincipal, found: TokenWithPrincipal): boolean {
  if (found.token.orgId !== user.orgId) return false;
  return user.role === 'admin' || found.principal.id === user.principalId || found.principal.createdBy === user.principalId;
}

async function createToken(ctx: ServerContext, user: UserPrincipal, body: CreateToken): Promise<TokenWithPrincipal & { secret: string }> {
  const now = Date.now();
  const secret = newSecret(USER_TOKEN_PREFIX);
  const expiresAt = body.expiresInSeconds === undefined ? null : now + body.expiresInSeconds * 1000;
  const base = { id: newId('k'), orgId: user.orgId, name: body.name, createdAt: now, expiresAt, lastUsedAt: null, revokedAt: null };
  if (body.personal || body.role === undefined) {
    const token: TokenRow = { ...base, principalId: user.principalId };
    if ((await ctx.store.teams.createToken(token, hashSecret(secret))) === 'exists') throw nameTaken(body.name);
    const found = await ctx.store.teams.findToken(hashSecret(secret));
    if (!found) throw new FerryError('FERRY_E_INTERNAL', 'The new token could not be read back.');
    return { ...found, secret };
  }
  if (!roleAtLeast(user.role, body.role)) {
    throw new FerryError(
      'FERRY_E_ROLE_TOO_HIGH',
      `A service account cannot have a role above its creator's: yours is ${user.role}, ${body.name} would be ${body.role}.`,
    );
  }
  const principal: PrincipalRow = {
    id: newId('p'),
    orgId: user.orgId,
    kind: 'service',
    name: body.name,
    role: body.role,
    instanceAdmin: false,
    createdBy: user.principalId,
    createdAt: now,
  };
  const token: TokenRow = { ...base, principalId: principal.id };
  if ((await ctx.store.teams.createServiceAccount(principal, token, hashSecret(secret))) === 'exists') throw nameTaken(body.name);
  return { token, principal, secret };
}

export function registerTokenRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.createToken,
    async ({ caller: user, body }) => {
      const created = await createToken(ctx, user, body);
      await ctx.audit({
        orgId: user.orgId,
        actor: user.actor,
        action: 'token.create',
        subject: created.token.id,
        details: { name: created.token.name, principal: created.principal.name, role: created.principal.role, expiresAt: created.token.expiresAt },
      });
      return { ...tokenView(created), token: created.secret };
    },
    { what: 'token request' },
  );

  addRoute(app, ctx, Routes.listTokens, async ({ caller: user }) => {
    const all = await ctx.store.teams.listTokens(user.orgId);
    return { tokens: all.filter((t) => mayManage(user, t)).map(tokenView) };
  });

  addRoute(app, ctx, Routes.revokeToken, async ({ caller: user, params }) => {
    const found = await ctx.store.teams.findLiveToken(user.orgId, params.token);
    if (!found || !mayManage(user, found)) {
      throw new FerryError('FERRY_E_TOKEN_NOT_FOUND', `No active token with id or name "${params.token}". \`ferry token list\` shows the tokens.`);
    }
    await ctx.store.teams.revokeToken(user.orgId, found.token.id, Date.now());
    await ctx.audit({
      orgId: user.orgId,
      actor: user.actor,
      action: 'token.revoke',
      subject: found.token.id,
      details: { name: found.token.name, principal: found.principal.name },
    });
  });
}
