/**
 * Sandboxes started ahead of their tasks, so that a claimed task only hands over its script and
 * environment (bubblewrap-command.ts) instead of waiting for bwrap to make namespaces and mounts.
 *
 * Keyed by what makes sandboxes differ (the limits: network mode, process and memory ceilings);
 * each waiting sandbox also holds a task uid of its own. A sandbox serves exactly one task: take()
 * hands it out once and forgets it; the executor destroys it after its task.
 *
 * Sized by recent demand, per key: as many as the most sandboxes of that key in use at once
 * during the last `idleMs`, plus one spare, never more than `max` over all keys. A key with no task for `idleMs`
 * gets none, so an idle agent holds no sandbox, no timer and no process for the pool. A sandbox
 * that waited `maxWaitMs` is destroyed, so none waits on a stale /etc or lingers for long; it is
 * replaced only if a task came while it waited (else the pool shrinks by one), so the pool is
 * empty at most twice `maxWaitMs` after the last task (a replacement waits its own time out). Refills run after a task has been handed its sandbox (refillSoon),
 * not while it is being claimed: a launch costs the agent ~1–2 ms of its event loop (the cgroup, the
 * spawner's answer, the pipes).
 */

/** What the pool needs of a sandbox. */
export interface Poolable {
  /** True once it waits for a task; false when it died first. */
  readonly ready: Promise<boolean>;
  dispose(): Promise<void>;
}

export interface PoolOptions {
  /** Most sandboxes waiting at once, over all keys; 0 turns the pool off. */
  max: number;
  /** A sandbox that waited this long is destroyed, and replaced while there is demand. */
  maxWaitMs: number;
  /** With no task of a key for this long, that key's demand is forgotten and it gets no sandbox. */
  idleMs: number;
}

export const DEFAULT_POOL_TIMING = Object.freeze({ maxWaitMs: 30_000, idleMs: 30_000 });

interface Waiting<S> {
  sandbox: S;
  timer: NodeJS.Timeout;
  /** Its shim has said it waits for a task. */
  ready: boolean;
  born: number;
}

interface Demand<S> {
  inUse: number;
  /** Most in use at once since peakAt. */
  peak: number;
  peakAt: number;
  lastClaim: number;
  /** A launch for this key failed after the last claim: no retry until the next claim. */
  failed: boolean;
  launching: number;
  /** Claims waiting for a sandbox already being launched (take found none waiting). */
  waiters: ((sandbox: S | undefined) => void)[];
}

export interface PoolStats {
  waiting: number;
  /** Of the waiting, those whose shim already waits for its task (fully warm). */
  ready: number;
  launching: number;
  hits: number;
  misses: number;
}

