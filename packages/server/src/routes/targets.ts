import { FerryError, Routes, defaultNetwork, type CreateTargetRequest } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { UserPrincipal } from '../auth.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { newId } from '../ids.js';
import { keyHoldersView, requestRotation } from '../keys.js';
import { checkLimits } from '../limits.js';
import { findTarget } from '../lookup.js';
import { agentsOnline } from '../presence.js';
import type { TargetRow } from '../store/types.js';
import { targetView } from '../views.js';

async function createTarget(ctx: ServerContext, user: UserPrincipal, body: CreateTargetRequest): Promise<TargetRow> {
  checkLimits(ctx.config, body.limits);
  const network = body.network ?? defaultNetwork(body.type);
  if (network === 'host' && body.agent === 'hosted' && !ctx.config.allowHostNetwork) {
    throw new FerryError('FERRY_E_FORBIDDEN', 'This server does not give hosted-pool targets the host network; use --network none, or a self-hosted agent.');
  }
  const row: TargetRow = {
    id: newId('g'),
    orgId: user.orgId,
    name: body.name,
    type: body.type,
    agentMode: body.agent,
    createdAt: Date.now(),
    network,
    limits: body.limits,
    redact: body.redact,
    publicKeyPem: null,
    keyId: null,
  };
  if ((await ctx.store.createTarget(row)) === 'exists') throw new FerryError('FERRY_E_TARGET_EXISTS', `A target named "${body.name}" already exists.`);
  ctx.hub.notifyTaskAll(row); // its agents make the sealing key now
  await ctx.audit({
    orgId: user.orgId,
    actor: user.actor,
    action: 'target.create',
    subject: row.name,
    details: { type: row.type, agent: row.agentMode, network: row.network, limits: row.limits, redact: row.redact },
  });
  return row;
}

export function registerTargetRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.createTarget,
    async ({ caller: user, body }) => {
      const row = await createTarget(ctx, user, body);
      return targetView(ctx.config, row, await agentsOnline(ctx, row), await keyHoldersView(ctx, row));
    },
    { role: 'admin', what: 'target' },
  );

  addRoute(app, ctx, Routes.listTargets, async ({ caller: user }) => {
    const rows = await ctx.store.listTargets(user.orgId);
    return { targets: await Promise.all(rows.map(async (r) => targetView(ctx.config, r, await agentsOnline(ctx, r), await keyHoldersView(ctx, r)))) };
  });

  addRoute(app, ctx, Routes.getTarget, async ({ caller: user, params }) => {
    const target = await findTarget(ctx.store, user.orgId, params.name);
    return targetView(ctx.config, target, await agentsOnline(ctx, target), await keyHoldersView(ctx, target));
  });

  addRoute(
    app,
    ctx,
    Routes.rotateTargetKey,
    async ({ caller: user, params, query }) => {
      const target = await findTarget(ctx.store, user.orgId, params.name);
      await requestRotation(ctx, user.actor, target, query.discardSecrets === 'true');
      return targetView(ctx.config, target, await agentsOnline(ctx, target), await keyHoldersView(ctx, target));
    },
    { role: 'admin' },
  );

  addRoute(
    app,
    ctx,
    Routes.deleteTarget,
    async ({ caller: user, params }) => {
      const target = await findTarget(ctx.store, user.orgId, params.name);
      const result = await ctx.store.deleteTarget(user.orgId, target.id, Date.now());
      if (result === 'busy') throw new FerryError('FERRY_E_TARGET_BUSY', `Target "${target.name}" has queued or running tasks; cancel them first.`);
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'target.delete', subject: target.name, details: {} });
    },
    { role: 'admin' },
  );
}
