import type { FerryApp } from '../app.js';
import {
  CreateTaskRequest, FerryError, ListTasksQuery, OUTPUT_FRAMES_CONTENT_TYPE, ReadOutputQuery, TaskId, encodeFrames, isTerminal,
} from '@ferry/protocol';
import { requireUser } from '../auth.js';
import type { ServerContext } from '../context.js';
import { newId } from '../ids.js';
import type { TaskRow } from '../store/types.js';
import { parseInput } from '../validate.js';
import { checkLimits, resolveLimits } from '../limits.js';
import { abortOnDisconnect } from '../disconnect.js';
import { taskView } from '../views.js';
import { findTarget, onlineSince } from './targets.js';

async function findTask(ctx: ServerContext, orgId: string, id: string): Promise<TaskRow> {
  const task = TaskId.safeParse(id).success ? await ctx.store.getTask(orgId, id) : undefined;
  if (!task) throw new FerryError('FERRY_E_TASK_NOT_FOUND', `No task with id "${id}". \`ferry task list\` shows the tasks.`);
  return task;
}

export function registerTaskRoutes(app: FerryApp, ctx: ServerContext): void {
  app.post('/v1/tasks', async (req, reply) => {
    const user = await requireUser(ctx.store, req, 'operator');
    const body = parseInput(CreateTaskRequest, req.body, 'task');
    if (body.script.trim() === '') throw new FerryError('FERRY_E_EMPTY_SCRIPT');
    const target = await findTarget(ctx, user.orgId, body.target);
    checkLimits(ctx.config, { timeoutSeconds: body.timeoutSeconds });
    const now = Date.now();
    const row: TaskRow = {
      id: newId('t'), orgId: user.orgId, targetId: target.id, targetName: target.name, targetType: target.type,
      targetNetwork: target.network, targetLimits: target.limits, targetRedact: target.redact, storedBytes: 0, redactState: null,
      script: body.script, status: 'queued', exitCode: null, signal: null, reason: null, agentId: null, agentName: null,
      createdBy: user.actor, createdAt: now, claimedAt: null, startedAt: null, finishedAt: null,
      timeoutSeconds: body.timeoutSeconds ?? resolveLimits(ctx.config, target.limits).timeoutSeconds, leaseExpiresAt: null, cancelRequestedAt: null, outputBytes: 0,
    };
    await ctx.store.createTask(row);
    ctx.hub.notifyTask(target);
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'task.create', subject: row.id, details: { target: target.name, scriptBytes: Buffer.byteLength(body.script) } });
    const agentsOnline = await ctx.store.countOnlineAgents(target, onlineSince(ctx));
    return reply.code(201).send({ ...taskView(row), agentsOnline });
  });

  app.get('/v1/tasks', async (req) => {
    const user = await requireUser(ctx.store, req);
    const q = parseInput(ListTasksQuery, req.query, 'query');
    const targetId = q.target ? (await findTarget(ctx, user.orgId, q.target)).id : undefined;
    const rows = await ctx.store.listTasks(user.orgId, { targetId, status: q.status, limit: q.limit });
    return { tasks: rows.map(taskView) };
  });

  app.get<{ Params: { id: string } }>('/v1/tasks/:id', async (req) => {
    const user = await requireUser(ctx.store, req);
    const task = await findTask(ctx, user.orgId, req.params.id);
    const target = await ctx.store.getTargetByName(user.orgId, task.targetName);
    const agentsOnline = target ? await ctx.store.countOnlineAgents(target, onlineSince(ctx)) : 0;
    return { ...taskView(task), agentsOnline };
  });

  app.get<{ Params: { id: string } }>('/v1/tasks/:id/script', async (req, reply) => {
    const user = await requireUser(ctx.store, req);
    const task = await findTask(ctx, user.orgId, req.params.id);
    return reply.type('text/plain; charset=utf-8').send(task.script);
  });

  app.post<{ Params: { id: string } }>('/v1/tasks/:id/cancel', async (req) => {
    const user = await requireUser(ctx.store, req, 'operator');
    const before = await findTask(ctx, user.orgId, req.params.id);
    if (isTerminal(before.status)) throw new FerryError('FERRY_E_TASK_FINISHED', `Task ${before.id} already ended as ${before.status}.`);
    const after = await ctx.store.requestCancel(user.orgId, before.id, Date.now());
    if (after?.agentId) ctx.hub.notifyAgent(after.agentId);
    ctx.hub.notifyOutput(before.id);
    await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'task.cancel', subject: before.id, details: { status: before.status } });
    return taskView(after ?? before);
  });

  /**
   * Output from `offset`, as frames. With `waitSeconds`, an empty answer waits for new output
   * or the end of the task. Headers say where to continue and whether everything was read.
   */
  app.get<{ Params: { id: string } }>('/v1/tasks/:id/output', async (req, reply) => {
    const user = await requireUser(ctx.store, req);
    const q = parseInput(ReadOutputQuery, req.query, 'query');
    let task = await findTask(ctx, user.orgId, req.params.id);
    const abort = abortOnDisconnect(reply.raw);
    const deadline = Date.now() + q.waitSeconds * 1000;
    let frames = await ctx.store.readOutput(task.id, q.offset, q.maxBytes);
    while (frames.length === 0 && !isTerminal(task.status) && Date.now() < deadline && !abort.signal.aborted) {
      await ctx.hub.waitForOutput(task.id, deadline - Date.now(), abort.signal);
      task = await findTask(ctx, user.orgId, task.id);
      frames = await ctx.store.readOutput(task.id, q.offset, q.maxBytes);
    }
    const next = q.offset + frames.reduce((n, f) => n + f.data.length, 0);
    const complete = isTerminal(task.status) && next >= task.storedBytes;
    return reply
      .type(OUTPUT_FRAMES_CONTENT_TYPE)
      .header('ferry-next-offset', String(next))
      .header('ferry-task-status', task.status)
      .header('ferry-output-complete', complete ? 'true' : 'false')
      .send(encodeFrames(frames));
  });
}
