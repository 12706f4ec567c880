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
 * Offsets count output bytes only, never frame headers.
 */
export const OUTPUT_FRAMES_CONTENT_TYPE = 'application/vnd.ferry.frames';
export const FRAME_HEADER_BYTES = 13;

export const Streams = { stdout: 1, stderr: 2, system: 3 } as const;
export type StreamName = keyof typeof Streams;
export type StreamId = (typeof Streams)[StreamName];

export interface OutputFrame {
  stream: StreamId;
  time: number;
  data: Buffer;
}

export function isStreamId(value: number): value is StreamId {
  return value === 1 || value === 2 || value === 3;
}

export function encodeFrames(frames: readonly OutputFrame[]): Buffer {
  const total = frames.reduce((n, f) => n + FRAME_HEADER_BYTES + f.data.length, 0);
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const frame of frames) {
    out.writeUInt8(frame.stream, at);
    out.writeUInt32BE(frame.data.length, at + 1);
    out.writeDoubleBE(frame.time, at + 5);
    frame.data.copy(out, at + FRAME_HEADER_BYTES);
    at += FRAME_HEADER_BYTES + frame.data.length;
  }
  return out;
}

/** Decodes a complete buffer of frames. Throws on a truncated or malformed buffer. */
export function decodeFrames(buffer: Buffer): OutputFrame[] {
  const decoder = new FrameDecoder();
  const frames = decoder.push(buffer);
  if (decoder.pendingBytes() !== 0) throw new Error('truncated output frame');
  return frames;
}

/** Incremental decoder for frames arriving in arbitrary pieces (an HTTP response body). */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(piece: Buffer): OutputFrame[] {
    this.pending = this.pending.length === 0 ? piece : Buffer.concat([this.pending, piece]);
    const frames: OutputFrame[] = [];
    let at = 0;
    while (this.pending.length - at >= FRAME_HEADER_BYTES) {
      const stream = this.pending.readUInt8(at);
      if (!isStreamId(stream)) throw new Error(`bad output frame: unknown stream ${stream}`);
      const length = this.pending.readUInt32BE(at + 1);
      if (this.pending.length - at - FRAME_HEADER_BYTES < length) break;
      const time = this.pending.readDoubleBE(at + 5);
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
