/**
 * The agent side of the API. Agents only dial out: they long-poll for work, heartbeat to
 * keep their leases, upload output by offset and post the final status. Every state change
 * is a compare-and-set on (status = running, agent = caller), so an agent can never touch a
 * task it does not hold, whatever ids it sends.
 */
import type { FerryApp } from '../app.js';
import {
  FerryError, FinishTaskRequest, HeartbeatRequest, PollRequest, PublishKeyRequest, TaskId, UploadOutputQuery, decodeFrames,
  type Assignment, type OutputFrame, type PollResponse,
} from '@ferry/protocol';
import { requireAgent } from '../auth.js';
import type { ServerContext } from '../context.js';
import type { AgentRow, TaskRow } from '../store/types.js';
import { parseInput } from '../validate.js';
import { registerFramesParser } from '../app.js';
import { mayServe } from '../dispatch.js';
import { redactingFlush, redactingTransform } from '../output-pipeline.js';
import { sealingKeyId } from '../sealing-key.js';
import { resolveLimits } from '../limits.js';
import { abortOnDisconnect } from '../disconnect.js';

async function assignment(ctx: ServerContext, task: TaskRow): Promise<Assignment> {
  const limits = resolveLimits(ctx.config, task.targetLimits);
  const secrets = (await ctx.store.listSecrets(task.targetId)).map((s) => ({ name: s.name, sealed: s.sealed }));
  return {
    orgId: task.orgId, secrets,
    id: task.id, target: { id: task.targetId, name: task.targetName, type: task.targetType },
    script: task.script, timeoutSeconds: task.timeoutSeconds, leaseSeconds: ctx.config.leaseSeconds,
    network: task.targetNetwork, maxOutputBytes: limits.maxOutputBytes, maxProcesses: limits.maxProcesses, memoryBytes: limits.memoryBytes,
  };
}

/** Room for the agent's own truncation notice after a task's output reaches its limit. */
const NOTICE_ALLOWANCE_BYTES = 4096;

function taskIdParam(id: string): string {
  if (!TaskId.safeParse(id).success) throw new FerryError('FERRY_E_TASK_NOT_FOUND', `"${id}" is not a task id.`);
  return id;
}

async function pendingCancels(ctx: ServerContext, agent: AgentRow, running: readonly string[]): Promise<string[]> {
  if (running.length === 0) return [];
  const { cancel } = await ctx.store.renewLeases(agent.id, running, Date.now() + ctx.config.leaseSeconds * 1000);
  return cancel;
}

