import { FerryError, Routes, type WebhookDelivery, type WebhookInfo } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import type { UserPrincipal } from '../auth.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { newId } from '../ids.js';
import type { DeliveryRow, WebhookRow } from '../store/webhook-types.js';
import { newWebhookSecret } from '../webhooks/service.js';

const iso = (ms: number): string => new Date(ms).toISOString();

function webhookView(row: WebhookRow): WebhookInfo {
  return { id: row.id, url: row.url, events: row.events, format: row.format, createdBy: row.createdBy, createdAt: iso(row.createdAt) };
}

function deliveryView(row: DeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    event: row.event,
    taskId: row.taskId,
    status: row.status,
    createdAt: iso(row.createdAt),
    nextAttemptAt: row.nextAttemptAt === null ? null : iso(row.nextAttemptAt),
    attempts: row.attempts.map((a) => ({ at: iso(a.at), httpStatus: a.httpStatus, error: a.error, durationMs: a.durationMs })),
  };
}

async function webhookOf(ctx: ServerContext, user: UserPrincipal, id: string): Promise<WebhookRow> {
  const row = await ctx.store.webhooks.get(user.orgId, id);
  if (!row) throw new FerryError('FERRY_E_WEBHOOK_NOT_FOUND', `No webhook with id "${id}". \`ferry webhook list\` shows them.`);
  return row;
}

/** Webhooks are the organization's, so admins manage them; the secret is shown once, at creation. */
export function registerWebhookRoutes(app: FerryApp, ctx: ServerContext): void {
  addRoute(
    app,
    ctx,
    Routes.createWebhook,
    async ({ caller: user, body }) => {
      const row: WebhookRow = {
        id: newId('w'),
        orgId: user.orgId,
        url: body.url,
        events: [...new Set(body.events)],
        format: body.format,
        secret: newWebhookSecret(),
        createdBy: user.actor,
        createdAt: Date.now(),
      };
      await ctx.store.webhooks.create(row);
      // The URL may carry a token of the receiver's (Slack's do): the audit records its origin only.
      await ctx.audit({
        orgId: user.orgId,
        actor: user.actor,
        action: 'webhook.create',
        subject: row.id,
        details: { origin: new URL(row.url).origin, events: row.events, format: row.format },
      });
      return { ...webhookView(row), secret: row.secret };
    },
    { role: 'admin', what: 'webhook' },
  );

  addRoute(app, ctx, Routes.listWebhooks, async ({ caller: user }) => ({ webhooks: (await ctx.store.webhooks.list(user.orgId)).map(webhookView) }), {
    role: 'admin',
  });

  addRoute(
    app,
    ctx,
    Routes.deleteWebhook,
    async ({ caller: user, params }) => {
      const row = await webhookOf(ctx, user, params.id);
      await ctx.store.webhooks.delete(user.orgId, row.id);
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'webhook.delete', subject: row.id, details: { origin: new URL(row.url).origin } });
    },
    { role: 'admin' },
  );

  addRoute(
    app,
    ctx,
    Routes.listWebhookDeliveries,
    async ({ caller: user, params, query }) => {
      const row = await webhookOf(ctx, user, params.id);
      return { deliveries: (await ctx.store.webhooks.deliveries(row.id, query.limit)).map(deliveryView) };
    },
    { role: 'admin' },
  );
}
