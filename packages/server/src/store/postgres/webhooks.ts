/**
 * Webhooks and their durable delivery queue in PostgreSQL (webhook-types.ts). Every replica
 * runs the delivery loop: a claim locks its rows with SKIP LOCKED and pushes them a lease
 * ahead in the same transaction, so two replicas never attempt the same delivery at once.
 */
import type { WebhookEvent } from '@ferry/protocol';
import type { AttemptOutcome, AttemptRow, DeliveryRow, DueDelivery, NewDelivery, WebhookRow, WebhookStore } from '../webhook-types.js';
import { num, strOrNull, toDueDelivery, toWebhook } from '../sqlite/rows.js';
import type { Db } from './db.js';

export class PgWebhooks implements WebhookStore {
  constructor(private readonly db: Db) {}

  async create(row: WebhookRow): Promise<void> {
    await this.db.run('INSERT INTO webhooks (id, org_id, url, events, format, secret, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
      row.id,
      row.orgId,
      row.url,
      JSON.stringify(row.events),
      row.format,
      row.secret,
      row.createdBy,
      row.createdAt,
    ]);
  }

  async list(orgId: string): Promise<WebhookRow[]> {
    return (await this.db.all('SELECT * FROM webhooks WHERE org_id = ? AND deleted_at IS NULL ORDER BY created_at, id', [orgId])).map(toWebhook);
  }

  async get(orgId: string, id: string): Promise<WebhookRow | undefined> {
    const r = await this.db.one('SELECT * FROM webhooks WHERE org_id = ? AND id = ? AND deleted_at IS NULL', [orgId, id]);
    return r ? toWebhook(r) : undefined;
  }

  async delete(orgId: string, id: string): Promise<boolean> {
    return this.db.tx(async (sql) => {
      if ((await sql.run('UPDATE webhooks SET deleted_at = ? WHERE org_id = ? AND id = ? AND deleted_at IS NULL', [Date.now(), orgId, id])) !== 1) return false;
      await sql.run("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL WHERE webhook_id = ? AND status = 'pending'", [id]);
      return true;
    });
  }

  async subscribers(orgId: string, event: WebhookEvent): Promise<WebhookRow[]> {
    return (await this.list(orgId)).filter((w) => w.events.includes(event));
  }

  async enqueue(deliveries: readonly NewDelivery[]): Promise<void> {
    await this.db.tx(async (sql) => {
      for (const d of deliveries) {
        await sql.run(
          `INSERT INTO webhook_deliveries (id, webhook_id, event, task_id, body, status, attempts, next_attempt_at, created_at)
          VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
          [d.id, d.webhookId, d.event, d.taskId, d.body, d.createdAt, d.createdAt],
        );
      }
    });
  }

  async claimDue(now: number, leaseMs: number, limit: number): Promise<DueDelivery[]> {
    // One statement (one round trip, and no transaction of its own to begin and commit): every
    // replica asks four times a second, nearly always to hear that nothing is due. The rows are
    // locked as they are picked (SKIP LOCKED: another replica's claim passes over them) and
    // leased in the same statement.
    const due = await this.db.all(
      `WITH due AS (
        SELECT d.id, d.event, d.body, d.attempts, w.url, w.secret, d.next_attempt_at AS due_at FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.deleted_at IS NULL ORDER BY d.next_attempt_at, d.id LIMIT ?
        FOR UPDATE OF d SKIP LOCKED),
      leased AS (UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id IN (SELECT id FROM due) AND status = 'pending' RETURNING id)
      SELECT due.* FROM due JOIN leased ON leased.id = due.id ORDER BY due.due_at, due.id`,
      [now, limit, now + leaseMs],
    );
    return due.map(toDueDelivery);
  }

  async recordAttempt(deliveryId: string, attempt: AttemptRow, outcome: AttemptOutcome): Promise<void> {
    await this.db.tx(async (sql) => {
      const r = await sql.one('SELECT attempts FROM webhook_deliveries WHERE id = ? FOR UPDATE', [deliveryId]);
      if (!r) return;
      const n = num(r.attempts) + 1;
      await sql.run('INSERT INTO webhook_attempts (delivery_id, n, at, http_status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)', [
        deliveryId,
        n,
        attempt.at,
        attempt.httpStatus,
        attempt.error,
        Math.round(attempt.durationMs),
      ]);
      const status = outcome.kind === 'retry' ? 'pending' : outcome.kind;
      const next = outcome.kind === 'retry' ? outcome.retryAt : null;
      await sql.run("UPDATE webhook_deliveries SET attempts = ?, status = ?, next_attempt_at = ? WHERE id = ? AND status = 'pending'", [
        n,
        status,
        next,
        deliveryId,
      ]);
    });
  }

  async nextDue(): Promise<number | undefined> {
    const r = await this.db.one("SELECT MIN(next_attempt_at) AS at FROM webhook_deliveries WHERE status = 'pending'");
    return r?.at === null || r?.at === undefined ? undefined : num(r.at);
  }

  async deliveries(webhookId: string, limit: number): Promise<DeliveryRow[]> {
    const rows = await this.db.all('SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT ?', [webhookId, limit]);
    const out: DeliveryRow[] = [];
    for (const r of rows) {
      const attempts = await this.db.all('SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY n', [r.id]);
      out.push({
        id: String(r.id),
        event: r.event as WebhookEvent,
        taskId: String(r.task_id),
        status: r.status as DeliveryRow['status'],
        createdAt: num(r.created_at),
        nextAttemptAt: r.status === 'pending' && r.next_attempt_at !== null ? num(r.next_attempt_at) : null,
        attempts: attempts.map((a) => ({
          at: num(a.at),
          httpStatus: a.http_status === null ? null : num(a.http_status),
          error: strOrNull(a.error),
          durationMs: num(a.duration_ms),
        })),
      });
    }
    return out;
  }
}
