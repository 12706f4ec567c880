/**
 * Output framing. A task's output is one byte sequence addressed by offset; beside the bytes
 * we keep which stream they came from and when, so timestamps never get mixed into the bytes.
 *
 * On the wire (agent → server uploads, server → client log reads) output travels as frames:
 *
 *   +--------+----------------+-----------------------+-----------------+
 *   | stream | length (u32 BE)| time, ms since epoch  | `length` bytes  |
 *   | 1 byte |    4 bytes     |   (f64 BE), 8 bytes   |   of output     |
 *   +--------+----------------+-----------------------+-----------------+
 *
 * Offsets count output bytes only, never frame headers. Works on `Uint8Array` (browser-safe);
 * a Node `Buffer` passed in comes back as `Buffer` slices.
 */
import { concatBytes } from './bytes.js';

export const OUTPUT_FRAMES_CONTENT_TYPE = 'application/vnd.ferry.frames';
export const FRAME_HEADER_BYTES = 13;

export const Streams = { stdout: 1, stderr: 2, system: 3 } as const;
export type StreamName = keyof typeof Streams;
export type StreamId = (typeof Streams)[StreamName];

export interface OutputFrame {
  stream: StreamId;
  time: number;
  data: Uint8Array;
}

export function isStreamId(value: number): value is StreamId {
  return value === 1 || value === 2 || value === 3;
}

export function frameBytes(frames: readonly OutputFrame[]): number {
  return frames.reduce((n, f) => n + f.data.length, 0);
}

export function encodeFrames(frames: readonly OutputFrame[]): Uint8Array {
  const total = frames.reduce((n, f) => n + FRAME_HEADER_BYTES + f.data.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const frame of frames) {
    view.setUint8(at, frame.stream);
    view.setUint32(at + 1, frame.data.length);
    view.setFloat64(at + 5, frame.time);
    out.set(frame.data, at + FRAME_HEADER_BYTES);
    at += FRAME_HEADER_BYTES + frame.data.length;
  }
  return out;
}

/** Decodes a complete buffer of frames. Throws on a truncated or malformed buffer. */
export function decodeFrames(buffer: Uint8Array): OutputFrame[] {
  const decoder = new FrameDecoder();
  const frames = decoder.push(buffer);
  if (decoder.pendingBytes() !== 0) throw new Error('truncated output frame');
  return frames;
}

/** Incremental decoder for frames arriving in arbitrary pieces (an HTTP response body). */
export class FrameDecoder {
  private pending: Uint8Array = new Uint8Array(0);

  push(piece: Uint8Array): OutputFrame[] {
    this.pending = this.pending.length === 0 ? piece : concatBytes([this.pending, piece]);
    const view = new DataView(this.pending.buffer, this.pending.byteOffset, this.pending.byteLength);
    const frames: OutputFrame[] = [];
    let at = 0;
    while (this.pending.length - at >= FRAME_HEADER_BYTES) {
      const stream = view.getUint8(at);
      if (!isStreamId(stream)) throw new Error(`bad output frame: unknown stream ${stream}`);
      const length = view.getUint32(at + 1);
      if (this.pending.length - at - FRAME_HEADER_BYTES < length) break;
      const time = view.getFloat64(at + 5);
      if (!Number.isFinite(time)) throw new Error('bad output frame: time is not a finite number');
      const start = at + FRAME_HEADER_BYTES;
      frames.push({ stream, time, data: this.pending.subarray(start, start + length) });
      at = start + length;
    }
    this.pending = this.pending.subarray(at);
    return frames;
  }

  pendingBytes(): number {
    return this.pending.length;
  }
}
