/**
 * Wake-ups across replicas: every wake-up a replica's dispatch hub makes (a task to claim, a
 * cancel, key work, new output) is published with NOTIFY on one channel, and every replica
 * LISTENs on a connection of its own and hands what others published to its hub. Publishing is
 * batched per turn of the event loop (one round trip for a burst of uploads). The listening
 * connection reconnects when it drops; meanwhile the hub's one-second re-check keeps waits
 * short, and on reconnecting every waiter looks again, since notifications sent while it was
 * away are lost.
 *
 * A replica alone on its database publishes nothing: each NOTIFY is a statement, and is also
 * delivered back to this replica's own listener, several per task (a task to claim, its start,
 * its end, output), for nobody. Other replicas are seen two ways: their listening connections,
 * which carry an application name of their own, in `pg_stat_activity` (looked at when this one
 * starts, when its listener comes back, and every PRESENCE_LOOK_MS), and the hello each replica
 * publishes once its LISTEN is in force, which tells the replicas already there at once. So a
 * new replica's wake-ups reach the others from its first request, and theirs reach it as soon
 * as its hello arrives; if a hello is lost, the next look finds the replica, and meanwhile its
 * waits re-check every second as they do for any lost notification.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { HubRelay, HubSignal } from '../../dispatch.js';
import { clientConfig, type Db } from './db.js';

const CHANNEL = 'ferry_hub';
/** The listening connection's application name: how replicas find each other in pg_stat_activity. */
const LISTENER_APPLICATION = 'ferry-server-listen';
/** How often a replica looks for other replicas' listeners (a hello is the fast way; this the fallback). */
const PRESENCE_LOOK_MS = 2000;
const OTHER_LISTENERS = 'SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = ? AND pid <> ?) AS others';
/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_PAYLOAD = 7900;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

interface Envelope {
  from: string;
  s: HubSignal;
}

export interface PgHubRelayOptions {
  db: Db;
  url: string;
  /** Called with each wake-up another replica published. */
  deliver: (signal: HubSignal) => void;
  /** Called after the listening connection came back: notifications may have been missed. */
  resync: () => void;
  onError?: (err: unknown, what: string) => void;
}

export class PgHubRelay implements HubRelay {
  /** Tells this replica's own notifications (already applied here) from the others'. */
  readonly replicaId = randomUUID();
  private pending = new Set<string>();
  private flushing = false;
  private listener: pg.Client | undefined;
  private closed = false;
  private retryMs = RECONNECT_MIN_MS;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private lookTimer: NodeJS.Timeout | undefined;
  /** What the last look at pg_stat_activity found, and when that look began. */
  private othersFound = false;
  private lookedAt = -Infinity;
  /** When another replica's notification last arrived (hello or wake-up). */
  private heardAt = -Infinity;
  private listenerBackend = 0;

  constructor(private readonly opts: PgHubRelayOptions) {}

  /**
   * Connects the listener; resolves once LISTEN is in force, the other replicas were looked for
   * and this one's hello is on its way (or rejects when the first try fails).
   */
  async start(): Promise<void> {
    await this.connect();
    this.lookTimer = setInterval(() => void this.look(), PRESENCE_LOOK_MS);
    this.lookTimer.unref();
  }

  /** True while another replica may be listening: found by the last look, or heard from since it began. */
  get othersListening(): boolean {
    return this.othersFound || this.heardAt >= this.lookedAt;
  }

  private async look(): Promise<void> {
    const began = performance.now();
    try {
      const r = await this.opts.db.one(OTHER_LISTENERS, [LISTENER_APPLICATION, this.listenerBackend]);
      this.othersFound = r?.others === true;
      this.lookedAt = began;
    } catch (err) {
      // Unknown: publish, as before there were looks.
      this.othersFound = true;
      this.opts.onError?.(err, 'looking for other replicas');
    }
  }

  publish(signal: HubSignal): void {
    if (this.closed || !this.othersListening) return;
    this.send(signal);
  }

  private send(signal: HubSignal): void {
    this.pending.add(payload({ from: this.replicaId, s: signal }));
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => void this.flush());
    }
  }

  private async flush(): Promise<void> {
    const batch = [...this.pending];
    this.pending = new Set();
    try {
      if (batch.length > 0 && !this.closed) await this.opts.db.run('SELECT pg_notify(?, p) FROM unnest(?::text[]) AS p', [CHANNEL, batch]);
    } catch (err) {
      // Lost wake-ups cost at most the re-check interval.
      this.opts.onError?.(err, 'publishing wake-ups');
    } finally {
      this.flushing = false;
      if (this.pending.size > 0) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    }
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ ...clientConfig(this.opts.url), application_name: LISTENER_APPLICATION });
    client.on('notification', (msg) => this.onNotification(msg.payload));
    client.on('error', (err) => {
      this.opts.onError?.(err, 'wake-up listener');
      this.lost(client);
    });
    client.on('end', () => this.lost(client));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    const backend = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    if (this.closed) {
      await client.end();
      return;
    }
    this.listener = client;
    this.listenerBackend = backend.rows[0]?.pid ?? 0;
    this.retryMs = RECONNECT_MIN_MS;
    await this.look();
    // Sent whether or not others were found: one statement per start, and a replica that was
    // just starting too may have missed this one in its look.
    this.send({ kind: 'hello' });
  }

  private onNotification(text: string | undefined): void {
    if (text === undefined) return;
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch {
      return;
    }
    if (envelope.from === this.replicaId) return;
    this.heardAt = performance.now();
    this.opts.deliver(envelope.s);
  }

  private lost(client: pg.Client): void {
    if (this.listener !== client && this.listener !== undefined) return;
    this.listener = undefined;
    client.removeAllListeners('end');
    void client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(RECONNECT_MAX_MS, this.retryMs * 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().then(
        () => this.opts.resync(),
        (err: unknown) => {
          this.opts.onError?.(err, 'reconnecting the wake-up listener');
          this.scheduleReconnect();
        },
      );
    }, wait);
  }

  /** Test hook and operator tool: the listening connection's backend pid (to see it dropped and replaced). */
  async listenerPid(): Promise<number | undefined> {
    const r = await this.listener?.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return r?.rows[0]?.pid;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.lookTimer);
    const client = this.listener;
    this.listener = undefined;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}

/** The envelope as text; a task wake-up too long for NOTIFY drops its key holders (waking more agents is harmless). */
function payload(envelope: Envelope): string {
  const text = JSON.stringify(envelope);
  if (text.length <= MAX_PAYLOAD || envelope.s.kind !== 'task') return text;
  return JSON.stringify({ ...envelope, s: { ...envelope.s, holders: null } });
}
