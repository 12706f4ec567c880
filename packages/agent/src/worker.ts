/**
 * The agent's worker: the poll loop (poll-loop.ts) brings tasks, each runs in a TaskRunner,
 * heartbeats (heartbeats.ts) keep their leases, key work goes to key-custody.ts, and tasks
 * spooled by an earlier run are delivered first (spool-recovery.ts).
 *
 * States: working (polling; tasks run as they come) → draining (the first stop(): no new
 * work, running tasks finish; a second stop() cancels them through the signal ladder)
 * → stopped (every runner and recovery has ended; run() resolves). A refused credential (a
 * poll or a heartbeat answering 401/403) cancels the running tasks, waits for them, and
 * rejects run() with a FatalAgentError.
 */
import type { Logger } from 'pino';
import type { FerryClient } from '@ferry/client';
import type { Assignment } from '@ferry/protocol';
import { agentClient, type StoredCredential } from './credential.js';
import type { Executor } from './executor/types.js';
import { Heartbeats } from './heartbeats.js';
import { KeyCustody } from './key-custody.js';
import { PollLoop } from './poll-loop.js';
import type { KeyStore } from './secrets/key-store.js';
import { fatalFrom, FatalAgentError } from './server-answers.js';
import { recoverSpools } from './spool-recovery.js';
import { TaskRunner } from './task-runner.js';

export interface WorkerOptions {
  credential: StoredCredential;
  keys: KeyStore;
  spoolDir: string;
  executor: Executor;
  concurrency: number;
  graceMs: number;
  pollWaitSeconds: number;
  log: Logger;
}

export class Worker {
  readonly client: FerryClient;
  private readonly runners = new Map<string, TaskRunner>();
  /** Tasks from an earlier run whose output and status are being delivered. */
  private readonly recovering = new Set<string>();
  /** Runners and recoveries not yet ended (these promises never reject). */
  private readonly pending = new Set<Promise<void>>();
  private readonly stopping = new AbortController();
  private readonly loop: PollLoop;
  private readonly heartbeats: Heartbeats;
  private fatal: FatalAgentError | undefined;

  constructor(private readonly opts: WorkerOptions) {
    this.client = agentClient(opts.credential);
    this.heartbeats = new Heartbeats(
      this.client,
      {
        held: () => [...this.runners.keys(), ...this.recovering],
        cancel: (id) => this.runners.get(id)?.stop('cancelled'),
        revoke: (id) => this.runners.get(id)?.stop('lease_lost'),
        fatal: (err) => this.failFatal(err),
      },
      opts.log,
    );
    const keys = new KeyCustody(this.client, opts.keys, opts.credential.agentId, opts.log, this.stopping.signal);
    this.loop = new PollLoop(
      this.client,
      {
        free: () => opts.concurrency - this.runners.size,
        running: () => [...this.runners.keys()],
        onTask: (task) => this.startRunner(task),
        onCancel: (id) => this.runners.get(id)?.stop('cancelled'),
        keys: () => keys.announcement(),
        keysAnnounced: () => keys.announcedOk(),
        onKeyWork: (answer) => keys.handle(answer),
      },
      { waitSeconds: opts.pollWaitSeconds, stop: this.stopping.signal, log: opts.log },
    );
  }

  /** Runs until stopped (resolves) or a fatal error (rejects). */
  async run(): Promise<void> {
    this.recover();
    try {
      await this.loop.run();
    } catch (err) {
      this.fatal ??= fatalFrom(err) ?? new FatalAgentError('the poll loop failed', { cause: err });
    }
    if (this.fatal) this.cancelAll();
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    this.heartbeats.stop();
    await this.client.close();
    if (this.fatal) throw this.fatal;
  }

  /** First call drains; a second call also cancels running tasks. */
  stop(): void {
    if (this.stopping.signal.aborted) this.cancelAll();
    else this.stopping.abort();
  }

  get runningCount(): number {
    return this.runners.size;
  }

  private failFatal(err: FatalAgentError): void {
    this.fatal ??= err;
    this.stop();
  }

  private cancelAll(): void {
    for (const r of this.runners.values()) r.stop('cancelled');
  }

  private recover(): void {
    for (const { taskId, delivered } of recoverSpools(this.opts.spoolDir, this.client, this.opts.log)) {
      this.recovering.add(taskId);
      this.heartbeats.start();
      this.track(
        delivered.finally(() => {
          this.recovering.delete(taskId);
          this.taskEnded();
        }),
      );
    }
  }

  /** Starts the task's runner; resolves once the server has answered its start confirmation. */
  private startRunner(task: Assignment): Promise<boolean> {
    const { executor, log, graceMs, keys, spoolDir } = this.opts;
    const runner = new TaskRunner(task, { client: this.client, executor, log, graceMs, keys, spoolDir });
    this.runners.set(task.id, runner);
    this.heartbeats.start();
    this.track(
      runner
        .run()
        .catch((err: unknown) => log.error({ err, taskId: task.id }, 'task runner crashed'))
        .finally(() => {
          // The ended sandbox's removal may go on: the slot is free, and a stop waits for it.
          this.track(runner.removed);
          this.runners.delete(task.id);
          this.taskEnded();
          this.loop.slotFreed();
        }),
    );
    return runner.startConfirmed;
  }

  private track(ended: Promise<void>): void {
    this.pending.add(ended);
    void ended.finally(() => this.pending.delete(ended));
  }

  /** Heartbeats stop once nothing is left to report. */
  private taskEnded(): void {
    if (this.runners.size === 0 && this.recovering.size === 0) this.heartbeats.stop();
  }
}
