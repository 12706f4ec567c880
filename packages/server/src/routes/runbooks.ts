import { FerryError, Routes, type RunbookInfo, type RunbookSourceInfo } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { UserPrincipal } from '../auth.js';
import { targetFor } from '../authz.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { newId } from '../ids.js';
import { runnersOnline } from '../presence.js';
import type { RunbookRow, RunbookSourceRow } from '../store/runbook-types.js';
import { taskWithAgentsView } from '../views.js';

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

async function sourceView(ctx: ServerContext, row: RunbookSourceRow): Promise<RunbookSourceInfo> {
  return {
    name: row.name,
    git: row.git,
    ref: row.ref,
    path: row.path,
    commit: row.commit,
    syncedAt: isoOrNull(row.syncedAt),
    lastError: row.lastError,
    runbooks: await ctx.store.runbooks.countRunbooks(row.id),
  };
}

function runbookView(row: RunbookRow): RunbookInfo {
  return {
    name: row.name,
    source: row.sourceName,
    file: row.file,
    commit: row.commit,
    description: row.description,
    targetType: row.targetType,
    defaultTarget: row.defaultTarget,
    params: row.params,
    script: row.script,
  };
}

async function runbookOf(ctx: ServerContext, user: UserPrincipal, name: string): Promise<RunbookRow> {
  const row = await ctx.store.runbooks.getRunbook(user.orgId, name);
  if (!row) throw new FerryError('FERRY_E_RUNBOOK_NOT_FOUND', `No runbook named "${name}". \`ferry runbook list\` shows them.`);
  return row;
}

/** Runbook sources are the organization's (admins add and sync them); anyone may read runbooks; running one is running a task. */
export function registerRunbookRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.addRunbookSource,
    async ({ caller: user, body }) => {
      if (body.git.startsWith('-')) throw new FerryError('FERRY_E_BAD_REQUEST', `${body.git} is not a Git URL or path.`);
      const row: RunbookSourceRow = {
        id: newId('rs'),
        orgId: user.orgId,
        name: body.name,
        git: body.git,
        ref: body.ref,
        path: body.path.replace(/\/+$/, ''),
        commit: null,
        syncedAt: null,
        lastError: null,
        createdBy: user.actor,
        createdAt: Date.now(),
      };
      if ((await ctx.store.runbooks.addSource(row)) === 'exists')
        throw new FerryError('FERRY_E_RUNBOOK_SOURCE_EXISTS', `A runbook source named "${row.name}" already exists.`);
      await ctx.audit({
        orgId: user.orgId,
        actor: user.actor,
        action: 'runbook.source_add',
        subject: row.name,
        details: { git: row.git, ref: row.ref, path: row.path },
      });
      return sourceView(ctx, await ctx.runbooks.sync(row, user.actor));
    },
    { role: 'admin', what: 'runbook source' },
  );

  addRoute(app, ctx, Routes.listRunbookSources, async ({ caller: user }) => ({
    sources: await Promise.all((await ctx.store.runbooks.listSources(user.orgId)).map((s) => sourceView(ctx, s))),
  }));

  addRoute(
    app,
    ctx,
    Routes.syncRunbookSource,
    async ({ caller: user, params }) => {
      const source = await ctx.store.runbooks.getSource(user.orgId, params.name);
      if (!source)
        throw new FerryError('FERRY_E_RUNBOOK_SOURCE_NOT_FOUND', `No runbook source named "${params.name}". \`ferry runbook source list\` shows them.`);
      return sourceView(ctx, await ctx.runbooks.sync(source, user.actor));
    },
    { role: 'admin' },
  );

  addRoute(app, ctx, Routes.listRunbooks, async ({ caller: user }) => ({ runbooks: (await ctx.store.runbooks.listRunbooks(user.orgId)).map(runbookView) }));

  addRoute(app, ctx, Routes.getRunbook, async ({ caller: user, params }) => runbookView(await runbookOf(ctx, user, params.name)));

  addRoute(
    app,
    ctx,
    Routes.runRunbook,
    async ({ caller: user, params, body }) => {
      const runbook = await runbookOf(ctx, user, params.name);
      const targetName = body.target ?? runbook.defaultTarget;
      if (!targetName) throw new FerryError('FERRY_E_BAD_REQUEST', `Runbook ${runbook.name} names no default target; give one with --target.`);
      const target = await targetFor(ctx.store, user, targetName, 'run');
      const { task } = await ctx.runbooks.run(user, runbook, target, body.params, body.timeoutSeconds);
      return taskWithAgentsView(task, await runnersOnline(ctx, target), []);
    },
    { what: 'runbook run' },
  );
}
