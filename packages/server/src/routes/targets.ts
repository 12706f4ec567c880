import {
  FerryError,
  MAX_SETTINGS_PER_TARGET,
  Routes,
  applySettingsPatch,
  defaultNetwork,
  type AgentMode,
  type CreateTargetRequest,
  type NetworkPolicy,
  type UpdateTargetRequest,
} from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { UserPrincipal } from '../auth.js';
import { targetFor, visibleTargets } from '../authz.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { newId } from '../ids.js';
import { keyHoldersView, requestRotation } from '../keys.js';
import { checkLimits } from '../limits.js';
import { agentsOnline } from '../presence.js';
import type { TargetChanges, TargetRow } from '../store/types.js';
import { reviewPolicyAfter, reviewPolicyView } from '../tasks/reviews.js';
import { targetView } from '../views.js';

function checkNetwork(ctx: ServerContext, network: NetworkPolicy, agent: AgentMode): void {
  if (network === 'host' && agent === 'hosted' && !ctx.config.allowHostNetwork) {
    throw new FerryError(
      'FERRY_E_FORBIDDEN',
      'This server does not give hosted-pool targets the host network; use --network public (public endpoints only) or none, or a self-hosted agent.',
    );
  }
}

async function createTarget(ctx: ServerContext, user: UserPrincipal, body: CreateTargetRequest): Promise<TargetRow> {
  checkLimits(ctx.config, body.limits);
  const network = body.network ?? defaultNetwork(body.type, body.agent);
  checkNetwork(ctx, network, body.agent);
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
    settings: body.settings,
    review: await reviewPolicyAfter(ctx.store, user.orgId, body.review, null),
  };
  if ((await ctx.store.createTarget(row)) === 'exists') throw new FerryError('FERRY_E_TARGET_EXISTS', `A target named "${body.name}" already exists.`);
  ctx.hub.notifyTaskAll(row); // its agents make the sealing key now
  await ctx.audit({
    orgId: user.orgId,
    actor: user.actor,
    action: 'target.create',
    subject: row.name,
    details: {
      type: row.type,
      agent: row.agentMode,
      network: row.network,
      limits: row.limits,
      redact: row.redact,
      settings: row.settings,
      review: reviewPolicyView(row.review),
    },
  });
  return row;
}

/** The target after `body`: only what is given changes. */
async function changedTarget(ctx: ServerContext, target: TargetRow, body: UpdateTargetRequest): Promise<TargetChanges> {
  const limits = { ...target.limits, ...body.limits };
  checkLimits(ctx.config, limits);
  const network = body.network ?? target.network;
  checkNetwork(ctx, network, target.agentMode);
  const settings = body.settings ? applySettingsPatch(target.settings, body.settings) : target.settings;
  if (Object.keys(settings).length > MAX_SETTINGS_PER_TARGET) {
    throw new FerryError(
      'FERRY_E_BAD_REQUEST',
      `Target ${target.name} would have ${Object.keys(settings).length} settings; the limit is ${MAX_SETTINGS_PER_TARGET}.`,
    );
  }
  const review = await reviewPolicyAfter(ctx.store, target.orgId, body.review, target.review);
  return { network, limits, redact: body.redact ?? target.redact, settings, review };
}

/** What an update changed, for the audit trail: old and new values (settings are not secret). */
function changesOf(before: TargetRow, after: TargetChanges): Record<string, unknown> {
  const changed: Record<string, unknown> = {};
  if (before.network !== after.network) changed.network = { from: before.network, to: after.network };
  if (before.redact !== after.redact) changed.redact = { from: before.redact, to: after.redact };
  if (JSON.stringify(before.limits) !== JSON.stringify(after.limits)) changed.limits = { from: before.limits, to: after.limits };
  const set = Object.fromEntries(Object.entries(after.settings).filter(([k, v]) => before.settings[k] !== v));
  const unset = Object.keys(before.settings).filter((k) => !Object.hasOwn(after.settings, k));
  if (Object.keys(set).length > 0) changed.settingsSet = set;
  if (unset.length > 0) changed.settingsUnset = unset;
  if (JSON.stringify(before.review) !== JSON.stringify(after.review))
    changed.review = { from: reviewPolicyView(before.review), to: reviewPolicyView(after.review) };
  return changed;
}

async function updateTarget(ctx: ServerContext, user: UserPrincipal, name: string, body: UpdateTargetRequest): Promise<TargetRow> {
  const target = await targetFor(ctx.store, user, name, 'manage');
  const changes = await changedTarget(ctx, target, body);
  const result = await ctx.store.updateTarget(target.id, changes);
  if (!result) throw new FerryError('FERRY_E_TARGET_NOT_FOUND', `No target named "${name}". \`ferry target list\` shows the targets.`);
  if ('conflict' in result) throw settingConflict(target.name, result.conflict, 'secret');
  await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'target.update', subject: target.name, details: changesOf(target, changes) });
  return result;
}

/** A setting and a secret may not share a name: the error says which and how to resolve it. */
export function settingConflict(target: string, names: readonly string[], existing: 'secret' | 'setting'): FerryError {
  const list = names.join(', ');
  const how =
    existing === 'secret'
      ? `remove the secret first (ferry secret delete ${target} ${names[0] ?? ''}) or pick another setting name`
      : `remove the setting first (ferry target update ${target} --unset-setting ${names[0] ?? ''}) or pick another secret name`;
  return new FerryError(
    'FERRY_E_SETTING_CONFLICT',
    `Target ${target} already has a ${existing} named ${list}; a name is either a setting or a secret, not both: ${how}.`,
    { details: { names } },
  );
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

  addRoute(
    app,
    ctx,
    Routes.updateTarget,
    async ({ caller: user, params, body }) => {
      const row = await updateTarget(ctx, user, params.name, body);
      return targetView(ctx.config, row, await agentsOnline(ctx, row), await keyHoldersView(ctx, row));
    },
    { role: 'admin', what: 'target update' },
  );

  addRoute(app, ctx, Routes.listTargets, async ({ caller: user }) => {
    const rows = visibleTargets(user, await ctx.store.listTargets(user.orgId));
    return { targets: await Promise.all(rows.map(async (r) => targetView(ctx.config, r, await agentsOnline(ctx, r), await keyHoldersView(ctx, r)))) };
  });

  addRoute(app, ctx, Routes.getTarget, async ({ caller: user, params }) => {
    const target = await targetFor(ctx.store, user, params.name, 'read');
    return targetView(ctx.config, target, await agentsOnline(ctx, target), await keyHoldersView(ctx, target));
  });

  addRoute(
    app,
    ctx,
    Routes.rotateTargetKey,
    async ({ caller: user, params, query }) => {
      const target = await targetFor(ctx.store, user, params.name, 'manage');
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
      const target = await targetFor(ctx.store, user, params.name, 'manage');
      const result = await ctx.store.deleteTarget(user.orgId, target.id, Date.now());
      if (result === 'busy') throw new FerryError('FERRY_E_TARGET_BUSY', `Target "${target.name}" has queued or running tasks; cancel them first.`);
      // Its agents' waiting polls answer now: an agent left with no target is told and stops.
      ctx.hub.notifyTaskAll(target);
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'target.delete', subject: target.name, details: {} });
    },
    { role: 'admin' },
  );
}
