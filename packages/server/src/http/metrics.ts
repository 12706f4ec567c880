/**
 * The server's Prometheus metrics (prom-client, one registry per server so tests and embedders
 * can run several). Two kinds:
 * - counted as things happen, in this process: HTTP requests by route and status, dispatch
 *   latency (queued → claimed), lease expiries by outcome, output bytes uploaded;
 * - read from the database at scrape time (refresh()): tasks by status, queue depth per target,
 *   agents online, stored output bytes. These are right after a restart and the same on every
 *   replica, so sum the counters across replicas but not these gauges.
 *
 * Labels never carry ids or anything a client sends, only route patterns, statuses and the
 * names of live targets, so the number of series stays bounded by what the operator created.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Store } from '../store/types.js';
import type { TaskEvents } from '../tasks/task-service.js';

/** Seconds from queued to claimed: an idle agent claims within milliseconds, a busy pool much later. */
const DISPATCH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Long polls hold a request up to 30 s, so the buckets reach past that. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class ServerMetrics implements TaskEvents {
  readonly registry = new Registry();
  private readonly httpRequests = new Counter({
    name: 'ferry_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: 'ferry_http_request_duration_seconds',
    help: 'Time to answer HTTP requests, by method and route pattern (agent long polls wait up to 30 s)',
    labelNames: ['method', 'route'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });
  private readonly dispatchLatency = new Histogram({
    name: 'ferry_dispatch_latency_seconds',
    help: 'Time from a task being created to an agent claiming it',
    buckets: DISPATCH_BUCKETS,
    registers: [this.registry],
  });
  private readonly leaseExpiries = new Counter({
    name: 'ferry_lease_expiries_total',
    help: 'Task leases that lapsed, by what became of the task (requeued: it never started; lost: it had started; cancelled: a cancel was pending)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly outputUploadedBytes = new Counter({
    name: 'ferry_output_uploaded_bytes_total',
    help: 'Bytes of task output agents uploaded (a resent chunk counts again)',
    registers: [this.registry],
  });
  private readonly tasks = new Gauge({
    name: 'ferry_tasks',
    help: 'Tasks in the database, by status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  private readonly queueDepth = new Gauge({
    name: 'ferry_queue_depth',
    help: 'Queued tasks per target (organization and target name)',
    labelNames: ['org', 'target'] as const,
    registers: [this.registry],
  });
  private readonly agentsOnline = new Gauge({
    name: 'ferry_agents_online',
    help: 'Agents heard from within the offline threshold, by pool (hosted or self-hosted)',
    labelNames: ['pool'] as const,
    registers: [this.registry],
  });
  private readonly storedOutput = new Gauge({
    name: 'ferry_output_stored_bytes',
    help: 'Task output stored, all organizations together (what the output quota counts)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  // ---- TaskEvents (called by the task service) ----

  claimed(createdAt: number, now: number): void {
    this.dispatchLatency.observe(Math.max(0, now - createdAt) / 1000);
  }

  leaseLapsed(outcome: 'requeued' | 'lost' | 'cancelled'): void {
    this.leaseExpiries.inc({ outcome });
  }

  outputUploaded(bytes: number): void {
    this.outputUploadedBytes.inc(bytes);
  }

  // ---- HTTP ----

  /** An `onResponse` hook: counts every answer, routed or not (404s share one route label). */
  observeRequest(req: FastifyRequest, reply: FastifyReply): void {
    const route = req.routeOptions.url ?? '(unmatched)';
    this.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    this.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  }

  /** Reads the database's figures into the gauges; called once per scrape. */
  async refresh(store: Store, onlineSince: number): Promise<void> {
    const snap = await store.metricsSnapshot(onlineSince);
    // Reset first: a target deleted or a status no longer present must not linger with its last value.
    this.tasks.reset();
    for (const { status, count } of snap.tasksByStatus) this.tasks.set({ status }, count);
    this.queueDepth.reset();
    for (const { org, target, count } of snap.queueDepth) this.queueDepth.set({ org, target }, count);
    this.agentsOnline.reset();
    for (const { hosted, count } of snap.agentsOnline) this.agentsOnline.set({ pool: hosted ? 'hosted' : 'self-hosted' }, count);
    this.storedOutput.set(snap.storedOutputBytes);
  }
}
