/**
 * Running SHA-256 of each task's raw output (before redaction), in memory, so the final
 * status's checksum can be checked even though what is stored differs. After a server restart
 * mid-task the digest is gone and only the length is checked (logged); see README, "Output".
 *
 * A digest is kept until the task has ended (`forget`, called by the one ending path): a final
 * status that is refused (a wrong length or checksum) must not lose it, or a retry would be
 * checked for its length alone.
 */
import { createHash, type Hash } from 'node:crypto';
import type { OutputFrame } from '@ferry/protocol';

export class RawOutputDigests {
  private readonly digests = new Map<string, { hash: Hash; bytes: number }>();

  update(taskId: string, frames: readonly OutputFrame[], startOffset: number): void {
    let entry = this.digests.get(taskId);
    if (!entry) {
      if (startOffset !== 0) return; // we missed the beginning: cannot vouch for the whole
      entry = { hash: createHash('sha256'), bytes: 0 };
      this.digests.set(taskId, entry);
    }
    for (const f of frames) {
      entry.hash.update(f.data);
      entry.bytes += f.data.length;
    }
  }

  /** The digest of the output so far if we saw every one of its `bytes`, else undefined. Keeps the task. */
  peek(taskId: string, bytes: number): string | undefined {
    const entry = this.digests.get(taskId);
    return entry && entry.bytes === bytes ? entry.hash.copy().digest('hex') : undefined;
  }

  forget(taskId: string): void {
    this.digests.delete(taskId);
  }
}
