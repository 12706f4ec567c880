import { Routes } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { UserPrincipal } from '../auth.js';
import { hasReviewRight, isAuthor, visibleTargetIds } from '../authz.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import type { TaskRow } from '../store/types.js';
import { taskView } from '../views.js';
import { decisionsOf } from './tasks.js';

/** At most this many pending tasks are looked at for `review list` (newest first). */
const REVIEW_LIST_LIMIT = 500;

/** Whether the caller could approve the task now: the review right, not its author, not approved by them yet. */
async function awaitsCaller(ctx: ServerContext, user: UserPrincipal, task: TaskRow): Promise<boolean> {
  const review = task.review;
  if (!review || isAuthor(user, task)) return false;
  const member = review.groupId !== null && (await ctx.store.isGroupMember(review.groupId, user.principalId));
  if (!hasReviewRight(user, task, review, member)) return false;
  const decisions = await ctx.store.listReviewDecisions(task.id);
  return !decisions.some((d) => d.principalId === user.principalId);
}

/**
 * Reviews: approve, reject, and what waits for the caller. Who may review is authz.ts
 * `authorizeReview` (asked by the task service), so the routes let every role in.
 */
export function registerReviewRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.approveTask,
    async ({ caller: user, params, body }) => {
      const task = await ctx.tasks.approve(user, params.id, body.comment ?? null);
      return taskView(task, await decisionsOf(ctx, task));
    },
    { what: 'approval' },
  );

  addRoute(
    app,
    ctx,
    Routes.rejectTask,
    async ({ caller: user, params, body }) => {
      const task = await ctx.tasks.reject(user, params.id, body.comment);
      return taskView(task, await decisionsOf(ctx, task));
    },
    { what: 'rejection' },
  );

  addRoute(app, ctx, Routes.listReviews, async ({ caller: user }) => {
    const pending = await ctx.store.listTasks(user.orgId, { status: 'pending_review', targetIds: visibleTargetIds(user), limit: REVIEW_LIST_LIMIT });
    const tasks = [];
    for (const task of pending) {
      if (await awaitsCaller(ctx, user, task)) tasks.push(taskView(task, await decisionsOf(ctx, task)));
    }
    return { tasks };
  });
}
