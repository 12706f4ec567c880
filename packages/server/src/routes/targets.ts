import type { FerryApp } from '../app.js';
import { CreateTargetRequest, FerryError, TargetName, defaultNetwork } from '@ferry/protocol';
import { checkLimits } from '../limits.js';
import { requireUser } from '../auth.js';
import type { ServerContext } from '../context.js';
import { newId } from '../ids.js';
import type { TargetRow } from '../store/types.js';
import { parseInput } from '../validate.js';
import { targetView } from '../views.js';

export async function findTarget(ctx: ServerContext, orgId: string, name: string): Promise<TargetRow> {
  const parsed = TargetName.safeParse(name);
  const target = parsed.success ? await ctx.store.getTargetByName(orgId, parsed.data) : undefined;
  if (!target) throw new FerryError('FERRY_E_TARGET_NOT_FOUND', `No target named "${name}". \`ferry target list\` shows the targets.`);
  return target;
}

export function onlineSince(ctx: ServerContext): number {
  return Date.now() - ctx.config.agentOfflineSeconds * 1000;
}

export function registerTargetRoutes(app: FerryApp, ctx: ServerContext): void {
  app.post('/v1/targets', async (req, reply) => {
    const user = await requireUser(ctx.store, req, 'admin');
    const body = parseInput(CreateTargetRequest, req.body, 'target');
    checkLimits(ctx.config, body.limits);
    const network = body.network ?? defaultNetwork(body.type);
    if (network === 'host' && body.agent === 'hosted' && !ctx.config.allowHostNetwork) {
      throw new FerryError('FERRY_E_FORBIDDEN', 'This server does not give hosted-pool targets the host network; use --network none, or a self-hosted agent.');
    }
    const row: TargetRow = {
      id: newId('g'), orgId: user.orgId, name: body.name, type: body.type, agentMode: body.agent, createdAt: Date.now(),
      network, limits: body.limits, redact: body.redact,
      publicKeyPem: null, keyId: null,
    };
    const created = await ctx.store.createTarget(row);
    if (created === 'exists') throw new FerryError('FERRY_E_TARGET_EXISTS', `A target named "${body.name}" already exists.`);
    ctx.hub.notifyTaskAll(row); // its agents make the sealing key now
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'target.create', subject: row.name, details: { type: row.type, agent: row.agentMode, network: row.network, limits: row.limits, redact: row.redact } });
    return reply.code(201).send(targetView(ctx.config, row, await ctx.store.countOnlineAgents(row, onlineSince(ctx))));
  });

  app.get('/v1/targets', async (req) => {
    const user = await requireUser(ctx.store, req);
    const rows = await ctx.store.listTargets(user.orgId);
    const since = onlineSince(ctx);
    return { targets: await Promise.all(rows.map(async (r) => targetView(ctx.config, r, await ctx.store.countOnlineAgents(r, since)))) };
  });

  app.get<{ Params: { name: string } }>('/v1/targets/:name', async (req) => {
    const user = await requireUser(ctx.store, req);
    const target = await findTarget(ctx, user.orgId, req.params.name);
    return targetView(ctx.config, target, await ctx.store.countOnlineAgents(target, onlineSince(ctx)));
  });

  app.delete<{ Params: { name: string } }>('/v1/targets/:name', async (req, reply) => {
    const user = await requireUser(ctx.store, req, 'admin');
    const target = await findTarget(ctx, user.orgId, req.params.name);
    const result = await ctx.store.deleteTarget(user.orgId, target.id, Date.now());
    if (result === 'busy') throw new FerryError('FERRY_E_TARGET_BUSY', `Target "${target.name}" has queued or running tasks; cancel them first.`);
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'target.delete', subject: target.name, details: {} });
    return reply.code(204).send();
  });
}
