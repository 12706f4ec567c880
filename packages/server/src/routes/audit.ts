import type { FerryApp } from '../app.js';
import { z } from 'zod';
import { requireUser } from '../auth.js';
import type { ServerContext } from '../context.js';
import { parseInput } from '../validate.js';
import { auditView } from '../views.js';

const AuditQuery = z.object({ limit: z.coerce.number().int().min(1).max(10000).default(100) }).strict();

export function registerAuditRoutes(app: FerryApp, ctx: ServerContext): void {
  app.get('/v1/audit', async (req) => {
    const user = await requireUser(ctx.store, req, 'admin');
    const q = parseInput(AuditQuery, req.query, 'query');
    return { entries: (await ctx.store.listAudit(user.orgId, q.limit)).map(auditView) };
  });
}
