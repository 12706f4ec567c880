/**
 * An upload is stored in slices, each its own append (redaction, one transaction, the digest),
 * with a turn of the event loop between them: an 8 MiB upload then never holds the server for
 * more than a few milliseconds at a time, and several of them at once interleave with every
 * other request. Appends are addressed by offset and idempotent, and redaction does not depend
 * on where uploads are cut, so storing an upload in slices stores exactly what one append would.
 */
import type { OutputFrame } from '@ferry/protocol';

/** What one slice holds at most: about 3 ms of redaction at worst, and a few hundred rows. */
const SLICE_BYTES = 256 * 1024;
const SLICE_FRAMES = 512;

/**
 * The frames in slices of at most SLICE_BYTES and SLICE_FRAMES, in order; a frame longer than a
 * slice is cut into several of the same stream and time, and empty frames (which store nothing)
 * are left out. Always at least one slice, maybe empty.
 */
export function outputSlices(frames: readonly OutputFrame[]): OutputFrame[][] {
  let slice: OutputFrame[] = [];
  const slices = [slice];
  let bytes = 0;
  for (const frame of frames) {
    for (let at = 0; at < frame.data.length; ) {
      if (slice.length === SLICE_FRAMES || bytes === SLICE_BYTES) {
        slice = [];
        slices.push(slice);
        bytes = 0;
      }
      const take = Math.min(frame.data.length - at, SLICE_BYTES - bytes);
      slice.push(take === frame.data.length ? frame : { ...frame, data: frame.data.subarray(at, at + take) });
      bytes += take;
      at += take;
    }
  }
  return slices;
}

/** Lets other requests (I/O callbacks) run before the next slice. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
