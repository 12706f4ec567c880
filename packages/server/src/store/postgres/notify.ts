/**
 * Wake-ups across replicas: every wake-up a replica's dispatch hub makes (a task to claim, a
 * cancel, key work, new output) is published with NOTIFY on one channel, and every replica
 * LISTENs on a connection of its own and hands what others published to its hub. Publishing is
 * batched per turn of the event loop (one round trip for a burst of uploads). The listening
 * connection reconnects when it drops; meanwhile the hub's one-second re-check keeps waits
 * short, and on reconnecting every waiter looks again, since notifications sent while it was
 * away are lost.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { HubRelay, HubSignal } from '../../dispatch.js';
import { clientConfig, type Db } from './db.js';

const CHANNEL = 'ferry_hub';
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

  constructor(private readonly opts: PgHubRelayOptions) {}

  /** Connects the listener; resolves once LISTEN is in force (or rejects when the first try fails). */
  start(): Promise<void> {
    return this.connect();
  }

  publish(signal: HubSignal): void {
    if (this.closed) return;
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
    const client = new pg.Client(clientConfig(this.opts.url));
    client.on('notification', (msg) => this.onNotification(msg.payload));
    client.on('error', (err) => {
      this.opts.onError?.(err, 'wake-up listener');
      this.lost(client);
    });
    client.on('end', () => this.lost(client));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    if (this.closed) {
      await client.end();
      return;
    }
    this.listener = client;
    this.retryMs = RECONNECT_MIN_MS;
  }

  private onNotification(text: string | undefined): void {
    if (text === undefined) return;
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch {
      return;
    }
    if (envelope.from !== this.replicaId) this.opts.deliver(envelope.s);
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
