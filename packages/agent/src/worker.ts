/**
 * The agent's main loop.
 *
 * Poll loop states: polling (a long poll is open; `free` says how many tasks we can take)
 * → got task (start a runner, poll again at once) | got cancels (stop those runners)
 * | empty (poll again) | failed (back off with jitter, poll again; 401/403 stop the agent).
 * When a runner finishes while the poll is open with free = 0, that poll is aborted and a
 * new one opens with free > 0 so the next task starts without waiting out the long poll.
 *
 * Heartbeats run beside it while any task runs: they renew leases and bring cancellations
 * and revocations (tasks the server gave to someone else).
 *
 * Drain: the first stop() stops taking work and waits for running tasks; a second one
 * cancels them through the signal ladder.
 */
import type { Logger } from 'pino';
import { FERRY_VERSION, PollResponse, type HeartbeatResponse } from '@ferry/protocol';
import { ApiClient } from './api/client.js';
import { backoffMs, isFatal, isRetryable } from './api/errors.js';
import type { Executor } from './executor/types.js';
import { TaskRunner } from './task-runner.js';
import { TaskSpool } from './output/spool.js';
import { OutputUploader } from './output/uploader.js';
import { deliverFinalStatus } from './output/deliver.js';
import type { StoredCredential } from './credential.js';
import { createPublicKey } from 'node:crypto';
import { generateSealingKeyPair } from './secrets/envelope.js';
import type { KeyStore } from './secrets/key-store.js';

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

export class FatalAgentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FatalAgentError';
  }
}

export class Worker {
  readonly client: ApiClient;
  private readonly runners = new Map<string, TaskRunner>();
  private readonly finished = new Set<Promise<void>>();
  private draining = false;
  private pollAbort: AbortController | undefined;
  /** `free` of the poll in flight: only a poll that cannot claim (free = 0) may be aborted safely. */
  private pollFree = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatSeconds = 3;
  private fatal: Error | undefined;
  private wakeLoop: (() => void) | undefined;
  private keyFailures = 0;
  /** Tasks from an earlier run whose output and status are being delivered. */
  private readonly recovering = new Set<string>();

  constructor(private readonly opts: WorkerOptions) {
    this.client = new ApiClient({
      serverUrl: opts.credential.serverUrl, caPem: opts.credential.caPem, token: opts.credential.token,
      userAgent: `ferry-agent/${FERRY_VERSION}`,
    });
  }

  /** Runs until stopped (resolves) or a fatal error (rejects). */
  async run(): Promise<void> {
    const { log } = this.opts;
    this.recoverSpools();
    let attempt = 0;
    let emptyFast = 0;
    while (!this.draining && !this.fatal) {
      const free = this.opts.concurrency - this.runners.size;
      this.pollAbort = new AbortController();
      this.pollFree = free;
      const pollStarted = Date.now();
      try {
        // The answer is checked like any input: ids become paths and process names here.
        const res = PollResponse.parse(await this.client.json<unknown>('POST', '/v1/agent/poll', {
          free, running: [...this.runners.keys()], waitSeconds: this.opts.pollWaitSeconds,
        }, this.pollAbort.signal));
        attempt = 0;
        const idle = !res.task && res.cancel.length === 0 && !res.keyRequests?.length;
        // A server that answers a long poll at once with nothing (shutting down, misbehaving)
        // must not make the agent spin: pace such polls.
        emptyFast = idle && Date.now() - pollStarted < 100 && this.opts.pollWaitSeconds >= 1 ? emptyFast + 1 : 0;
        if (emptyFast > 2) await new Promise((r) => setTimeout(r, backoffMs(emptyFast, 100, 5000)));
        for (const id of res.cancel) this.runners.get(id)?.stop('cancelled');
        if (res.task) this.startRunner(res.task);
        if (res.keyRequests?.length) await this.publishKeys(res.keyRequests);
      } catch (err) {
        if ((err as Error).name === 'AbortError') continue;
        if (isFatal(err)) {
          this.fatal = new FatalAgentError(`The server refused this agent's credential: ${(err as Error).message}`, { cause: err });
          break;
        }
        const wait = backoffMs(attempt++);
        log.warn({ err: (err as Error).message, retryInMs: wait, retryable: isRetryable(err) }, 'poll failed; retrying');
        await new Promise<void>((r) => {
          this.wakeLoop = r;
          setTimeout(r, wait);
        });
      } finally {
        this.pollAbort = undefined;
      }
    }
    if (this.fatal) for (const r of this.runners.values()) r.stop('cancelled');
    await this.waitForRunners();
    this.stopHeartbeats();
    await this.client.close();
    if (this.fatal) throw this.fatal;
  }

  /** First call drains; a second call also cancels running tasks. */
  stop(): void {
    if (this.draining) {
      for (const r of this.runners.values()) r.stop('cancelled');
      return;
    }
    this.draining = true;
    this.pollAbort?.abort();
    this.wakeLoop?.();
  }

  get runningCount(): number {
    return this.runners.size;
  }

