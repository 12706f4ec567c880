/** Webhooks and their durable delivery queue in SQLite (webhook-types.ts). */
import type Database from 'better-sqlite3';
import type { WebhookEvent } from '@ferry/protocol';
import type { AttemptOutcome, AttemptRow, DeliveryRow, DueDelivery, NewDelivery, WebhookRow, WebhookStore } from '../webhook-types.js';
import type { Statements } from './output.js';
import { num, strOrNull, toDueDelivery, toWebhook, type Row } from './rows.js';

/* eslint-disable @typescript-eslint/require-await -- the interface is async for PostgreSQL; better-sqlite3 is synchronous */

export class SqliteWebhooks implements WebhookStore {
  constructor(
    private readonly db: Database.Database,
    private readonly stmt: Statements,
  ) {}

  async create(row: WebhookRow): Promise<void> {
    this.stmt('INSERT INTO webhooks (id, org_id, url, events, format, secret, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      row.id,
      row.orgId,
      row.url,
      JSON.stringify(row.events),
      row.format,
      row.secret,
      row.createdBy,
      row.createdAt,
    );
  }

  async list(orgId: string): Promise<WebhookRow[]> {
    return this.stmt('SELECT * FROM webhooks WHERE org_id = ? AND deleted_at IS NULL ORDER BY created_at, id')
      .all(orgId)
      .map((r) => toWebhook(r as Row));
  }

  async get(orgId: string, id: string): Promise<WebhookRow | undefined> {
    const r = this.stmt('SELECT * FROM webhooks WHERE org_id = ? AND id = ? AND deleted_at IS NULL').get(orgId, id) as Row | undefined;
    return r ? toWebhook(r) : undefined;
  }

  async delete(orgId: string, id: string): Promise<boolean> {
    return this.db.transaction((): boolean => {
      const r = this.stmt('UPDATE webhooks SET deleted_at = ? WHERE org_id = ? AND id = ? AND deleted_at IS NULL').run(Date.now(), orgId, id);
      if (r.changes !== 1) return false;
      this.stmt("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL WHERE webhook_id = ? AND status = 'pending'").run(id);
      return true;
    })();
  }

  async subscribers(orgId: string, event: WebhookEvent): Promise<WebhookRow[]> {
    return (await this.list(orgId)).filter((w) => w.events.includes(event));
  }

  async enqueue(deliveries: readonly NewDelivery[]): Promise<void> {
    const insert = this.stmt(
      `INSERT INTO webhook_deliveries (id, webhook_id, event, task_id, body, status, attempts, next_attempt_at, created_at)
      VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const d of deliveries) insert.run(d.id, d.webhookId, d.event, d.taskId, d.body, d.createdAt, d.createdAt);
    })();
  }

  async claimDue(now: number, leaseMs: number, limit: number): Promise<DueDelivery[]> {
    return this.db.transaction((): DueDelivery[] => {
      const due = this.stmt(
        `SELECT d.id, d.event, d.body, d.attempts, w.url, w.secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.deleted_at IS NULL ORDER BY d.next_attempt_at, d.id LIMIT ?`,
      ).all(now, limit) as Row[];
      const lease = this.stmt("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ? AND status = 'pending'");
      for (const r of due) lease.run(now + leaseMs, r.id);
      return due.map(toDueDelivery);
    })();
  }

  async recordAttempt(deliveryId: string, attempt: AttemptRow, outcome: AttemptOutcome): Promise<void> {
    this.db.transaction(() => {
      const r = this.stmt('SELECT attempts FROM webhook_deliveries WHERE id = ?').get(deliveryId) as Row | undefined;
      if (!r) return;
      const n = num(r.attempts) + 1;
      this.stmt('INSERT INTO webhook_attempts (delivery_id, n, at, http_status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)').run(
        deliveryId,
        n,
        attempt.at,
        attempt.httpStatus,
        attempt.error,
        attempt.durationMs,
      );
      const status = outcome.kind === 'retry' ? 'pending' : outcome.kind;
      const next = outcome.kind === 'retry' ? outcome.retryAt : null;
      this.stmt("UPDATE webhook_deliveries SET attempts = ?, status = ?, next_attempt_at = ? WHERE id = ? AND status = 'pending'").run(
        n,
        status,
        next,
        deliveryId,
      );
    })();
  }

  async nextDue(): Promise<number | undefined> {
    const r = this.stmt("SELECT MIN(next_attempt_at) AS at FROM webhook_deliveries WHERE status = 'pending'").get() as Row;
    return r.at === null ? undefined : num(r.at);
  }

  async deliveries(webhookId: string, limit: number): Promise<DeliveryRow[]> {
    const rows = this.stmt('SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT ?').all(webhookId, limit) as Row[];
    const attempts = this.stmt('SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY n');
    return rows.map((r) => ({
      id: String(r.id),
      event: r.event as WebhookEvent,
      taskId: String(r.task_id),
      status: r.status as DeliveryRow['status'],
      createdAt: num(r.created_at),
      nextAttemptAt: r.status === 'pending' && r.next_attempt_at !== null ? num(r.next_attempt_at) : null,
      attempts: (attempts.all(r.id) as Row[]).map((a) => ({
        at: num(a.at),
        httpStatus: a.http_status === null ? null : num(a.http_status),
        error: strOrNull(a.error),
        durationMs: num(a.duration_ms),
      })),
    }));
  }
}
