import type { FerryApp } from '../app.js';
import { z } from 'zod';
import { requireUser } from '../auth.js';
import type { ServerContext } from '../context.js';
import { parseInput } from '../validate.js';
import { auditView } from '../views.js';
import { auditHash } from '../store/audit-hash.js';
import type { AuditRow } from '../store/types.js';

const AuditQuery = z.object({ limit: z.coerce.number().int().min(1).max(10000).default(100) }).strict();

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

export function registerAuditRoutes(app: FerryApp, ctx: ServerContext): void {
  app.get('/v1/audit/verify', async (req) => {
    await requireUser(ctx.store, req, 'admin');
    return verifyChain(await ctx.store.allAudit());
  });

  app.get('/v1/audit', async (req) => {
    const user = await requireUser(ctx.store, req, 'admin');
    const q = parseInput(AuditQuery, req.query, 'query');
    return { entries: (await ctx.store.listAudit(user.orgId, q.limit)).map(auditView) };
  });
}