  /**
   * Makes (or reuses) the sealing key of each target the server asks about and publishes its
   * public half. A failure backs off, so an unpublishable key cannot spin the poll loop.
   */
  private async publishKeys(requests: readonly { targetId: string; targetName: string }[]): Promise<void> {
    for (const { targetId, targetName } of requests) {
      const log = this.opts.log.child({ targetId });
      try {
        const held = this.opts.keys.load(targetId);
        if (held) {
          await this.client.json('POST', `/v1/agent/targets/${targetId}/key`, { publicKeyPem: createPublicKey(held.key).export({ type: 'spki', format: 'pem' }).toString() });
        } else {
          // Kept only once the server took it: an agent that lost the race to another agent of
          // the same target must not hold a key nobody seals with.
          const pair = await generateSealingKeyPair();
          await this.client.json('POST', `/v1/agent/targets/${targetId}/key`, { publicKeyPem: pair.publicKeyPem });
          this.opts.keys.save(targetId, pair.privateKeyPem);
        }
        log.info({ target: targetName, kid: this.opts.keys.load(targetId)?.kid }, 'published the target\'s sealing key');
        this.keyFailures = 0;
      } catch (err) {
        if (isFatal(err)) throw err;
        const wait = backoffMs(this.keyFailures++, 1000, 60_000);
        log.warn({ err: (err as Error).message, retryInMs: wait }, 'could not publish a sealing key');
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /**
   * Output and final statuses spooled by an earlier run of this agent are delivered now. A task
   * that was still running when the agent died cannot be accounted for: its output is delivered
   * and it is reported as `error` (the server may already have marked it `lost`).
   */
  private recoverSpools(): void {
    for (const taskId of TaskSpool.list(this.opts.spoolDir)) {
      const log = this.opts.log.child({ taskId });
      let spool: TaskSpool;
      try {
        spool = TaskSpool.recover(this.opts.spoolDir, taskId);
      } catch (err) {
        log.error({ err }, 'cannot read a spooled task; leaving it in place');
        continue;
      }
      const uploader = OutputUploader.resume(this.client, spool, log);
      const outcome = spool.final ?? {
        status: 'error' as const, exitCode: null, signal: null,
        reason: 'the agent restarted while this task ran; its outcome is unknown (output up to the restart was kept)',
      };
      log.warn({ finished: spool.final !== null, spooled: spool.bytesProduced, acked: spool.acked }, spool.final ? 'delivering a finished task spooled before the restart' : 'reporting a task this agent cannot account for');
      this.recovering.add(taskId);
      this.startHeartbeats();
      const done = deliverFinalStatus(this.client, spool, uploader, outcome, log)
        .catch((err: unknown) => log.error({ err }, 'recovery failed'))
        .finally(() => {
          this.recovering.delete(taskId);
          this.finished.delete(done);
        });
      this.finished.add(done);
    }
  }

  private startRunner(task: PollResponse['task'] & object): void {
    const runner = new TaskRunner(task, { client: this.client, executor: this.opts.executor, log: this.opts.log, graceMs: this.opts.graceMs, keys: this.opts.keys, spoolDir: this.opts.spoolDir });
    this.runners.set(task.id, runner);
    this.startHeartbeats();
    const done = runner.run()
      .catch((err: unknown) => this.opts.log.error({ err, taskId: task.id }, 'task runner crashed'))
      .finally(() => {
        this.runners.delete(task.id);
        this.finished.delete(done);
        if (this.runners.size === 0 && this.recovering.size === 0) this.stopHeartbeats();
        // A slot is free: replace a poll that was waiting only for cancels. A poll that may
        // claim is never aborted: the server could claim a task whose answer we would drop.
        if (this.pollFree === 0) this.pollAbort?.abort();
      });
    this.finished.add(done);
  }

  private async waitForRunners(): Promise<void> {
    while (this.finished.size > 0) await Promise.allSettled([...this.finished]);
  }

  private startHeartbeats(): void {
    if (this.heartbeatTimer) return;
    const beat = (): void => {
      this.heartbeatTimer = setTimeout(() => {
        void this.heartbeat().finally(() => {
          if (this.heartbeatTimer) beat();
        });
      }, this.heartbeatSeconds * 1000);
    };
    beat();
  }

  private stopHeartbeats(): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private async heartbeat(): Promise<void> {
    if (this.runners.size === 0 && this.recovering.size === 0) return;
    try {
      const res = await this.client.json<HeartbeatResponse>('POST', '/v1/agent/heartbeat', { running: [...this.runners.keys(), ...this.recovering] });
      this.heartbeatSeconds = res.heartbeatSeconds;
      for (const id of res.cancel) this.runners.get(id)?.stop('cancelled');
      for (const id of res.revoked) this.runners.get(id)?.stop('lease_lost');
    } catch (err) {
      if (isFatal(err)) {
        this.fatal = new FatalAgentError(`The server refused this agent's credential: ${(err as Error).message}`, { cause: err });
        this.stop();
        return;
      }
      this.opts.log.warn({ err: (err as Error).message }, 'heartbeat failed');
    }
  }
}
