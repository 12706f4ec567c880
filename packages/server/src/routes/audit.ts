import { Routes, type ParsedQuery } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { auditHash } from '../store/audit-hash.js';
import type { AuditFilter, AuditRow } from '../store/types.js';
import { auditView } from '../views.js';

/**
 * Recomputes the hash chain from the first entry: an entry changed, removed or inserted out of
 * order breaks the chain at that point.
 */
export function verifyChain(rows: readonly AuditRow[]): { ok: boolean; entries: number; brokenAt: number | null } {
  let prev = '0'.repeat(64);
  for (const row of rows) {
    if (row.prevHash !== prev || auditHash(prev, row) !== row.hash) return { ok: false, entries: rows.length, brokenAt: row.seq };
    prev = row.hash;
  }
  return { ok: true, entries: rows.length, brokenAt: null };
}

function auditFilter(query: ParsedQuery<typeof Routes.listAudit>): AuditFilter {
  return {
    actorContains: query.actor,
    actionPrefix: query.action,
    target: query.target,
    since: query.since === undefined ? undefined : Date.parse(query.since),
    until: query.until === undefined ? undefined : Date.parse(query.until),
    beforeSeq: query.before,
  };
}

export function registerAuditRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(app, ctx, Routes.verifyAudit, async () => verifyChain(await ctx.store.allAudit()), { role: 'admin' });

  addRoute(
    app,
    ctx,
    Routes.listAudit,
    async ({ caller: user, query }) => {
      // Entries of no organization (the server's, the shared pool's) are the instance's.
      const rows = await ctx.store.listAudit(user.orgId, query.limit, user.instanceAdmin, auditFilter(query));
      // A full page may have more behind it; a short one is the last.
      const last = rows.at(-1);
      return { entries: rows.map(auditView), nextBefore: rows.length === query.limit && last ? last.seq : null };
    },
    { role: 'admin' },
  );
}
