/**
 * Wire schemas of webhooks: an organization's HTTPS receivers of task events, each signed with
 * its own secret (shown once), delivered from a durable queue with retries.
 *
 * Each delivery is a POST whose headers carry its id, a timestamp (Unix seconds) and
 * `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`; the README gives a receiver's check.
 */
import { z } from 'zod';

export const WEBHOOK_EVENTS = ['task.pending_review', 'task.approved', 'task.rejected', 'task.finished'] as const;
export const WebhookEvent = z.enum(WEBHOOK_EVENTS);
export type WebhookEvent = z.infer<typeof WebhookEvent>;
export const WebhookFormat = z.enum(['json', 'slack']);
export type WebhookFormat = z.infer<typeof WebhookFormat>;

/** Delivery headers (lower case, as Node gives them). */
export const WebhookHeaders = {
  id: 'ferry-webhook-id',
  event: 'ferry-webhook-event',
  timestamp: 'ferry-webhook-timestamp',
  signature: 'ferry-webhook-signature',
} as const;

export const CreateWebhookRequest = z
  .object({
    url: z
      .string()
      .max(2000)
      .url()
      .refine((u) => u.startsWith('https://'), 'a webhook URL must be https://'),
    events: z.array(WebhookEvent).min(1).max(WEBHOOK_EVENTS.length),
    format: WebhookFormat.default('json'),
  })
  .strict();

export const WebhookInfo = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(WebhookEvent),
  format: WebhookFormat,
  createdBy: z.string(),
  createdAt: z.string(),
});
export type WebhookInfo = z.infer<typeof WebhookInfo>;
/** The signing secret is shown here, once. */
export const WebhookCreated = WebhookInfo.extend({ secret: z.string() });

export const WebhookAttempt = z.object({
  at: z.string(),
  /** The receiver's HTTP status, or null when none came (refused, timed out, TLS). */
  httpStatus: z.number().int().nullable(),
  error: z.string().nullable(),
  durationMs: z.number().int(),
});

export const WebhookDelivery = z.object({
  id: z.string(),
  event: WebhookEvent,
  taskId: z.string(),
  /** pending: will be tried (again) at nextAttemptAt; delivered: a 2xx came; failed: every attempt failed. */
  status: z.enum(['pending', 'delivered', 'failed']),
  createdAt: z.string(),
  nextAttemptAt: z.string().nullable(),
  attempts: z.array(WebhookAttempt),
});
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;
export const WebhookDeliveriesQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) }).strict();
