/**
 * What happens to output between the agent's upload and the store: redaction per stream (the
 * agent's own notices on the `system` stream pass as they are), with the redactors' held-back
 * bytes carried in the task row between uploads, and a running SHA-256 of the raw bytes so the
 * final status's checksum can be checked even though what is stored differs.
 */
import { createHash, type Hash } from 'node:crypto';
import { Streams, type OutputFrame, type RedactLevel } from '@ferry/protocol';
import { OutputRedactor } from './redaction.js';
import type { OutputTransform } from './store/types.js';

type RedactorStates = Partial<Record<'1' | '2', string>>;

function loadStates(state: string | null): RedactorStates {
  return state ? (JSON.parse(state) as RedactorStates) : {};
}

function redactorFor(level: RedactLevel, states: RedactorStates, stream: '1' | '2'): OutputRedactor {
  const saved = states[stream];
  return saved === undefined ? new OutputRedactor(level) : OutputRedactor.fromState(level, saved);
}

export function redactingTransform(level: RedactLevel, onRaw: (frames: readonly OutputFrame[], rawOffset: number) => void): OutputTransform {
  return (fresh, state, rawOffset) => {
    onRaw(fresh, rawOffset);
    if (level === 'none') return { frames: [...fresh], state: null };
    const states = loadStates(state);
    const redactors = new Map<'1' | '2', OutputRedactor>();
    const frames: OutputFrame[] = [];
    for (const frame of fresh) {
      if (frame.stream === Streams.system) {
        frames.push(frame);
        continue;
      }
      const key = frame.stream === Streams.stdout ? '1' : '2';
      let redactor = redactors.get(key);
      if (!redactor) {
        redactor = redactorFor(level, states, key);
        redactors.set(key, redactor);
      }
      const data = redactor.push(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.length));
      if (data.length > 0) frames.push({ ...frame, data });
    }
    for (const [key, redactor] of redactors) states[key] = redactor.exportState();
    return { frames, state: JSON.stringify(states) };
  };
}

export function redactingFlush(level: RedactLevel): (state: string | null) => OutputFrame[] {
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

/**
 * Running SHA-256 of each task's raw output, in memory. After a server restart mid-task the
 * digest is gone and only the length is checked (logged); see README, "Output".
 */
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

  /** The digest if we saw every byte, else undefined. Forgets the task. */
  take(taskId: string, bytes: number): string | undefined {
    const entry = this.digests.get(taskId);
    this.digests.delete(taskId);
    return entry && entry.bytes === bytes ? entry.hash.digest('hex') : undefined;
  }

  forget(taskId: string): void {
    this.digests.delete(taskId);
  }
}
