/**
 * The poll loop: how the agent asks for work.
 *
 * States: polling (a long poll is open; `free` says how many tasks we can take)
 * → got task (start a runner, poll again at once) | got cancels (stop those runners)
 * | got key work (publish, hand over, take or rotate target keys: key-custody.ts) | empty (poll again)
 * | failed (back off with jitter, poll again; 401/403 stop the agent) → stopped (the stop
 * signal aborted the poll or the wait; it ends the loop).
 *
 * When a runner finishes while the poll is open with free = 0, that poll is left open in the
 * background (`slotFreed`: it can claim nothing, and still brings cancels and key work when
 * answered) and a new one opens with free > 0, so the next task starts without waiting out the
 * long poll. Aborting it instead would close its connection (HTTP/1.1 has no other way to give
 * up a request), and every task would then pay a new TLS handshake on the agent and the server.
 * The server ends an agent's oldest polls past its concurrency, so these stay few; past the
 * concurrency plus one (at most MAX_DETACHED) the oldest is aborted here. A poll that may claim (free > 0) is never left or
 * aborted for that: the server could claim a task whose answer we would drop.
 *
 * A server that answers a long poll at once with nothing (shutting down, misbehaving) must not
 * make the agent spin: after a few such answers in a row, polls are paced.
 *
 * After an answer that brought a task, the next poll waits for that task's start confirmation
 * (at most START_WAIT_MS). Sent together, the two reached the server together, and the poll's
 * work there (a claim attempt, renewing the lease just granted, key work) ran beside the
 * confirmation's compare-and-set, which the task's hand-over waits for (bench/README.md,
 * fourth wave). The confirmation is one round trip; the next claim comes that much later.
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
  /** Starts the task; resolves (never rejects) once the server has answered its start confirmation. */
  onTask(task: Assignment): Promise<unknown>;
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

/**
 * Polls with free = 0 left open in the background at most (each holds one of the client's 16
 * connections). The server ends an agent's oldest poll when one past its concurrency arrives, so
 * up to the concurrency (plus one answer on its way) are normal and none is aborted here.
 */
const MAX_DETACHED = 8;

/**
 * The longest the next poll waits for the start confirmation of the task the last answer
 * brought: a server slow to confirm (retried with backoff) must not hold back cancels, key work
 * and the next claim for longer.
 */
export const START_WAIT_MS = 50;

interface InFlight {
  abort: AbortController;
  free: number;
  /** Lets run() go on without this poll's answer (only for free = 0 polls without keys). */
  detach?: () => void;
}

export class PollLoop {
  /** The poll in flight and its `free`: only a poll that cannot claim (free = 0) may be left or aborted safely. */
  private inFlight: InFlight | undefined;
  /** Free = 0 polls left open in the background, oldest first. */
  private readonly detached: AbortController[] = [];
  /** Key work runs one answer at a time, whichever poll brought it (key-custody.ts does one job at a time). */
  private keyWork: Promise<void> = Promise.resolve();
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
        if (!answer) continue; // left open in the background: a slot freed
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
    const polling = this.inFlight;
    if (polling?.free !== 0) return;
    if (!polling.detach) return polling.abort.abort();
    const concurrency = this.hooks.running().length + this.hooks.free();
    if (this.detached.length >= Math.min(concurrency + 1, MAX_DETACHED)) this.detached.shift()?.abort();
    polling.detach();
  }

  /** The answer; undefined when the poll was left open in the background (slotFreed). */
  private async poll(): Promise<PollResponse | undefined> {
    const keys = await this.hooks.keys();
    const abort = new AbortController();
    const free = this.hooks.free();
    let detach: (() => void) | undefined;
    const detached = new Promise<undefined>((resolve) => (detach = () => resolve(undefined)));
    this.inFlight = { abort, free, ...(free === 0 && !keys ? { detach } : {}) };
    try {
      // The answer is checked against its schema by the client: ids become paths and process names here.
      const request = this.client.call(Routes.poll, {
        body: { free, running: this.hooks.running(), waitSeconds: this.opts.waitSeconds, ...(keys ? { keys } : {}) },
        signal: AbortSignal.any([abort.signal, this.opts.stop]),
      });
      const answer = await Promise.race([request, detached]);
      if (!answer) {
        this.watchInBackground(request, abort);
        return undefined;
      }
      if (keys) this.hooks.keysAnnounced();
      return answer;
    } finally {
      this.inFlight = undefined;
    }
  }

  /** A free = 0 poll left open: its answer still brings cancels and key work; its failure is the next poll's business. */
  private watchInBackground(request: Promise<PollResponse>, abort: AbortController): void {
    this.detached.push(abort);
    request
      .then((answer) => (this.opts.stop.aborted ? undefined : this.dispatch(answer)))
      .catch(() => undefined)
      .finally(() => {
        const i = this.detached.indexOf(abort);
        if (i >= 0) this.detached.splice(i, 1);
      });
  }

  private async paceEmptyAnswers(answer: PollResponse, tookMs: number): Promise<void> {
    const idle = !answer.task && answer.cancel.length === 0 && !hasKeyWork(answer);
    const fastEmpty = idle && tookMs < FAST_ANSWER_MS && this.opts.waitSeconds >= 1;
    this.emptyFast = fastEmpty ? this.emptyFast + 1 : 0;
    if (this.emptyFast > 2) await sleep(backoffMs(this.emptyFast, 100, 5000), this.opts.stop);
  }

  private async dispatch(answer: PollResponse): Promise<void> {
    for (const id of answer.cancel) this.hooks.onCancel(id);
    const confirmed = answer.task ? this.hooks.onTask(answer.task) : undefined;
    if (hasKeyWork(answer)) await this.queueKeyWork(answer);
    if (confirmed) await this.untilConfirmed(confirmed);
  }

  /** The start confirmation answered, START_WAIT_MS passed or the loop stopped, whichever comes first. */
  private async untilConfirmed(confirmed: Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const stop = this.opts.stop;
    let onStop: (() => void) | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, START_WAIT_MS);
      onStop = resolve;
      stop.addEventListener('abort', onStop, { once: true });
    });
    try {
      if (!stop.aborted) await Promise.race([confirmed, bound]);
    } finally {
      clearTimeout(timer);
      if (onStop) stop.removeEventListener('abort', onStop);
    }
    // The runner hands the task over on the same answer: that write first, then the next poll's.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private queueKeyWork(answer: PollResponse): Promise<void> {
    const done = this.keyWork.then(() => this.hooks.onKeyWork(answer));
    this.keyWork = done.catch(() => undefined);
    return done;
  }
}

function hasKeyWork(answer: PollResponse): boolean {
  return !!(answer.keyRequests?.length || answer.keyHandovers?.length || answer.keyDeliveries?.length || answer.keyRotations?.length);
}
