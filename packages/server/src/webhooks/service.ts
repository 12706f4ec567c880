/**
 * Webhooks: task events become deliveries in a durable queue (the database), and a deliverer
 * sends them, signed, off the task's path: a state change only adds rows; a receiver that hangs
 * holds one of a few delivery slots for at most the attempt timeout, never a task. Failed
 * attempts are retried with exponential backoff and jitter (config `webhookRetryBase`,
 * `webhookMaxAttempts`); every attempt is recorded. A delivery being sent is leased in the
 * database, so one cut short by a stop or crash is sent again after a restart: receivers see
 * each delivery at least once and can drop repeats by its id (`ferry-webhook-id`).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import { WebhookHeaders, type WebhookEvent } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config.js';
import { newId } from '../ids.js';
import type { Store, TaskRow } from '../store/types.js';
import type { AttemptOutcome, AttemptRow, DueDelivery } from '../store/webhook-types.js';
import { webhookBody } from './payload.js';

/** One attempt may take this long (connect, TLS, answer) before it counts as failed. */
const ATTEMPT_TIMEOUT_MS = 10_000;
/** A claimed delivery is not taken again for this long (longer than an attempt). */
const CLAIM_LEASE_MS = 60_000;
const MAX_IN_FLIGHT = 8;
const POLL_MS = 250;
const MAX_RETRY_SECONDS = 3600;

/** `v1=` + hex HMAC-SHA256 over `<timestamp>.<body>` (see the README's receiver recipe). */
export function webhookSignature(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/** The wait before retry `n` (1 = the first retry): base·2^(n-1), at most an hour, times 0.5–1.5. */
export function retryDelayMs(n: number, baseSeconds: number, random = Math.random): number {
  const seconds = Math.min(baseSeconds * 2 ** (n - 1), MAX_RETRY_SECONDS);
  return Math.round(seconds * 1000 * (0.5 + random()));
}

export interface WebhookDeps {
  store: Store;
  config: ServerConfig;
  log: Logger;
  publicUrl(): string;
}

export class Webhooks {
  private readonly log: Logger;
  private readonly ca: string[];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private ticking = false;
  private stopped = false;

  constructor(private readonly deps: WebhookDeps) {
    this.log = deps.log.child({ part: 'webhooks' });
    this.ca = deps.config.webhookCa ? [...rootCertificates, readFileSync(deps.config.webhookCa, 'utf8')] : [...rootCertificates];
  }

  /**
   * Queues a delivery of `event` to each webhook of the task's organization that wants it.
   * Called after the task's state change; it never throws (a queueing failure is logged, the
   * task goes on).
   */
  taskEvent(event: WebhookEvent, task: Pick<TaskRow, 'id' | 'orgId'>): void {
    this.enqueue(event, task).catch((err: unknown) => this.log.error({ err, taskId: task.id, event }, 'could not queue webhook deliveries'));
  }

  private async enqueue(event: WebhookEvent, ref: Pick<TaskRow, 'id' | 'orgId'>): Promise<void> {
    const { store } = this.deps;
    const hooks = await store.webhooks.subscribers(ref.orgId, event);
    if (hooks.length === 0) return;
    const task = await store.getTask(ref.orgId, ref.id);
    if (!task) return;
    const decisions = task.review ? await store.listReviewDecisions(task.id) : [];
    const now = Date.now();
    const deliveries = hooks.map((hook) => {
      const id = newId('d');
      const body = webhookBody(hook.format, { deliveryId: id, event, task, decisions, publicUrl: this.deps.publicUrl(), at: now });
      return { id, webhookId: hook.id, event, taskId: task.id, body, createdAt: now };
    });
    await store.webhooks.enqueue(deliveries);
    this.kick();
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), POLL_MS);
    this.timer.unref();
    this.kick();
  }

  /** Stops taking deliveries and waits for the attempts under way (each ends within its timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.inFlight]);
  }

  /** Takes what is due, up to the free slots; each attempt runs on its own. */
  private kick(): void {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    this.claim()
      .catch((err: unknown) => this.log.error({ err }, 'webhook queue pass failed'))
      .finally(() => {
        this.ticking = false;
      });
  }

  private async claim(): Promise<void> {
    const free = MAX_IN_FLIGHT - this.inFlight.size;
    if (free <= 0) return;
    for (const delivery of await this.deps.store.webhooks.claimDue(Date.now(), CLAIM_LEASE_MS, free)) {
      const attempt: Promise<void> = this.attempt(delivery)
        .catch((err: unknown) => this.log.error({ err, deliveryId: delivery.id }, 'webhook attempt not recorded'))
        .finally(() => {
          this.inFlight.delete(attempt);
          this.kick();
        });
      this.inFlight.add(attempt);
    }
  }

  private async attempt(delivery: DueDelivery): Promise<void> {
    const started = Date.now();
    const answer = await send(delivery, this.ca);
    const row: AttemptRow = { at: started, httpStatus: answer.status, error: answer.error, durationMs: Date.now() - started };
    const ok = answer.status !== null && answer.status >= 200 && answer.status < 300;
    const n = delivery.attempts + 1;
    const { webhookMaxAttempts, webhookRetryBase } = this.deps.config;
    const outcome: AttemptOutcome = ok
      ? { kind: 'delivered' }
      : n >= webhookMaxAttempts
        ? { kind: 'failed' }
        : { kind: 'retry', retryAt: Date.now() + retryDelayMs(n, webhookRetryBase) };
    await this.deps.store.webhooks.recordAttempt(delivery.id, row, outcome);
    if (!ok)
      this.log.warn({ deliveryId: delivery.id, attempt: n, status: answer.status, error: answer.error, outcome: outcome.kind }, 'webhook attempt failed');
  }
}

/** One POST; resolves with the receiver's status or why there was none (never rejects). */
function send(delivery: DueDelivery, ca: string[]): Promise<{ status: number | null; error: string | null }> {
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'ferry-webhooks',
    [WebhookHeaders.id]: delivery.id,
    [WebhookHeaders.event]: delivery.event,
    [WebhookHeaders.timestamp]: String(timestamp),
    [WebhookHeaders.signature]: webhookSignature(delivery.secret, timestamp, delivery.body),
  };
  return new Promise((resolve) => {
    let settled = false;
    const done = (status: number | null, error: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, error });
    };
    const req = request(delivery.url, { method: 'POST', headers, ca, signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS + 1000) }, (res) => {
      res.resume(); // the answer's body is not read, only its status
      res.on('end', () => done(res.statusCode ?? null, null));
      res.on('error', (err) => done(res.statusCode ?? null, err.message));
    });
    const timer = setTimeout(() => {
      done(null, `no answer within ${ATTEMPT_TIMEOUT_MS / 1000}s`);
      req.destroy();
    }, ATTEMPT_TIMEOUT_MS);
    req.on('error', (err) => done(null, err.message));
    req.end(delivery.body);
  });
}
