/** The storage of webhooks and their durable delivery queue (sqlite/webhooks.ts). */
import type { WebhookEvent, WebhookFormat } from '@ferry/protocol';

export interface WebhookRow {
  id: string;
  orgId: string;
  url: string;
  events: WebhookEvent[];
  format: WebhookFormat;
  /** Signs every delivery; shown to its creator once. */
  secret: string;
  createdBy: string;
  createdAt: number;
}

export interface NewDelivery {
  id: string;
  webhookId: string;
  event: WebhookEvent;
  taskId: string;
  body: string;
  createdAt: number;
}

/** A delivery to attempt now, with what sending it needs. */
export interface DueDelivery {
  id: string;
  event: WebhookEvent;
  body: string;
  /** Attempts made before this one. */
  attempts: number;
  url: string;
  secret: string;
}

export interface AttemptRow {
  at: number;
  httpStatus: number | null;
  error: string | null;
  durationMs: number;
}

export interface DeliveryRow {
  id: string;
  event: WebhookEvent;
  taskId: string;
  status: 'pending' | 'delivered' | 'failed';
  createdAt: number;
  nextAttemptAt: number | null;
  attempts: AttemptRow[];
}

/** What became of an attempt: delivered, to be tried again at `retryAt`, or given up. */
export type AttemptOutcome = { kind: 'delivered' } | { kind: 'retry'; retryAt: number } | { kind: 'failed' };

export interface WebhookStore {
  create(row: WebhookRow): Promise<void>;
  list(orgId: string): Promise<WebhookRow[]>;
  get(orgId: string, id: string): Promise<WebhookRow | undefined>;
  /** Removes the webhook; its pending deliveries end failed. */
  delete(orgId: string, id: string): Promise<boolean>;
  /** The organization's webhooks that want `event`. */
  subscribers(orgId: string, event: WebhookEvent): Promise<WebhookRow[]>;
  enqueue(deliveries: readonly NewDelivery[]): Promise<void>;
  /**
   * Claims up to `limit` deliveries due by `now`: each is pushed `leaseMs` ahead, so a server
   * that stops mid-attempt tries it again after a restart, and no other pass takes it meanwhile.
   */
  claimDue(now: number, leaseMs: number, limit: number): Promise<DueDelivery[]>;
  /** Records attempt number `attempts + 1` and its outcome, in one transaction. */
  recordAttempt(deliveryId: string, attempt: AttemptRow, outcome: AttemptOutcome): Promise<void>;
  /** The next time a delivery is due, if any is pending. */
  nextDue(): Promise<number | undefined>;
  deliveries(webhookId: string, limit: number): Promise<DeliveryRow[]>;
}