export function registerAgentApiRoutes(app: FerryApp, ctx: ServerContext): void {
  app.post('/v1/agent/poll', async (req, reply): Promise<PollResponse> => {
    const agent = await requireAgent(ctx.store, req);
    const body = parseInput(PollRequest, req.body, 'poll');
    const abort = abortOnDisconnect(reply.raw);
    const deadline = Date.now() + body.waitSeconds * 1000;
    await ctx.store.touchAgent(agent.id, Date.now());
    for (;;) {
      if (body.free > 0 && !abort.signal.aborted) {
        const task = await ctx.store.claimNextTask(agent, Date.now(), ctx.config.leaseSeconds * 1000);
        if (task && abort.signal.aborted) {
          // The agent hung up while we claimed: give the task back at once rather than after the lease.
          await ctx.store.releaseClaim(task.id, agent.id);
          return { task: null, cancel: [] };
        }
        if (task) {
          req.log.info({ agentId: agent.id, taskId: task.id }, 'task claimed');
          return { task: await assignment(ctx, task), cancel: await pendingCancels(ctx, agent, body.running) };
        }
      }
      const cancel = await pendingCancels(ctx, agent, body.running);
      const keyRequests = (await ctx.store.targetsNeedingKeys(agent)).map((t) => ({ targetId: t.id, targetName: t.name }));
      if (cancel.length > 0 || keyRequests.length > 0 || Date.now() >= deadline || abort.signal.aborted) {
        await ctx.store.touchAgent(agent.id, Date.now());
        return { task: null, cancel, keyRequests };
      }
      await ctx.hub.waitForWork(agent, body.free > 0, deadline - Date.now(), abort.signal);
      const fresh = await ctx.store.getAgent(agent.id);
      if (!fresh || fresh.revokedAt !== null) throw new FerryError('FERRY_E_AGENT_REVOKED');
    }
  });

  app.post<{ Params: { id: string } }>('/v1/agent/targets/:id/key', async (req, reply) => {
    const agent = await requireAgent(ctx.store, req);
    const body = parseInput(PublishKeyRequest, req.body, 'key');
    const target = await ctx.store.getTargetById(req.params.id);
    if (!target || !mayServe(agent, target)) throw new FerryError('FERRY_E_FORBIDDEN', `Agent ${agent.name} does not serve target ${req.params.id}.`);
    const keyId = sealingKeyId(body.publicKeyPem);
    if (!(await ctx.store.setTargetKey(target.id, body.publicKeyPem, keyId))) {
      return reply.code(409).send({ statusCode: 409, code: 'FERRY_E_BAD_REQUEST', error: 'Conflict', message: `Target ${target.name} already has key ${target.keyId ?? '?'}.`, details: { keyId: target.keyId } });
    }
    await ctx.audit({ orgId: target.orgId, actor: `agent:${agent.name}`, action: 'target.key.publish', subject: target.name, details: { keyId } });
    return reply.code(201).send({ keyId });
  });

  app.post('/v1/agent/heartbeat', async (req) => {
    const agent = await requireAgent(ctx.store, req);
    const body = parseInput(HeartbeatRequest, req.body, 'heartbeat');
    const now = Date.now();
    await ctx.store.touchAgent(agent.id, now);
    const { held, cancel } = await ctx.store.renewLeases(agent.id, body.running, now + ctx.config.leaseSeconds * 1000);
    const revoked = body.running.filter((id) => !held.includes(id));
    return { cancel, revoked, heartbeatSeconds: ctx.config.heartbeatSeconds };
  });

  app.post<{ Params: { id: string } }>('/v1/agent/tasks/:id/started', async (req, reply) => {
    const agent = await requireAgent(ctx.store, req);
    const id = taskIdParam(req.params.id);
    const ok = await ctx.store.markStarted(id, agent.id, Date.now());
    if (!ok) throw new FerryError('FERRY_E_LEASE_LOST', `Agent ${agent.name} does not hold task ${id}.`);
    ctx.hub.notifyOutput(id);
    return reply.code(204).send();
  });

  // Output uploads are the one place binary frames are accepted, so no other route reads 8 MiB
  // bodies of them before authentication.
  void app.register((scope, _opts, done) => {
    registerFramesParser(scope);
    scope.put<{ Params: { id: string } }>('/v1/agent/tasks/:id/output', async (req) => {
      const agent = await requireAgent(ctx.store, req);
      const id = taskIdParam(req.params.id);
      const q = parseInput(UploadOutputQuery, req.query, 'query');
      if (!Buffer.isBuffer(req.body)) throw new FerryError('FERRY_E_UNSUPPORTED_MEDIA_TYPE', 'Output uploads must be application/vnd.ferry.frames.');
      let frames: OutputFrame[];
      try {
        frames = decodeFrames(req.body);
      } catch (err) {
        throw new FerryError('FERRY_E_BAD_REQUEST', `Malformed output frames: ${(err as Error).message}.`, { cause: err });
      }
      const task = await ctx.store.getTaskForAgent(id, agent.id);
      if (!task || task.status !== 'running') throw new FerryError('FERRY_E_LEASE_LOST', `Agent ${agent.name} does not hold task ${id}.`);
      const limit = resolveLimits(ctx.config, task.targetLimits).maxOutputBytes + NOTICE_ALLOWANCE_BYTES;
      const end = q.offset + frames.reduce((n, f) => n + f.data.length, 0);
      if (end > limit) throw new FerryError('FERRY_E_OUTPUT_LIMIT', `Output for ${id} would reach ${end} bytes; its limit is ${limit}.`);
      // The raw digest is updated only once the append has committed.
      let raw: { frames: readonly OutputFrame[]; offset: number } | undefined;
      const transform = redactingTransform(task.targetRedact, (fresh, rawOffset) => (raw = { frames: fresh, offset: rawOffset }));
      const result = await ctx.store.appendOutput(id, agent.id, q.offset, frames, transform);
      if (raw && result !== 'not_held' && result.ok) ctx.digests.update(id, raw.frames, raw.offset);
      if (result === 'not_held') throw new FerryError('FERRY_E_LEASE_LOST', `Agent ${agent.name} does not hold task ${id}.`);
      if (!result.ok) {
        throw new FerryError('FERRY_E_OUTPUT_GAP', `Output for ${id} must continue at offset ${result.expectedOffset}, not ${q.offset}.`, { details: { expectedOffset: result.expectedOffset } });
      }
      ctx.hub.notifyOutput(id);
      return { nextOffset: result.nextOffset };
    });
    done();
  });

  app.post<{ Params: { id: string } }>('/v1/agent/tasks/:id/finish', async (req, reply) => {
    const agent = await requireAgent(ctx.store, req);
    const id = taskIdParam(req.params.id);
    const body = parseInput(FinishTaskRequest, req.body, 'final status');
    const task = await ctx.store.getTaskForAgent(id, agent.id);
    if (!task || task.status !== 'running') throw new FerryError('FERRY_E_LEASE_LOST', `Agent ${agent.name} does not hold task ${id}.`);
    if (task.outputBytes < body.outputBytes) {
      throw new FerryError('FERRY_E_OUTPUT_GAP', `The server has ${task.outputBytes} of ${body.outputBytes} output bytes for ${id}; resend from there.`, { details: { expectedOffset: task.outputBytes } });
    }
    const digest = ctx.digests.take(id, task.outputBytes);
    if (task.outputBytes !== body.outputBytes || (digest !== undefined && digest !== body.outputSha256)) {
      throw new FerryError('FERRY_E_OUTPUT_MISMATCH', `Received output for ${id} (${task.outputBytes} bytes) does not match the agent's (${body.outputBytes} bytes, checksum ${digest === body.outputSha256 ? 'equal' : 'different'}).`);
    }
    if (digest === undefined && body.outputBytes > 0) req.log.warn({ taskId: id }, 'output checksum not verified: this server did not see every chunk (restarted mid-task?); length verified');
    await ctx.store.flushOutput(id, agent.id, redactingFlush(task.targetRedact));
    const ok = await ctx.store.finishTask(id, agent.id, { status: body.status, exitCode: body.exitCode, signal: body.signal, reason: body.reason, now: Date.now() });
    if (!ok) throw new FerryError('FERRY_E_LEASE_LOST', `Agent ${agent.name} does not hold task ${id}.`);
    ctx.hub.notifyOutput(id);
    await ctx.audit({ orgId: task.orgId, actor: `agent:${agent.name}`, action: 'task.finish', subject: id, details: { status: body.status, exitCode: body.exitCode } });
    return reply.code(204).send();
  });
}
