/**
 * An upload is stored in slices, each its own append (redaction, one transaction, the digest),
 * one slice per turn of the event loop whoever it is for (`OutputTurns`): an 8 MiB upload then
 * never holds the server for more than one agent upload's worth of work (a few ms) at a time, and several at once do
 * not add up between two turns, so every other request gets its turn in between. Appends are
 * addressed by offset and idempotent, and redaction does not depend on where uploads are cut,
 * so storing an upload in slices stores exactly what one append would.
 */
import { DIGEST_BLOCK_BYTES, type OutputFrame } from '@ferry/protocol';

/**
 * What one slice holds at most: one agent upload (1 MiB), so an upload is one append, one
 * transaction and, on PostgreSQL, one commit, rather than one per digest block (each commit
 * cost more than storing the block). A multiple of the output digest's block, so slices cut at
 * block edges and their digest states are cheap. Larger uploads (the route takes up to 8 MiB)
 * still go a slice per turn of the event loop.
 */
const SLICE_BYTES = 16 * DIGEST_BLOCK_BYTES;
const SLICE_FRAMES = 128;

/**
 * The frames in slices of at most SLICE_BYTES and SLICE_FRAMES, in order; a frame longer than a
 * slice is cut into several of the same stream and time, and empty frames (which store nothing)
 * are left out. Slices end on block edges of the output digest (the frames start at output
 * offset `start`): the first one at most SLICE_BYTES from the block edge before `start`, the
 * others SLICE_BYTES long, except where SLICE_FRAMES ends one first. Always at least one slice,
 * maybe empty.
 */
export function outputSlices(frames: readonly OutputFrame[], start = 0): OutputFrame[][] {
  let slice: OutputFrame[] = [];
  const slices = [slice];
  // The first slice is short by where `start` lies in its digest block, so later ones start at
  // an edge (an agent's uploads start on one when more than an upload is waiting).
  let bytes = start % DIGEST_BLOCK_BYTES;
  let emitted = 0;
  for (const frame of frames) {
    for (let at = 0; at < frame.data.length;) {
      if (slice.length === SLICE_FRAMES || bytes === SLICE_BYTES) {
        slice = [];
        slices.push(slice);
        bytes = (start + emitted) % DIGEST_BLOCK_BYTES;
      }
      const take = Math.min(frame.data.length - at, SLICE_BYTES - bytes);
      slice.push(take === frame.data.length ? frame : { ...frame, data: frame.data.subarray(at, at + take) });
      bytes += take;
      emitted += take;
      at += take;
    }
  }
  return slices;
}

/**
 * Hands out turns of the event loop, one at a time, in the order asked: a turn starts in the
 * loop's check phase (setImmediate) after the previous turn's, so I/O (other requests) is
 * served between any two. The holder does its slice synchronously (the store is synchronous)
 * when its turn resolves.
 */
export class OutputTurns {
  private last: Promise<void> = Promise.resolve();

  next(): Promise<void> {
    const turn = this.last.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    this.last = turn;
    return turn;
  }
}
