/**
 * Giving back the buffers task output arrives in.
 *
 * Node reads a task's pipes into a new 64 KiB buffer per read, allocated with malloc outside
 * the JavaScript heap. The spool writes each one at once and drops it, but it is freed only
 * when V8 next collects its young generation, and V8 starts one by how much JavaScript
 * allocates (little per read) or, for memory outside its heap, after ~64 MiB of it. So a task
 * printing at full speed left tens of MiB of dead buffers behind between collections and the
 * C allocator's heap grew to hold them (heaptrack: 28 MiB of pipe buffers alive at the peak).
 * Once uploads stopped allocating a body per chunk, nothing else pushed V8 to collect: a
 * worked agent idled at 142–147 MiB (/tmp script: 200 `true` tasks, 300 MiB of output, 4
 * output tasks at once; 116–127 before the upload change). A young-generation collection
 * every few MiB of output frees the buffers while they are few: 125 MiB, and the agent's CPU
 * per MiB of output did not rise. One such collection pauses the agent ~0.2–0.3 ms on an idle
 * machine (--trace-gc), more when other processes hold the CPUs.
 *
 * Buffers that lived through two such collections (output read while the event loop was busy,
 * upload bodies) sit in V8's old generation until a full collection, which V8 starts by its
 * own heuristics, possibly never once the agent is idle. So when output stops (none read and
 * none uploaded for IDLE_COLLECT_MS after at least RECLAIM_EVERY_BYTES of it), one full
 * collection runs. It frees
 * those buffers; whether their memory goes back to the system is the C allocator's business,
 * which the agent's launchers help with (AGENT_PROCESS in flags.ts). One such collection costs
 * ~10–25 ms of CPU on a worked agent's ~15 MiB heap (--trace-gc under load), once per burst of
 * output, never while the agent is idle.
 *
 * The collection is V8's own `gc` function, which Node exposes only with `--expose-gc`; the
 * flag is set for the moment it takes to fetch that function (a documented V8 idiom), so the
 * agent needs no special command line. Where the function cannot be had, nothing is done.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8's `gc`: with `{ type: 'minor' }` a young-generation collection; with no argument a full one.
 * (Node 20's V8 takes `{ type: 'major' }` for a young-generation collection too: --trace-gc
 * shows a Scavenge.)
 */
type Collector = (options?: { type: 'minor' }) => void;

/** Output bytes between two young-generation collections. */
const RECLAIM_EVERY_BYTES = 4 * 1024 * 1024;

/** No output for this long (after at least RECLAIM_EVERY_BYTES since the last one): a full collection. */
const IDLE_COLLECT_MS = 2000;

function exposeCollector(): Collector | undefined {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return own as Collector;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Collector) : undefined;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

export class BufferReclaimer {
  private pending = 0;
  /** Output bytes since the last full collection. */
  private sinceFull = 0;
  private lastNoteAt = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private collector: Collector | undefined | null = null;

  /** `collect` is V8's collector unless a test gives its own. */
  constructor(
    private readonly collect?: Collector,
    private readonly everyBytes = RECLAIM_EVERY_BYTES,
    private readonly idleMs = IDLE_COLLECT_MS,
  ) {}

  /** `bytes` of output were read and written out: collect once enough have passed. */
  note(bytes: number): void {
    this.pending += bytes;
    this.sinceFull += bytes;
    this.lastNoteAt = Date.now();
    // The timer is armed once per burst and re-armed only when it finds output still flowing.
    if (this.sinceFull >= this.everyBytes && !this.idleTimer) this.armIdle(this.idleMs);
    if (this.pending < this.everyBytes) return;
    this.pending = 0;
    this.run('minor');
  }

  /**
   * Output is still being handled: an upload read its body from the spool. Uploads go on for
   * seconds after a fast task's pipes close (the server takes the output at its own pace), and
   * their garbage (HTTP and TLS buffers) outlived a collection made 2 s after the last byte
   * read: 20 MiB of ArrayBuffers in an idle agent after four 25 MiB tasks at once. So quiet
   * means no output read and no upload for IDLE_COLLECT_MS.
   */
  touch(): void {
    this.lastNoteAt = Date.now();
  }

  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(() => this.onQuiet(), ms);
    // Never what keeps the agent's process alive.
    this.idleTimer.unref();
  }

  private onQuiet(): void {
    this.idleTimer = undefined;
    const quietFor = Date.now() - this.lastNoteAt;
    if (quietFor < this.idleMs) {
      this.armIdle(this.idleMs - quietFor);
      return;
    }
    this.sinceFull = 0;
    this.pending = 0;
    this.run('full');
  }

  private run(type: 'minor' | 'full'): void {
    if (this.collector === null) this.collector = this.collect ?? exposeCollector();
    if (type === 'minor') this.collector?.({ type });
    else this.collector?.();
  }
}

/** One for the whole agent: the buffers of all its tasks pile up in one heap. */
export const outputBuffers = new BufferReclaimer();
