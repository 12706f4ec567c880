/**
 * What both stores decide about an upload before storing anything (sqlite/output.ts,
 * postgres/output.ts): given the upload's offset and what the task's row says the server has
 * received, either the answer to give at once or the part of the upload that is new.
 */
import type { OutputFrame } from '@ferry/protocol';
import type { AppendResult } from './types.js';

export type AppendPlan = { answer: AppendResult } | { fresh: OutputFrame[]; expected: number; received: number };

/** The part of an upload at `offset` that lies beyond `expected` (what the server already has). */
function unseenFrames(frames: readonly OutputFrame[], offset: number, expected: number): OutputFrame[] {
  const fresh: OutputFrame[] = [];
  let at = offset;
  for (const frame of frames) {
    const end = at + frame.data.length;
    if (end > expected) fresh.push({ ...frame, data: frame.data.subarray(Math.max(0, expected - at)) });
    at = end;
  }
  return fresh;
}

/**
 * An upload past the received end is a gap (answered with where it ends); one wholly received
 * already is acknowledged as it is (an idempotent resend). With a `digestState` (the raw output's
 * digest after these frames), the upload must start exactly at the received end: the state was
 * computed for bytes from `offset`, and from anywhere else it would be wrong.
 */
export function planAppend(frames: readonly OutputFrame[], offset: number, expected: number, digestState: string | null): AppendPlan {
  if (offset > expected) return { answer: { ok: false, expectedOffset: expected } };
  const fresh = unseenFrames(frames, offset, expected);
  const received = fresh.reduce((n, f) => n + f.data.length, 0);
  if (received === 0) return { answer: { ok: true, nextOffset: expected, fresh: [], freshOffset: expected } };
  if (digestState !== null && offset !== expected) return { answer: { ok: false, expectedOffset: expected } };
  return { fresh, expected, received };
}
