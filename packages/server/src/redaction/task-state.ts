/**
 * A task's redaction between uploads: one redactor per output stream (stdout, stderr), their
 * states carried together in the task row as one JSON string, so the redaction of a stream is
 * the same however its bytes were split into uploads. The agent's own notices (the `system`
 * stream) pass as they are.
 */
import { Buffer } from 'node:buffer';
import { Streams, type OutputFrame, type RedactLevel } from '@ferry/protocol';
import type { HeldOutputFlush, OutputTransform } from '../store/types.js';
import { OutputRedactor } from './redactor.js';

type StreamKey = '1' | '2';
type RedactorStates = Partial<Record<StreamKey, string>>;

function loadStates(state: string | null): RedactorStates {
  return state ? (JSON.parse(state) as RedactorStates) : {};
}

function redactorFor(level: RedactLevel, states: RedactorStates, stream: StreamKey): OutputRedactor {
  const saved = states[stream];
  return saved === undefined ? new OutputRedactor(level) : OutputRedactor.fromState(level, saved);
}

/** A view, not a copy: the redactor reads latin1 from a Buffer. */
function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.length);
}

/** Neighbouring pieces are joined into one frame up to this size: a copy of a few KiB is cheaper than a frame more. */
const JOIN_MAX_BYTES = 16 * 1024;

/**
 * A frame's redacted pieces (redactor.pushPieces) as the data of one or more frames of the same
 * stream and time, in order: small neighbours joined, a large piece (a view of the upload: the
 * lines no rule touched) left as it is. Joining it with the line held from the previous frame,
 * which nearly always comes first, copied every byte of output once more (~0.4 ms of CPU per
 * MiB, and as much again in garbage). Readers see the same bytes in the same order.
 */
function coalesce(pieces: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let group: Buffer[] = [];
  let bytes = 0;
  const close = (): void => {
    if (group.length > 0) out.push(group.length === 1 ? (group[0] as Buffer) : Buffer.concat(group, bytes));
    group = [];
    bytes = 0;
  };
  for (const piece of pieces) {
    if (bytes + piece.length > JOIN_MAX_BYTES) close();
    group.push(piece);
    bytes += piece.length;
  }
  close();
  return out;
}

/** Redacts fresh frames, continuing each stream from the state the previous upload left. */
export function redactingTransform(level: RedactLevel): OutputTransform {
  return (fresh, state) => {
    if (level === 'none') return { frames: [...fresh], state: null };
    const states = loadStates(state);
    const redactors = new Map<StreamKey, OutputRedactor>();
    const frames: OutputFrame[] = [];
    // A partial line is released once per upload, at each stream's last frame: an upload is
    // what the agent flushes (about every 250 ms), so a progress line streams at that rate.
    const last = new Map<number, number>();
    fresh.forEach((frame, i) => last.set(frame.stream, i));
    for (const [i, frame] of fresh.entries()) {
      if (frame.stream === Streams.system) {
        frames.push(frame);
        continue;
      }
      const key: StreamKey = frame.stream === Streams.stdout ? '1' : '2';
      const redactor = redactors.get(key) ?? redactorFor(level, states, key);
      redactors.set(key, redactor);
      for (const data of coalesce(redactor.pushPieces(asBuffer(frame.data), last.get(frame.stream) === i))) frames.push({ ...frame, data });
    }
    for (const [key, redactor] of redactors) states[key] = redactor.exportState();
    return { frames, state: JSON.stringify(states) };
  };
}

/** When the task ends: what each stream's redactor still held, redacted, as the last frames. */
export function heldOutputFlush(level: RedactLevel): HeldOutputFlush {
  return (state) => {
    if (level === 'none' || state === null) return [];
    const states = loadStates(state);
    const frames: OutputFrame[] = [];
    for (const key of ['1', '2'] as const) {
      if (states[key] === undefined) continue;
      const data = redactorFor(level, states, key).flush();
      if (data.length > 0) frames.push({ stream: key === '1' ? Streams.stdout : Streams.stderr, time: Date.now(), data });
    }
    return frames;
  };
}
