/**
 * Groups and target grants (admins only): a group's members (service accounts now, people
 * later) get the group's role on each target it is granted. authz.ts reads the grants.
 */
import { FerryError, Routes } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import { targetFor } from '../authz.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { newId } from '../ids.js';
import type { GroupRow, GroupWithMembers } from '../store/teams-types.js';
import type { Store } from '../store/types.js';
import { groupView } from '../teams-views.js';

async function findGroup(store: Store, orgId: string, name: string): Promise<GroupRow> {
  const group = await store.teams.findGroup(orgId, name);
  if (!group) throw new FerryError('FERRY_E_GROUP_NOT_FOUND', `No group named "${name}". \`ferry group list\` shows the groups.`);
  return group;
}

async function groupWithMembers(store: Store, group: GroupRow): Promise<GroupWithMembers> {
  const all = await store.teams.listGroups(group.orgId);
  return all.find((g) => g.id === group.id) ?? { ...group, members: [], grants: [] };
}

export function registerGroupRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.createGroup,
    async ({ caller: user, body }) => {
      const row: GroupRow = { id: newId('r'), orgId: user.orgId, name: body.name, createdAt: Date.now() };
      if ((await ctx.store.teams.createGroup(row)) === 'exists') throw new FerryError('FERRY_E_GROUP_EXISTS', `A group named "${body.name}" already exists.`);
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'group.create', subject: row.name, details: {} });
      return groupView({ ...row, members: [], grants: [] });
    },
    { role: 'admin', what: 'group' },
  );

  addRoute(app, ctx, Routes.listGroups, async ({ caller: user }) => ({ groups: (await ctx.store.teams.listGroups(user.orgId)).map(groupView) }), {
    role: 'admin',
  });

  addRoute(
    app,
    ctx,
    Routes.addGroupMember,
    async ({ caller: user, params }) => {
      const group = await findGroup(ctx.store, user.orgId, params.group);
      const member = await ctx.store.teams.findPrincipal(user.orgId, params.member);
      if (!member) {
        throw new FerryError('FERRY_E_PRINCIPAL_NOT_FOUND', `No service account named "${params.member}" here. \`ferry token list\` shows them.`);
      }
      if (await ctx.store.teams.addGroupMember(group.id, member.id)) {
        await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'group.member.add', subject: group.name, details: { member: member.name } });
      }
      return groupView(await groupWithMembers(ctx.store, group));
    },
    { role: 'admin' },
  );

  // Idempotent like the add: removing someone who is not a member answers the group as it is.
  addRoute(
    app,
    ctx,
    Routes.removeGroupMember,
    async ({ caller: user, params }) => {
      const group = await findGroup(ctx.store, user.orgId, params.group);
      const member = await ctx.store.teams.findPrincipal(user.orgId, params.member);
      if (!member) {
        throw new FerryError(
          'FERRY_E_PRINCIPAL_NOT_FOUND',
          `No service account or person named "${params.member}" here. \`ferry group list\` shows the members.`,
        );
      }
      if (await ctx.store.teams.removeGroupMember(group.id, member.id)) {
        await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'group.member.remove', subject: group.name, details: { member: member.name } });
      }
      return groupView(await groupWithMembers(ctx.store, group));
    },
    { role: 'admin' },
  );

  addRoute(
    app,
    ctx,
    Routes.grantTarget,
    async ({ caller: user, params, body }) => {
      const target = await targetFor(ctx.store, user, params.name, 'manage');
      const group = await findGroup(ctx.store, user.orgId, params.group);
      await ctx.store.teams.putGrant(target.id, group.id, body.role, Date.now());
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'target.grant', subject: target.name, details: { group: group.name, role: body.role } });
      return { target: target.name, group: group.name, role: body.role };
    },
    { role: 'admin', what: 'grant' },
  );

  addRoute(
    app,
    ctx,
    Routes.revokeGrant,
    async ({ caller: user, params }) => {
      const target = await targetFor(ctx.store, user, params.name, 'manage');
      const group = await findGroup(ctx.store, user.orgId, params.group);
      if (!(await ctx.store.teams.deleteGrant(target.id, group.id))) {
        throw new FerryError('FERRY_E_GRANT_NOT_FOUND', `Group ${group.name} has no grant on ${target.name}.`);
      }
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'target.revoke-grant', subject: target.name, details: { group: group.name } });
    },
    { role: 'admin' },
  );
}
