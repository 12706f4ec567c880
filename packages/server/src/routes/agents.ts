import { FerryError, Routes, encodeJoinToken } from '@ferry/protocol';
import { publicUrls } from '../config.js';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import type { UserPrincipal } from '../auth.js';
import { requireInstanceAdmin } from '../authz.js';
import { addRoute } from '../http/route.js';
import { hashSecret, newId, newSecret } from '../ids.js';
import { onlyHolderOf } from '../keys.js';
import { findTarget } from '../lookup.js';
import { onlineSince } from '../presence.js';
import type { AgentRow } from '../store/types.js';
import { agentView } from '../views.js';

/**
 * What an organization sees of an agent of the shared hosted pool: that it exists, whether it
 * is online, and how many of the organization's own tasks it runs; not the host it runs on nor
 * other organizations' work. Instance administrators see it whole.
 */
function sharedAgentAsSeenBy(user: UserPrincipal, agent: AgentRow): AgentRow {
  if (agent.orgId !== null || user.instanceAdmin) return agent;
  return { ...agent, hostname: '(shared hosted pool)', version: '-', platform: '-' };
}

/** Creates a one-time join token. `orgId` null makes an operator-wide hosted agent (the embedded one). */
export async function createJoinToken(
  ctx: ServerContext,
  opts: { orgId: string | null; hosted: boolean; targetIds: string[]; createdBy: string; ttlSeconds: number },
): Promise<{ id: string; token: string; expiresAt: number }> {
  const secret = newSecret('ferry_j');
  const now = Date.now();
  const id = newId('j');
  const expiresAt = now + opts.ttlSeconds * 1000;
  await ctx.store.createJoinToken(
    { id, orgId: opts.orgId, hosted: opts.hosted, targetIds: opts.targetIds, createdBy: opts.createdBy, createdAt: now, expiresAt, usedAt: null },
    hashSecret(secret),
  );
  // With replicas (several public URLs) the token names them all; the agent fails over between them.
  const urls = [...new Set([ctx.publicUrl, ...publicUrls(ctx.config)])];
  return { id, token: encodeJoinToken({ url: ctx.publicUrl, fp: ctx.caFingerprint, secret, ...(urls.length > 1 ? { urls } : {}) }), expiresAt };
}

export function registerAgentRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.createJoinToken,
    async ({ caller: user, body }) => {
      const targets = await Promise.all(body.targets.map((name) => findTarget(ctx.store, user.orgId, name)));
      const hostedTarget = targets.find((t) => t.agentMode === 'hosted');
      if (hostedTarget) {
        throw new FerryError(
          'FERRY_E_BAD_REQUEST',
          `Target "${hostedTarget.name}" is served by the hosted pool; only targets created with --agent self-hosted take their own agents.`,
        );
      }
      // Only instance administrators add agents to the pool every organization shares; an
      // organization's admin gets an agent of its own pool (eligibility.ts).
      if (body.shared) requireInstanceAdmin(user, 'Adding an agent to the shared hosted pool (--shared)');
      const created = await createJoinToken(ctx, {
        orgId: body.shared ? null : user.orgId,
        hosted: body.hosted,
        targetIds: targets.map((t) => t.id),
        createdBy: user.actor,
        ttlSeconds: body.ttlSeconds,
      });
      await ctx.audit({
        orgId: user.orgId,
        actor: user.actor,
        action: 'agent.token.create',
        subject: created.id,
        details: { hosted: body.hosted, shared: body.shared, targets: body.targets },
      });
      return { id: created.id, token: created.token, expiresAt: new Date(created.expiresAt).toISOString() };
    },
    { role: 'admin', what: 'join token request' },
  );

  addRoute(app, ctx, Routes.listAgents, async ({ caller: user }) => {
    const rows = await ctx.store.listAgents(user.orgId);
    const targets = new Map((await ctx.store.listTargets(user.orgId)).map((t) => [t.id, t.name]));
    const since = onlineSince(ctx.config);
    const holdings = await ctx.store.keyHoldings(user.orgId);
    const agents = await Promise.all(
      rows.map(async (a) =>
        agentView(
          sharedAgentAsSeenBy(user, a),
          a.targetIds.map((id) => targets.get(id) ?? '(deleted)'),
          a.revokedAt === null && a.lastSeenAt >= since,
          await ctx.store.countRunningTasks(a.id, user.instanceAdmin ? undefined : user.orgId),
          holdings.get(a.id) ?? [],
        ),
      ),
    );
    return { agents };
  });

  addRoute(
    app,
    ctx,
    Routes.pruneAgents,
    async ({ caller: user, body }) => {
      const pruned = await ctx.store.pruneAgents(user.orgId, Date.now() - body.offlineForSeconds * 1000, Date.now());
      for (const a of pruned) ctx.hub.notifyAgent(a.id);
      if (pruned.length > 0) {
        await ctx.audit({
          orgId: user.orgId,
          actor: user.actor,
          action: 'agent.prune',
          subject: pruned.map((a) => a.id).join(','),
          details: { offlineForSeconds: body.offlineForSeconds, pruned },
        });
      }
      return { pruned };
    },
    { role: 'admin', what: 'prune request' },
  );

  addRoute(
    app,
    ctx,
    Routes.revokeAgent,
    async ({ caller: user, params, query }) => {
      const force = query.force === 'true';
      // An instance administrator may revoke a shared-pool agent, which holds keys of every
      // organization's hosted targets: all of them count.
      const onlyHolder = await onlyHolderOf(ctx, user.instanceAdmin ? null : user.orgId, params.id);
      if (onlyHolder.length > 0 && !force) {
        throw new FerryError(
          'FERRY_E_LAST_KEY_HOLDER',
          `Agent ${params.id} is the only agent holding the sealing key of ${onlyHolder.join(', ')}: revoked, nobody could open ${onlyHolder.length === 1 ? "that target's" : "those targets'"} secrets. ` +
            'Start another agent for the target first (it gets the key from this one); or revoke with --force, then make a new key with ' +
            '`ferry target rotate-key NAME --discard-secrets` and set the secrets again.',
          { details: { targets: onlyHolder } },
        );
      }
      const now = Date.now();
      // A shared-pool agent (no organization) is the instance's: only its administrators revoke it.
      const ok = (await ctx.store.revokeAgent(user.orgId, params.id, now)) || (user.instanceAdmin && (await ctx.store.revokeAgent(null, params.id, now)));
      if (!ok) throw new FerryError('FERRY_E_AGENT_NOT_FOUND', `No active agent with id "${params.id}" in this organization.`);
      ctx.hub.notifyAgent(params.id);
      await ctx.audit({
        orgId: user.orgId,
        actor: user.actor,
        action: 'agent.revoke',
        subject: params.id,
        details: onlyHolder.length > 0 ? { forced: true, keysLostFor: onlyHolder } : {},
      });
    },
    { role: 'admin' },
  );
}
