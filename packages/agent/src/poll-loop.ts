/**
 * The poll loop: how the agent asks for work.
 *
 * States: polling (a long poll is open; `free` says how many tasks we can take)
 * → got task (start a runner, poll again at once) | got cancels (stop those runners)
 * | got key work (publish, hand over, take or rotate target keys: key-custody.ts) | empty (poll again)
 * | failed (back off with jitter, poll again; 401/403 stop the agent) → stopped (the stop
 * signal aborted the poll or the wait; it ends the loop).
 *
 * When a runner finishes while the poll is open with free = 0, that poll is aborted
 * (`slotFreed`) and a new one opens with free > 0, so the next task starts without waiting out
 * the long poll. A poll that may claim (free > 0) is never aborted for that: the server could
 * claim a task whose answer we would drop.
 *
 * A server that answers a long poll at once with nothing (shutting down, misbehaving) must not
 * make the agent spin: after a few such answers in a row, polls are paced.
 */
import type { Logger } from 'pino';
import { Routes, backoffMs, isAbort, isRetryable, sleep, type FerryClient } from '@ferry/client';
import type { AgentKeys, Assignment, PollResponse } from '@ferry/protocol';
import { fatalFrom, messageOf } from './server-answers.js';

export interface PollHooks {
  /** How many more tasks this agent can take now. */
  free(): number;
  /** Ids of the tasks running here (their leases are renewed and cancels come for them). */
  running(): string[];
  onTask(task: Assignment): void;
  onCancel(taskId: string): void;
  /** What this poll tells the server about the agent's keys (the first poll, or after a stale record); undefined: nothing. */
  keys(): Promise<AgentKeys | undefined>;
  /** A poll that carried `keys` was answered. */
  keysAnnounced(): void;
  /** The answer's key work (keyRequests, keyHandovers, keyDeliveries, keyRotations). */
  onKeyWork(answer: PollResponse): Promise<void>;
}

export interface PollLoopOptions {
  waitSeconds: number;
  /** Aborting it ends the loop (the open poll and any wait are cut short). */
  stop: AbortSignal;
  log: Logger;
}

/** Answers faster than this with nothing in them count as "empty at once". */
const FAST_ANSWER_MS = 100;

export class PollLoop {
  /** The poll in flight and its `free`: only a poll that cannot claim (free = 0) may be aborted safely. */
  private inFlight: { abort: AbortController; free: number } | undefined;
  private emptyFast = 0;

  constructor(
    private readonly client: FerryClient,
    private readonly hooks: PollHooks,
    private readonly opts: PollLoopOptions,
  ) {}

  /** Resolves once stopped; rejects with a FatalAgentError when the server refuses the credential. */
  async run(): Promise<void> {
    let failures = 0;
    while (!this.opts.stop.aborted) {
      try {
        const started = Date.now();
        const answer = await this.poll();
        failures = 0;
        await this.paceEmptyAnswers(answer, Date.now() - started);
        await this.dispatch(answer);
      } catch (err) {
        if (isAbort(err)) continue;
        const fatal = fatalFrom(err);
        if (fatal) throw fatal;
        const wait = backoffMs(failures++);
        this.opts.log.warn({ err: messageOf(err), retryInMs: wait, retryable: isRetryable(err) }, 'poll failed; retrying');
        await sleep(wait, this.opts.stop);
      }
    }
  }

  /** A task slot is free: replace a poll that was waiting only for cancels. */
  slotFreed(): void {
    if (this.inFlight?.free === 0) this.inFlight.abort.abort();
  }

  private async poll(): Promise<PollResponse> {
    const keys = await this.hooks.keys();
    const abort = new AbortController();
    const free = this.hooks.free();
    this.inFlight = { abort, free };
    try {
      // The answer is checked against its schema by the client: ids become paths and process names here.
      const answer = await this.client.call(Routes.poll, {
        body: { free, running: this.hooks.running(), waitSeconds: this.opts.waitSeconds, ...(keys ? { keys } : {}) },
        signal: AbortSignal.any([abort.signal, this.opts.stop]),
      });
      if (keys) this.hooks.keysAnnounced();
      return answer;
    } finally {
      this.inFlight = undefined;
    }
  }

  private async paceEmptyAnswers(answer: PollResponse, tookMs: number): Promise<void> {
    const idle = !answer.task && answer.cancel.length === 0 && !hasKeyWork(answer);
    const fastEmpty = idle && tookMs < FAST_ANSWER_MS && this.opts.waitSeconds >= 1;
    this.emptyFast = fastEmpty ? this.emptyFast + 1 : 0;
    if (this.emptyFast > 2) await sleep(backoffMs(this.emptyFast, 100, 5000), this.opts.stop);
  }

  private async dispatch(answer: PollResponse): Promise<void> {
    for (const id of answer.cancel) this.hooks.onCancel(id);
    if (answer.task) this.hooks.onTask(answer.task);
    if (hasKeyWork(answer)) await this.hooks.onKeyWork(answer);
  }
}

function hasKeyWork(answer: PollResponse): boolean {
  return !!(answer.keyRequests?.length || answer.keyHandovers?.length || answer.keyDeliveries?.length || answer.keyRotations?.length);
}
