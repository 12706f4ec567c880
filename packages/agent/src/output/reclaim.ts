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
 * The collection is V8's own `gc` function, which Node exposes only with `--expose-gc`; the
 * flag is set for the moment it takes to fetch that function (a documented V8 idiom), so the
 * agent needs no special command line. Where the function cannot be had, nothing is done.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collector = (options: { type: 'minor' }) => void;

/** Output bytes between two young-generation collections. */
const RECLAIM_EVERY_BYTES = 4 * 1024 * 1024;

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
  private collector: Collector | undefined | null = null;

  /** `collect` is V8's collector unless a test gives its own. */
  constructor(
    private readonly collect?: Collector,
    private readonly everyBytes = RECLAIM_EVERY_BYTES,
  ) {}

  /** `bytes` of output were read and written out: collect once enough have passed. */
  note(bytes: number): void {
    this.pending += bytes;
    if (this.pending < this.everyBytes) return;
    this.pending = 0;
    if (this.collector === null) this.collector = this.collect ?? exposeCollector();
    this.collector?.({ type: 'minor' });
  }
}

/** One for the whole agent: the buffers of all its tasks pile up in one heap. */
export const outputBuffers = new BufferReclaimer();
