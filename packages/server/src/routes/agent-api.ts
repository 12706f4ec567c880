/**
 * The agent side of the API. Agents only dial out: they register with a join token, long-poll
 * for work, publish their targets' sealing keys, heartbeat to keep their leases, upload output
 * by offset and post the final status. What each step does to a task is tasks/task-service.ts.
 */
import { FerryError, OUTPUT_DIGEST_HEADER, Routes, isOutputDigest, type ParsedBody } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import { abortOnDisconnect } from '../disconnect.js';
import { mayServe } from '../eligibility.js';
import { addRoute } from '../http/route.js';
import { hashSecret, newId, newSecret } from '../ids.js';
import { applyRotation, handOverKey, keyReceived } from '../keys.js';
import { parseTaskId } from '../lookup.js';
import { sealingKeyId } from '../sealing-key.js';
import type { AgentRow, TargetRow } from '../store/types.js';
import { answerPoll } from '../tasks/agent-poll.js';

async function registerAgent(ctx: ServerContext, body: ParsedBody<typeof Routes.registerAgent>): Promise<{ agent: AgentRow; token: string }> {
  const token = newSecret('ferry_a');
  const result = await ctx.store.consumeJoinToken(hashSecret(body.joinSecret), Date.now(), {
    id: newId('a'),
    name: body.name,
    hostname: body.hostname,
    version: body.version,
    platform: body.platform,
    concurrency: body.concurrency,
    tokenHash: hashSecret(token),
  });
  if (!result.ok) throw new FerryError(result.code);
  const { agent } = result;
  await ctx.audit({
    orgId: agent.orgId,
    actor: `agent:${agent.name}`,
    action: 'agent.register',
    subject: agent.id,
    details: { hostname: agent.hostname, hosted: agent.hosted },
  });
  ctx.log.info({ agentId: agent.id, name: agent.name, hosted: agent.hosted }, 'agent registered');
  return { agent, token };
}

/** A target's key is set once, by an agent that serves it; a second one is refused with the key in force. */
async function publishKey(ctx: ServerContext, agent: AgentRow, targetId: string, publicKeyPem: string): Promise<string> {
  const target = await ctx.store.getTargetById(targetId);
  // Not found rather than forbidden: agents treat 403 as fatal, and a target deleted since the
  // poll that asked for its key must not stop the agent (nor may an agent probe other targets).
  if (!target || !mayServe(agent, target)) throw new FerryError('FERRY_E_TARGET_NOT_FOUND', `Agent ${agent.name} serves no target ${targetId}.`);
  const keyId = sealingKeyId(publicKeyPem);
  if (!(await ctx.store.setTargetKey(target.id, publicKeyPem, keyId))) throw await keyExists(ctx, target);
  // The publisher made the key, so it holds it; the others of the target get it handed over.
  await ctx.store.addKeyHolder(target.id, agent.id, keyId, Date.now());
  ctx.hub.keyWorkChanged();
  await ctx.audit({ orgId: target.orgId, actor: `agent:${agent.name}`, action: 'target.key.publish', subject: target.name, details: { keyId } });
  return keyId;
}

async function keyExists(ctx: ServerContext, target: TargetRow): Promise<FerryError> {
  // Read again: another agent of the target may have won the race since `target` was read.
  const keyId = (await ctx.store.getTargetById(target.id))?.keyId ?? target.keyId;
  return new FerryError('FERRY_E_TARGET_KEY_EXISTS', `Target ${target.name} already has key ${keyId ?? '?'}.`, { details: { keyId } });
}

export function registerAgentApiRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.registerAgent,
    async ({ body }) => {
      const { agent, token } = await registerAgent(ctx, body);
      return { agentId: agent.id, token };
    },
    { what: 'registration', limit: ctx.rateLimits.registrations },
  );

  addRoute(app, ctx, Routes.poll, ({ caller: agent, body, reply }) => answerPoll(ctx, agent, body, abortOnDisconnect(reply.raw)), { what: 'poll' });

  addRoute(
    app,
    ctx,
    Routes.publishKey,
    async ({ caller: agent, params, body }) => ({
      keyId: await publishKey(ctx, agent, params.id, body.publicKeyPem),
    }),
    { what: 'key' },
  );

  addRoute(
    app,
    ctx,
    Routes.handOverKey,
    async ({ caller: agent, params, body }) => {
      await handOverKey(ctx, agent, params.id, params.agent, body.keyId, body.wrapped);
    },
    { what: 'key hand-over' },
  );

  addRoute(app, ctx, Routes.keyReceived, async ({ caller: agent, params, body }) => {
    await keyReceived(ctx, agent, params.id, body.keyId);
  });

  addRoute(app, ctx, Routes.rotateKey, async ({ caller: agent, params, body }) => ({ keyId: await applyRotation(ctx, agent, params.id, body) }), {
    what: 'key rotation',
  });

  addRoute(
    app,
    ctx,
    Routes.heartbeat,
    async ({ caller: agent, body }) => {
      await ctx.store.touchAgent(agent.id, Date.now());
      const { held, cancel } = await ctx.tasks.renewLeases(agent, body.running);
      const revoked = body.running.filter((id) => !held.includes(id));
      return { cancel, revoked, heartbeatSeconds: ctx.config.heartbeatSeconds };
    },
    { what: 'heartbeat' },
  );

  addRoute(app, ctx, Routes.confirmStart, async ({ caller: agent, params }) => {
    await ctx.tasks.confirmStart(agent, parseTaskId(params.id));
  });

  addRoute(app, ctx, Routes.uploadOutput, async ({ req, caller: agent, params, query, body }) => ({
    nextOffset: await ctx.tasks.appendOutput(agent, parseTaskId(params.id), query.offset, body, digestHeader(req.headers[OUTPUT_DIGEST_HEADER])),
  }));

  addRoute(
    app,
    ctx,
    Routes.finishTask,
    async ({ caller: agent, params, body }) => {
      await ctx.tasks.finish(agent, parseTaskId(params.id), body);
    },
    { what: 'final status' },
  );
}

/** An upload's digest header: absent (an agent from before it), or 64 lowercase hex digits. */
function digestHeader(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !isOutputDigest(value)) {
    throw new FerryError('FERRY_E_BAD_REQUEST', `The ${OUTPUT_DIGEST_HEADER} header must be one digest of 64 lowercase hex digits.`);
  }
  return value;
}
