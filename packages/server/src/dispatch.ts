/**
 * The dispatch hub wakes long polls. An idle agent's poll waits here (up to ~30 s); when a
 * task arrives that the agent may run, exactly one eligible waiter is woken (FIFO) so a new
 * task costs one claim query, not one per idle agent. A cancel request wakes the agent that
 * holds the task. Output readers (`task logs --follow`, `ferry run`) wait on a task's output.
 *
 * States of a waiter: waiting → woken (by notify) | timed out | aborted (client went away)
 * | released (server shutting down). Every path removes it from the sets, exactly once.
 *
 * The hub is in-process: right for the embedded SQLite server. With several PostgreSQL
 * replicas a relay (store/postgres/notify.ts) publishes every wake-up made here to the other
 * replicas, whose hubs `receive` it, and `recheckMs` makes every wait look again at least that
 * often, so a lost notification delays nothing by more than that.
 */
import { mayRun, mayServe, type KeyNeed, type ServedTarget } from './eligibility.js';
import type { AgentRow } from './store/types.js';

const NO_KEY_NEEDED: KeyNeed = { needed: false };

/** A wake-up as it crosses replicas: what was notified, with the target's eligibility fields only. */
export type HubSignal =
  | { kind: 'task'; target: ServedTarget; holders: string[] | null; all: boolean }
  | { kind: 'serving'; target: ServedTarget }
  | { kind: 'all-agents' }
  | { kind: 'key-work' }
  | { kind: 'agent'; agentId: string }
  | { kind: 'output'; taskId: string }
  /** A replica announcing itself (postgres/notify.ts): wakes nobody. Older replicas ignore kinds they do not know. */
  | { kind: 'hello' };

/** Carries this hub's wake-ups to the other replicas. */
export interface HubRelay {
  publish(signal: HubSignal): void;
}

export interface HubOptions {
  relay?: HubRelay;
  /** Waits last at most this long before their caller looks again (replicas: 1 s); none when absent. */
  recheckMs?: number;
}

const served = (t: ServedTarget): ServedTarget => ({ id: t.id, orgId: t.orgId, agentMode: t.agentMode });

interface Waiter {
  agent: AgentRow;
  wantsTasks: boolean;
  wake: () => void;
}

export class DispatchHub {
  private readonly agentWaiters: Waiter[] = [];
  private readonly outputWaiters = new Map<string, Set<() => void>>();
  private closed = false;
  private agentsReleased = false;
  /** Bumped whenever key work may have appeared (keys.ts), so polls skip the key queries while nothing changed. */
  private keyEpoch = 0;
  private readonly keyIdle = new Map<string, { epoch: number; at: number }>();

  constructor(private readonly options: HubOptions = {}) {}

  private capped(timeoutMs: number): number {
    return this.options.recheckMs === undefined ? timeoutMs : Math.min(timeoutMs, this.options.recheckMs);
  }

  private publish(signal: HubSignal): void {
    this.options.relay?.publish(signal);
  }

  /** A wake-up published by another replica: applied here as if made here, and not published again. */
  receive(signal: HubSignal): void {
    switch (signal.kind) {
      case 'task': {
        const key: KeyNeed = signal.holders === null ? NO_KEY_NEEDED : { needed: true, holders: new Set(signal.holders) };
        if (signal.all) this.wakeTaskAll(signal.target, key);
        else this.wakeTask(signal.target, key);
        return;
      }
      case 'serving':
        return this.wakeServing(signal.target);
      case 'all-agents':
        return this.wakeAllAgents();
      case 'key-work':
        this.keyEpoch++;
        return;
      case 'agent':
        return this.wakeAgent(signal.agentId);
      case 'output':
        return this.wakeOutput(signal.taskId);
      case 'hello':
        return;
    }
  }

  /** After the relay was cut off for a while (notifications may be lost): every waiter looks again. */
  wakeEveryone(): void {
    this.keyEpoch++;
    this.wakeAllAgents();
    for (const set of [...this.outputWaiters.values()]) for (const wake of [...set]) wake();
  }

