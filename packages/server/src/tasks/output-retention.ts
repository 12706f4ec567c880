/**
 * Output retention: the stored output of tasks that finished longer ago than the server's
 * `outputRetention` is removed, a bounded batch per transaction so readers and writers are not
 * held up, and one audit entry per organization per pass. The task rows stay (status, exit
 * code, who ran what), marked with when their output went, so `task show` can say so.
 *
 * SQLite reuses the freed pages for new output; the file does not shrink by itself (`VACUUM`
 * while the server is stopped returns them to the disk).
 */
import { formatDuration } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { AuditInput, Store } from '../store/types.js';

/** Tasks whose output one transaction removes: a few milliseconds of work. */
const BATCH_TASKS = 200;
/** How often a pass runs; retention is counted in days, so this is plenty. */
const PASS_EVERY_MS = 10 * 60 * 1000;

export interface OutputRetentionDeps {
  store: Store;
  retentionSeconds: number;
  log: Logger;
  audit(entry: Omit<AuditInput, 'at'>): Promise<void>;
}

export class OutputRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly deps: OutputRetentionDeps) {}

  /** Runs a pass now and then every ten minutes; nothing when retention is off (0). */
  start(): void {
    if (this.deps.retentionSeconds <= 0) return;
    const pass = (): void => {
      this.running ??= this.sweep()
        .then(() => undefined)
        .catch((err: unknown) => this.deps.log.error({ err }, 'output retention pass failed'))
        .finally(() => (this.running = undefined));
    };
    pass();
    this.timer = setInterval(pass, PASS_EVERY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass: removes every due task's output, batch by batch. Returns how many tasks' output went. */
  async sweep(now = Date.now()): Promise<number> {
    const before = now - this.deps.retentionSeconds * 1000;
    const perOrg = new Map<string, { tasks: number; bytes: number }>();
    let removed = 0;
    for (;;) {
      if (this.stopped) break;
      const batch = await this.deps.store.expireOutput(before, now, BATCH_TASKS);
      const tasks = batch.reduce((n, e) => n + e.tasks, 0);
      for (const e of batch) {
        const sum = perOrg.get(e.orgId) ?? { tasks: 0, bytes: 0 };
        perOrg.set(e.orgId, { tasks: sum.tasks + e.tasks, bytes: sum.bytes + e.bytes });
      }
      removed += tasks;
      if (tasks < BATCH_TASKS) break;
      // Let requests in between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (const [orgId, sum] of perOrg) {
      await this.deps.audit({
        orgId,
        actor: 'server',
        action: 'output.expire',
        subject: 'tasks',
        details: { ...sum, retention: formatDuration(this.deps.retentionSeconds) },
      });
    }
    if (removed > 0) this.deps.log.info({ tasks: removed }, 'removed task output past its retention');
    return removed;
  }
}
