import { Routes } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import { abortOnDisconnect } from '../disconnect.js';
import { addRoute } from '../http/route.js';
import { findTarget, findTask } from '../lookup.js';
import { runnersOnline } from '../presence.js';
import { taskView, taskWithAgentsView } from '../views.js';

/** The user side of tasks; what a task goes through is tasks/task-service.ts. */
export function registerTaskRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.createTask,
    async ({ caller: user, body }) => {
      const { task, target } = await ctx.tasks.create(user, body);
      return taskWithAgentsView(task, await runnersOnline(ctx, target));
    },
    { role: 'operator', what: 'task' },
  );

  addRoute(app, ctx, Routes.listTasks, async ({ caller: user, query }) => {
    const targetId = query.target ? (await findTarget(ctx.store, user.orgId, query.target)).id : undefined;
    const rows = await ctx.store.listTasks(user.orgId, { targetId, status: query.status, limit: query.limit });
    return { tasks: rows.map(taskView) };
  });

  addRoute(app, ctx, Routes.getTask, async ({ caller: user, params }) => {
    const task = await findTask(ctx.store, user.orgId, params.id);
    const target = await ctx.store.getTargetByName(user.orgId, task.targetName);
    return taskWithAgentsView(task, target ? await runnersOnline(ctx, target) : 0);
  });

  addRoute(app, ctx, Routes.getTaskScript, async ({ caller: user, params }) => {
    const task = await findTask(ctx.store, user.orgId, params.id);
    return { contentType: 'text/plain; charset=utf-8', text: task.script };
  });

  addRoute(app, ctx, Routes.cancelTask, async ({ caller: user, params }) => taskView(await ctx.tasks.cancel(user, params.id)), { role: 'operator' });

  addRoute(app, ctx, Routes.readOutput, ({ caller: user, params, query, reply }) =>
    ctx.tasks.readOutput(user, params.id, query, abortOnDisconnect(reply.raw).signal),
  );
}
