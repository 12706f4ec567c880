/**
 * The output chunks of one event-loop turn, kept until the turn ends (task-runner.ts gives the
 * masker what the pipes gave in one turn together: stream-seams.ts).
 *
 * A task's pipe chunks are borrowed: views of one read buffer the next read overwrites
 * (executor/pipe-reader.ts). So the turn keeps copies, in one buffer of its own that serves
 * turn after turn rather than one allocation per chunk. Adjacent chunks of one stream are
 * joined: the masker's output does not depend on how a turn's chunks were cut
 * (masker-stream.ts), and one chunk per stream spares it joining them.
 */

const EMPTY: Buffer = Buffer.alloc(0);
/**
 * The smallest store: above glibc's mmap threshold as the agent's launchers set it
 * (AGENT_PROCESS in flags.ts), so it is a mapping of its own, given back whole when freed;
 * and room for two full pipe reads.
 */
const MIN_STORE_BYTES = 128 * 1024;

export class TurnCopies<Id> {
  private store: Buffer = EMPTY;
  private used = 0;
  private readonly ids: Id[] = [];
  /** Where each part ends in `store`; part i starts where part i-1 ends. */
  private readonly ends: number[] = [];

  /** True when nothing was added since the last take(). */
  get empty(): boolean {
    return this.ids.length === 0;
  }

  /** Copies `chunk` (of stream `id`) into the turn. */
  add(id: Id, chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.used + chunk.length > this.store.length) this.grow(this.used + chunk.length);
    this.store.set(chunk, this.used);
    this.used += chunk.length;
    const last = this.ids.length - 1;
    if (last >= 0 && this.ids[last] === id) this.ends[last] = this.used;
    else {
      this.ids.push(id);
      this.ends.push(this.used);
    }
  }

  /**
   * The turn's parts in the order they came, and a new turn begins. The parts are views of
   * the store: valid until the next add().
   */
  take(): [Id, Buffer][] {
    const parts: [Id, Buffer][] = this.ids.map((id, i) => [id, this.store.subarray(i === 0 ? 0 : this.ends[i - 1], this.ends[i])]);
    this.ids.length = 0;
    this.ends.length = 0;
    this.used = 0;
    return parts;
  }

  private grow(need: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(2 * need, MIN_STORE_BYTES));
    this.store.copy(next, 0, 0, this.used);
    this.store = next;
  }
}
