/**
 * Organizations: one server holds many, each isolated from the others (every query names one).
 * Instance administrators create them; each new one gets an admin service account and a
 * one-time token for it.
 */
import { FerryError, Routes } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import { requireInstanceAdmin } from '../authz.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { hashSecret, newId, newSecret } from '../ids.js';
import { USER_TOKEN_PREFIX } from '../auth.js';
import type { PrincipalRow, TokenRow } from '../store/teams-types.js';
import { orgView } from '../teams-views.js';

/** The name of the first admin of a new organization (a service account). */
const FIRST_ADMIN = 'admin';

export function registerOrgRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.createOrg,
    async ({ caller: user, body }) => {
      requireInstanceAdmin(user, 'Creating an organization');
      const now = Date.now();
      const org = { id: newId('o'), name: body.name, createdAt: now };
      const admin: PrincipalRow = {
        id: newId('p'),
        orgId: org.id,
        kind: 'service',
        name: FIRST_ADMIN,
        role: 'admin',
        instanceAdmin: false,
        createdBy: user.principalId,
        createdAt: now,
      };
      const secret = newSecret(USER_TOKEN_PREFIX);
      const token: TokenRow = {
        id: newId('k'),
        orgId: org.id,
        principalId: admin.id,
        name: FIRST_ADMIN,
        createdAt: now,
        expiresAt: null,
        lastUsedAt: null,
        revokedAt: null,
      };
      if ((await ctx.store.teams.createOrgWithAdmin(org, admin, token, hashSecret(secret))) === 'exists') {
        throw new FerryError('FERRY_E_ORG_EXISTS', `An organization named "${body.name}" already exists.`);
      }
      // The instance's trail says who made it; the new organization's own trail starts with its admin token.
      await ctx.audit({ orgId: null, actor: user.actor, action: 'org.create', subject: org.name, details: { orgId: org.id } });
      await ctx.audit({ orgId: org.id, actor: user.actor, action: 'token.create', subject: token.id, details: { principal: FIRST_ADMIN, role: 'admin' } });
      return { ...orgView(org), admin: FIRST_ADMIN, adminToken: secret };
    },
    { role: 'admin', what: 'organization' },
  );

  addRoute(app, ctx, Routes.listOrgs, async ({ caller: user }) => {
    if (user.instanceAdmin) return { orgs: (await ctx.store.teams.listOrgs()).map(orgView) };
    const own = await ctx.store.teams.getOrg(user.orgId);
    return { orgs: own ? [orgView(own)] : [] };
  });
}
