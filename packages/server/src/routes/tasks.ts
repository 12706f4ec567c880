import { Routes } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import { abortOnDisconnect } from '../disconnect.js';
import { addRoute } from '../http/route.js';
import { targetFor, taskFor, visibleTargetIds } from '../authz.js';
import { runnersOnline } from '../presence.js';
import type { ReviewDecisionRow, TaskRow } from '../store/types.js';
import { taskView, taskWithAgentsView } from '../views.js';

/** A task's review decisions, for its view; none to look up when its target needed no review. */
export async function decisionsOf(ctx: ServerContext, task: TaskRow): Promise<ReviewDecisionRow[]> {
  return task.review ? ctx.store.listReviewDecisions(task.id) : [];
}

/** The user side of tasks; what a task goes through is tasks/task-service.ts. */
export function registerTaskRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.createTask,
    async ({ caller: user, body }) => {
      // The runners online are counted by the task's insert (one statement fewer).
      const { task, runners } = await ctx.tasks.create(user, body, null, await targetFor(ctx.store, user, body.target, 'run'));
      return taskWithAgentsView(task, runners, []);
    },
    // Who may run on which target is the target's grants (authz.ts), so the route lets every role in.
    { what: 'task' },
  );

  addRoute(app, ctx, Routes.listTasks, async ({ caller: user, query }) => {
    const targetId = query.target ? (await targetFor(ctx.store, user, query.target, 'read')).id : undefined;
    // A person or account of another organization (or none) started nothing here: an empty page.
    const creator = query.person ? await ctx.store.teams.findPrincipal(user.orgId, query.person) : undefined;
    if (query.person && !creator) return { tasks: [] };
    const before = query.before ? await taskFor(ctx.store, user, query.before, 'read') : undefined;
    const rows = await ctx.store.listTasks(user.orgId, {
      targetId,
      status: query.status,
      targetIds: visibleTargetIds(user),
      createdByPrincipal: creator?.id,
      before: before ? { createdAt: before.createdAt, id: before.id } : undefined,
      limit: query.limit,
    });
    return { tasks: await Promise.all(rows.map(async (row) => taskView(row, await decisionsOf(ctx, row)))) };
  });

  addRoute(app, ctx, Routes.getTask, async ({ caller: user, params }) => {
    const task = await taskFor(ctx.store, user, params.id, 'read');
    // The target by the task's id, not its name (which a deleted target's successor may have): no read of it first.
    const [runners, decisions] = await Promise.all([runnersOnline(ctx, { id: task.targetId }), decisionsOf(ctx, task)]);
    return taskWithAgentsView(task, runners, decisions);
  });

  addRoute(app, ctx, Routes.getTaskScript, async ({ caller: user, params }) => {
    const task = await taskFor(ctx.store, user, params.id, 'read');
    return { contentType: 'text/plain; charset=utf-8', text: task.script };
  });

  addRoute(app, ctx, Routes.cancelTask, async ({ caller: user, params }) => {
    await taskFor(ctx.store, user, params.id, 'run');
    const task = await ctx.tasks.cancel(user, params.id);
    return taskView(task, await decisionsOf(ctx, task));
  });

  addRoute(app, ctx, Routes.readOutput, async ({ caller: user, params, query, reply }) => {
    await taskFor(ctx.store, user, params.id, 'read');
    return ctx.tasks.readOutput(user, params.id, query, abortOnDisconnect(reply.raw).signal);
  });
}
