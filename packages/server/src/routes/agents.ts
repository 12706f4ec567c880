import type { FerryApp } from '../app.js';
import { CreateJoinTokenRequest, FerryError, RegisterAgentRequest, encodeJoinToken } from '@ferry/protocol';
import { requireUser } from '../auth.js';
import type { ServerContext } from '../context.js';
import { hashSecret, newId, newSecret } from '../ids.js';
import { parseInput } from '../validate.js';
import { agentView } from '../views.js';
import { findTarget, onlineSince } from './targets.js';

/** Creates a one-time join token. `orgId` null makes an operator-wide hosted agent (the embedded one). */
export async function createJoinToken(
  ctx: ServerContext, opts: { orgId: string | null; hosted: boolean; targetIds: string[]; createdBy: string; ttlSeconds: number },
): Promise<{ id: string; token: string; expiresAt: number }> {
  const secret = newSecret('ferry_j');
  const now = Date.now();
  const id = newId('j');
  const expiresAt = now + opts.ttlSeconds * 1000;
  await ctx.store.createJoinToken(
    { id, orgId: opts.orgId, hosted: opts.hosted, targetIds: opts.targetIds, createdBy: opts.createdBy, createdAt: now, expiresAt, usedAt: null },
    hashSecret(secret),
  );
  return { id, token: encodeJoinToken({ url: ctx.publicUrl, fp: ctx.caFingerprint, secret }), expiresAt };
}

export function registerAgentRoutes(app: FerryApp, ctx: ServerContext): void {
  app.post('/v1/agent-tokens', async (req, reply) => {
    const user = await requireUser(ctx.store, req, 'admin');
    const body = parseInput(CreateJoinTokenRequest, req.body, 'join token request');
    const targets = await Promise.all(body.targets.map((name) => findTarget(ctx, user.orgId, name)));
    const hostedTarget = targets.find((t) => t.agentMode === 'hosted');
    if (hostedTarget) {
      throw new FerryError('FERRY_E_BAD_REQUEST', `Target "${hostedTarget.name}" is served by the hosted pool; only targets created with --agent self-hosted take their own agents.`);
    }
    const created = await createJoinToken(ctx, {
      orgId: user.orgId, hosted: body.hosted, targetIds: targets.map((t) => t.id), createdBy: user.actor, ttlSeconds: body.ttlSeconds,
    });
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'agent.token.create', subject: created.id, details: { hosted: body.hosted, targets: body.targets } });
    return reply.code(201).send({ id: created.id, token: created.token, expiresAt: new Date(created.expiresAt).toISOString() });
  });

  app.get('/v1/agents', async (req) => {
    const user = await requireUser(ctx.store, req);
    const rows = await ctx.store.listAgents(user.orgId);
    const targets = new Map((await ctx.store.listTargets(user.orgId)).map((t) => [t.id, t.name]));
    const since = onlineSince(ctx);
    const agents = await Promise.all(rows.map(async (a) => agentView(
      a, a.targetIds.map((id) => targets.get(id) ?? '(deleted)'), a.revokedAt === null && a.lastSeenAt >= since, await ctx.store.countRunningTasks(a.id),
    )));
    return { agents };
  });

  app.delete<{ Params: { id: string } }>('/v1/agents/:id', async (req, reply) => {
    const user = await requireUser(ctx.store, req, 'admin');
    const ok = await ctx.store.revokeAgent(user.orgId, req.params.id, Date.now());
    if (!ok) throw new FerryError('FERRY_E_AGENT_NOT_FOUND', `No active agent with id "${req.params.id}" in this organization.`);
    ctx.hub.notifyAgent(req.params.id);
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'agent.revoke', subject: req.params.id, details: {} });
    return reply.code(204).send();
  });

  app.post('/v1/agents/register', async (req, reply) => {
    const body = parseInput(RegisterAgentRequest, req.body, 'registration');
    const token = newSecret('ferry_a');
    const agentId = newId('a');
    const result = await ctx.store.consumeJoinToken(hashSecret(body.joinSecret), Date.now(), {
      id: agentId, name: body.name, hostname: body.hostname, version: body.version, platform: body.platform,
      concurrency: body.concurrency, tokenHash: hashSecret(token),
    });
    if (!result.ok) throw new FerryError(result.code);
    await ctx.audit({ orgId: result.agent.orgId, actor: `agent:${body.name}`, action: 'agent.register', subject: agentId, details: { hostname: body.hostname, hosted: result.agent.hosted } });
    req.log.info({ agentId, name: body.name, hosted: result.agent.hosted }, 'agent registered');
    return reply.code(201).send({ agentId, token });
  });
}
