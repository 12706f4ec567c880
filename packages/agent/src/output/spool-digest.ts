/**
 * The output digest (protocol's OutputDigest) of a task's spooled output at any offset: each
 * upload carries the digest up to its end, and the final status the digest of all of it.
 * Uploads go forward from the last one, so the running state moves with them and each byte is
 * hashed once; a resend from further back (the server asked for it) starts again from the
 * spool's beginning, which is rare and costs one pass over the spool.
 */
import { createHash } from 'node:crypto';
import { OutputDigest, type BlockHasher, type OutputFrame } from '@ferry/protocol';
import type { TaskSpool } from './spool.js';

const nativeBlock: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();

/** Spool reads for hashing, at most this many bytes each. */
const READ_BYTES = 8 * 1024 * 1024;

export class SpoolDigest {
  private running = new OutputDigest(nativeBlock);

  constructor(private readonly spool: TaskSpool) {}

  /** The digest at the end of `frames`, which start at spool offset `start`. */
  after(start: number, frames: readonly OutputFrame[]): string {
    this.seek(start);
    for (const f of frames) this.running.update(f.data);
    return this.running.hex();
  }

  /** The digest of everything spooled; the running state stays where the uploads are. */
  total(): string {
    const copy = this.running.clone();
    this.advance(copy, this.spool.bytesProduced);
    return copy.hex();
  }

  private seek(offset: number): void {
    if (offset < this.running.length) this.running = new OutputDigest(nativeBlock);
    this.advance(this.running, offset);
  }

  private advance(digest: OutputDigest, offset: number): void {
    while (digest.length < offset) {
      const frames = this.spool.read(digest.length, Math.min(READ_BYTES, offset - digest.length));
      if (frames.length === 0) throw new Error(`the spool of ${this.spool.taskId} ends before offset ${offset}`);
      for (const f of frames) digest.update(f.data);
    }
  }
}
