/**
 * Heartbeats run beside the poll loop while any task runs here (or a recovered one is being
 * delivered): they renew the tasks' leases and bring cancellations (stop the task: cancelled)
 * and revocations (tasks the server gave to someone else: stop them, drop their output).
 *
 * States: idle (no timer) → waiting (a timer is set) → beating (a heartbeat is in flight)
 * → waiting again, every `heartbeatSeconds` (the server says how often; 3 s until it does).
 * stop() returns to idle; a heartbeat in flight then ends without scheduling another.
 * A failed heartbeat is logged and the next comes on schedule; 401/403 is fatal for the agent.
 */
import type { Logger } from 'pino';
import { Routes, type FerryClient } from '@ferry/client';
import { fatalFrom, messageOf, type FatalAgentError } from './server-answers.js';

export interface HeartbeatHooks {
  /** Ids of the tasks this agent holds: running, or being delivered after a restart. */
  held(): string[];
  cancel(taskId: string): void;
  /** The server no longer assigns the task to this agent. */
  revoke(taskId: string): void;
  fatal(err: FatalAgentError): void;
}

export class Heartbeats {
  private timer: NodeJS.Timeout | undefined;
  private intervalSeconds = 3;

  constructor(
    private readonly client: FerryClient,
    private readonly hooks: HeartbeatHooks,
    private readonly log: Logger,
  ) {}

  /** Starts beating, unless already started. */
  start(): void {
    if (this.timer) return;
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.beat().finally(() => {
        if (this.timer) this.schedule();
      });
    }, this.intervalSeconds * 1000);
  }

  private async beat(): Promise<void> {
    const held = this.hooks.held();
    if (held.length === 0) return;
    try {
      const res = await this.client.call(Routes.heartbeat, { body: { running: held } });
      this.intervalSeconds = res.heartbeatSeconds;
      for (const id of res.cancel) this.hooks.cancel(id);
      for (const id of res.revoked) this.hooks.revoke(id);
    } catch (err) {
      const fatal = fatalFrom(err);
      if (fatal) return this.hooks.fatal(fatal);
      this.log.warn({ err: messageOf(err) }, 'heartbeat failed');
    }
  }
}