  /** Waits until woken, the timeout passes or `signal` aborts. Resolves either way. */
  waitForWork(agent: AgentRow, wantsTasks: boolean, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.agentsReleased || signal.aborted || timeoutMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        const i = this.agentWaiters.indexOf(waiter);
        if (i >= 0) this.agentWaiters.splice(i, 1);
        resolve();
      };
      const waiter: Waiter = { agent, wantsTasks, wake: done };
      const timer = setTimeout(done, this.capped(timeoutMs));
      signal.addEventListener('abort', done, { once: true });
      this.agentWaiters.push(waiter);
    });
  }

  /** A task for `target` became claimable: wake one agent that may claim it (`key`: whether it must hold the target's key). */
  notifyTask(target: ServedTarget, key: KeyNeed = NO_KEY_NEEDED): void {
    this.wakeTask(target, key);
    this.publish({ kind: 'task', target: served(target), holders: key.needed ? [...key.holders] : null, all: false });
  }

  private wakeTask(target: ServedTarget, key: KeyNeed): void {
    const waiter = this.agentWaiters.find((w) => w.wantsTasks && mayRun(w.agent, target, key));
    waiter?.wake();
  }

  /** Wakes every waiting agent that may run tasks of `target` (used after leases lapse, rarely). */
  notifyTaskAll(target: ServedTarget, key: KeyNeed = NO_KEY_NEEDED): void {
    this.wakeTaskAll(target, key);
    this.publish({ kind: 'task', target: served(target), holders: key.needed ? [...key.holders] : null, all: true });
  }

  private wakeTaskAll(target: ServedTarget, key: KeyNeed): void {
    for (const w of this.agentWaiters.filter((x) => x.wantsTasks && mayRun(x.agent, target, key))) w.wake();
  }

  /** Key work for the agents of `target` (a newcomer needs its key, a rotation was asked): wake them all, busy or not. */
  notifyServing(target: ServedTarget): void {
    this.wakeServing(target);
    this.publish({ kind: 'serving', target: served(target) });
  }

  private wakeServing(target: ServedTarget): void {
    for (const w of this.agentWaiters.filter((x) => mayServe(x.agent, target))) w.wake();
  }

  /** A new agent announced its keys: holders of any target it serves may have a hand-over to make. */
  notifyAllAgents(): void {
    this.wakeAllAgents();
    this.publish({ kind: 'all-agents' });
  }

  private wakeAllAgents(): void {
    for (const w of [...this.agentWaiters]) w.wake();
  }

  /** Key work may have appeared for someone: every agent's next poll looks again. (Wake-ups are the callers'.) */
  keyWorkChanged(): void {
    this.keyEpoch++;
    this.publish({ kind: 'key-work' });
  }

  /** True when this agent's last look found no key work, nothing changed since, and the look is under `maxAgeMs` old. */
  keyWorkUnchanged(agentId: string, now: number, maxAgeMs: number): boolean {
    const idle = this.keyIdle.get(agentId);
    return idle !== undefined && idle.epoch === this.keyEpoch && now - idle.at < maxAgeMs;
  }

  /** The agent looked (as of `epoch`, read before the look) and found no key work. */
  noKeyWorkFound(agentId: string, epoch: number, now: number): void {
    this.keyIdle.set(agentId, { epoch, at: now });
  }

  /** The epoch to pass to `noKeyWorkFound`, read before looking so a change during the look is not missed. */
  get keyWorkEpoch(): number {
    return this.keyEpoch;
  }

  /** The agent holding a task must hear about its cancellation now, not at its next heartbeat. */
  notifyAgent(agentId: string): void {
    this.wakeAgent(agentId);
    this.publish({ kind: 'agent', agentId });
  }

  private wakeAgent(agentId: string): void {
    for (const w of this.agentWaiters.filter((x) => x.agent.id === agentId)) w.wake();
  }

  waitForOutput(taskId: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.closed || signal.aborted || timeoutMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.outputWaiters.get(taskId);
      if (!set) {
        set = new Set();
        this.outputWaiters.set(taskId, set);
      }
      const waiters = set;
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        waiters.delete(done);
        if (waiters.size === 0 && this.outputWaiters.get(taskId) === waiters) this.outputWaiters.delete(taskId);
        resolve();
      };
      const timer = setTimeout(done, this.capped(timeoutMs));
      signal.addEventListener('abort', done, { once: true });
      waiters.add(done);
    });
  }

  /** New output arrived or the task changed state. */
  notifyOutput(taskId: string): void {
    this.wakeOutput(taskId);
    this.publish({ kind: 'output', taskId });
  }

  private wakeOutput(taskId: string): void {
    const set = this.outputWaiters.get(taskId);
    if (set) for (const wake of [...set]) wake();
  }

  /** True once the server is shutting down: agents' long polls answer at once, and no new work goes out. */
  get isReleasingAgents(): boolean {
    return this.agentsReleased;
  }

  /** True once the HTTP side is closing: output reads answer at once too. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * The first step of a shutdown: agents' polls answer now. Output readers still wait as usual
   * while running tasks drain (answering them at once would make them ask again and again).
   */
  releaseAgents(): void {
    this.agentsReleased = true;
    for (const w of [...this.agentWaiters]) w.wake();
  }

  /** Releases every waiter; used at shutdown so open polls and output reads answer at once. */
  close(): void {
    this.closed = true;
    this.releaseAgents();
    for (const set of [...this.outputWaiters.values()]) for (const wake of [...set]) wake();
  }
}