export class SandboxPool<S extends Poolable, L> {
  private readonly waiting = new Map<string, Waiting<S>[]>();
  private readonly demand = new Map<string, Demand<S>>();
  private readonly limitsOf = new Map<string, L>();
  /** A refill to come: at the next turn of the event loop, or on a timer (refillSoon). */
  private scheduled: 'now' | NodeJS.Timeout | undefined;
  private closed = false;
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly launch: (limits: L) => Promise<S>,
    private readonly keyOf: (limits: L) => string,
    private readonly options: PoolOptions,
  ) {}

  /**
   * A waiting sandbox for these limits (handed out once), or the next one being launched, or
   * undefined: the caller makes one (also when that launch fails). Counts as demand either way.
   */
  take(limits: L): S | Promise<S | undefined> | undefined {
    const key = this.keyOf(limits);
    this.limitsOf.set(key, limits);
    const d = this.claimed(key);
    d.inUse++;
    const now = Date.now();
    if (d.inUse >= d.peak || now - d.peakAt > this.options.idleMs) {
      d.peak = d.inUse;
      d.peakAt = now;
    }
    // The oldest ready one, else the oldest still starting (already past bwrap's set-up).
    const list = this.waiting.get(key) ?? [];
    const i = Math.max(
      0,
      list.findIndex((w) => w.ready),
    );
    const entry = list.splice(i, 1)[0];
    if (list.length === 0) this.waiting.delete(key);
    if (entry) {
      clearTimeout(entry.timer);
      this.hits++;
      return entry.sandbox;
    }
    // A refill already under way is further along than a sandbox made from nothing now.
    if (d.launching > d.waiters.length) {
      this.hits++;
      return new Promise<S | undefined>((resolve) => d.waiters.push(resolve));
    }
    this.misses++;
    return undefined;
  }

  /** A sandbox of these limits that take() counted (handed out or not) was destroyed. */
  done(limits: L): void {
    const d = this.demand.get(this.keyOf(limits));
    if (d && d.inUse > 0) d.inUse--;
  }

  /**
   * Brings the pool to its size soon, once the current task has been handed over; `afterMs` later
   * when a task was just handed its sandbox: a launch (bwrap making namespaces and mounts, ~2 ms of
   * CPU) started at that moment competes for the CPUs with that task's own start (measured: the
   * warm start's median 2.8–3.1 ms with an immediate refill, 1.7–2.0 ms with one 15 ms later).
   * A refill asked for without delay (a sandbox destroyed) runs at once, the delayed one with it.
   */
  refillSoon(afterMs = 0): void {
    if (this.closed || this.options.max <= 0) return;
    if (this.scheduled === 'now' || (this.scheduled && afterMs > 0)) return;
    if (this.scheduled) clearTimeout(this.scheduled);
    const run = () => {
      this.scheduled = undefined;
      this.refill();
    };
    if (afterMs > 0) {
      this.scheduled = setTimeout(run, afterMs).unref();
      return;
    }
    this.scheduled = 'now';
    setImmediate(run);
  }

  get stats(): PoolStats {
    let waiting = 0;
    let ready = 0;
    let launching = 0;
    for (const list of this.waiting.values()) {
      waiting += list.length;
      ready += list.filter((w) => w.ready).length;
    }
    for (const d of this.demand.values()) launching += d.launching;
    return { waiting, ready, launching, hits: this.hits, misses: this.misses };
  }

  /** Destroys every waiting sandbox, and those still being launched as they arrive; no refill after. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.waiting.values()].flat();
    this.waiting.clear();
    for (const w of all) clearTimeout(w.timer);
    await Promise.all(all.map((w) => w.sandbox.dispose().catch(() => undefined)));
    while (this.stats.launching > 0) await new Promise((r) => setTimeout(r, 10));
  }

  private claimed(key: string): Demand<S> {
    let d = this.demand.get(key);
    if (!d) {
      d = { inUse: 0, peak: 0, peakAt: 0, lastClaim: 0, failed: false, launching: 0, waiters: [] };
      this.demand.set(key, d);
    }
    d.lastClaim = Date.now();
    d.failed = false;
    return d;
  }

  /**
   * How many of a key should wait: its recent peak plus one spare. Without the spare, tasks that
   * come one after another each took the only waiting sandbox and the next one often arrived
   * while its replacement was still being launched (a cgroup v1 join alone is 11–13 ms under
   * load): 50 of 150 such dispatches waited for a launch, 11.8 ms against 3.6 ms at p50.
   */
  private target(d: Demand<S>, now: number): number {
    if (now - d.lastClaim > this.options.idleMs) return 0;
    const base = now - d.peakAt > this.options.idleMs ? d.inUse : d.peak;
    return Math.min(this.options.max, base > 0 ? base + 1 : 0);
  }

  private refill(): void {
    if (this.closed) return;
    const now = Date.now();
    let total = this.stats.waiting + this.stats.launching;
    for (const [key, d] of this.demand) {
      const have = (this.waiting.get(key)?.length ?? 0) + d.launching;
      if (this.target(d, now) === 0 && d.inUse === 0 && have === 0) {
        this.demand.delete(key); // idle: forget it, so an idle agent keeps nothing
        this.limitsOf.delete(key);
        continue;
      }
      const limits = this.limitsOf.get(key);
      if (d.failed || limits === undefined) continue;
      for (let n = this.target(d, now) - have; n > 0 && total < this.options.max; n--, total++) this.launchOne(key, d, limits);
    }
  }

  private launchOne(key: string, d: Demand<S>, limits: L): void {
    d.launching++;
    this.launch(limits).then(
      (sandbox) => {
        d.launching--;
        const waiter = d.waiters.shift();
        if (waiter) return waiter(sandbox);
        if (this.closed) return void sandbox.dispose().catch(() => undefined);
        const entry: Waiting<S> = { sandbox, ready: false, born: Date.now(), timer: setTimeout(() => this.expire(key, entry), this.options.maxWaitMs).unref() };
        const list = this.waiting.get(key) ?? [];
        list.push(entry);
        this.waiting.set(key, list);
        // One that dies while waiting (killed from outside) leaves the pool at once.
        void sandbox.ready.then((ok) => {
          entry.ready = ok;
          if (!ok) this.expire(key, entry);
        });
      },
      () => {
        d.launching--;
        d.waiters.shift()?.(undefined); // that claim makes its own, and sees the error if it recurs
        d.failed = true; // the next claim (a cold start) shows the error to its task
      },
    );
  }

  private expire(key: string, entry: Waiting<S>): void {
    const list = this.waiting.get(key);
    const i = list?.indexOf(entry) ?? -1;
    if (!list || i < 0) return; // taken meanwhile
    list.splice(i, 1);
    if (list.length === 0) this.waiting.delete(key);
    clearTimeout(entry.timer);
    // No task came for the whole time it waited: the pool was one too big for the demand.
    const d = this.demand.get(key);
    if (d && d.lastClaim <= entry.born && d.peak > 0) d.peak--;
    void entry.sandbox
      .dispose()
      .catch(() => undefined)
      .finally(() => this.refillSoon());
  }
}
