/**
 * Task output: the bytes in one append-only file per task (output-files.ts), where each frame
 * starts and ends, its stream and time in SQLite (`task_output_frames`). Two offsets:
 * `output_bytes` counts what the agent sent (its offsets, which make uploads idempotent);
 * `stored_bytes` counts what was stored after redaction (the offsets readers use, and how far
 * the task's file is valid). `output_digest` is the digest state of the raw bytes received
 * (protocol's OutputDigest), so the final status can be checked by any replica. These run
 * inside the store's transactions; they never change a task's state.
 */
import type Database from 'better-sqlite3';
import { FRAME_HEADER_BYTES, isStreamId, type OutputFrame } from '@ferry/protocol';
import type { AppendResult, ExpiredOutput, HeldOutputFlush, OutputTransform } from '../types.js';
import { planAppend } from '../output-append.js';
import type { OutputFiles } from './output-files.js';
import { num, strOrNull, type Row } from './rows.js';

export type Statements = (sql: string) => Database.Statement;

/** What the output functions work with: the store's statements and its output files. */
export interface OutputContext {
  stmt: Statements;
  files: OutputFiles;
}

/**
 * Appends frames at stored offset `at`: their bytes to the task's file (at the recorded end),
 * their places to `task_output_frames`, their size to the organization's usage; returns the new
 * end, which the caller records in the same transaction.
 */
function insertFrames(out: OutputContext, taskId: string, orgId: string, at: number, frames: readonly OutputFrame[]): number {
  const start = at;
  const insert = out.stmt('INSERT INTO task_output_frames (task_id, start_offset, end_offset, stream, time) VALUES (?, ?, ?, ?, ?)');
  const chunks: Uint8Array[] = [];
  for (const frame of frames) {
    if (frame.data.length === 0) continue;
    insert.run(taskId, at, at + frame.data.length, frame.stream, frame.time);
    chunks.push(frame.data);
    at += frame.data.length;
  }
  out.files.write(taskId, start, chunks);
  if (at > start) out.stmt('UPDATE orgs SET output_bytes = output_bytes + ? WHERE id = ?').run(at - start, orgId);
  return at;
}

/**
 * Call inside a transaction: the running task's counters are read and written as one. With a
 * `digestState` (the raw output's digest after these frames), the append must start where the
 * received output ends; an upload overlapping it only partly is answered with where it ends.
 */
export function appendOutput(
  out: OutputContext,
  taskId: string,
  agentId: string,
  offset: number,
  frames: readonly OutputFrame[],
  transform: OutputTransform,
  digestState: string | null,
): AppendResult | 'not_held' {
  const { stmt } = out;
  const t = stmt("SELECT org_id, output_bytes, stored_bytes, redact_state FROM tasks WHERE id = ? AND agent_id = ? AND status = 'running'").get(
    taskId,
    agentId,
  ) as Row | undefined;
  if (!t) return 'not_held';
  const plan = planAppend(frames, offset, num(t.output_bytes), digestState);
  if ('answer' in plan) return plan.answer;
  const { fresh, expected, received } = plan;
  const redacted = transform(fresh, strOrNull(t.redact_state));
  const stored = insertFrames(out, taskId, String(t.org_id), num(t.stored_bytes), redacted.frames);
  stmt('UPDATE tasks SET output_bytes = ?, stored_bytes = ?, redact_state = ?, output_digest = ? WHERE id = ? AND output_bytes = ?').run(
    expected + received,
    stored,
    redacted.state,
    digestState,
    taskId,
    expected,
  );
  return { ok: true, nextOffset: expected + received, fresh, freshOffset: expected };
}

/** Stores what the redactor still held back and clears its state. Call inside the ending's transaction. */
export function flushHeldOutput(out: OutputContext, taskId: string, flush: HeldOutputFlush): void {
  const t = out.stmt('SELECT org_id, stored_bytes, redact_state FROM tasks WHERE id = ? AND redact_state IS NOT NULL').get(taskId) as Row | undefined;
  if (!t) return;
  const stored = insertFrames(out, taskId, String(t.org_id), num(t.stored_bytes), flush(strOrNull(t.redact_state)));
  out.stmt('UPDATE tasks SET stored_bytes = ?, redact_state = NULL WHERE id = ?').run(stored, taskId);
}

/**
 * Stored output from `offset`: the frames' places from SQLite (a seek by primary key to the frame
 * holding `offset`, then onwards, never earlier ones), their bytes with one read of the file.
 * Only committed frames are listed, so bytes of an append in progress are never read.
 */
export function readOutput(out: OutputContext, taskId: string, offset: number, maxBytes: number, maxFrames: number): OutputFrame[] {
  const first = out.stmt('SELECT MAX(start_offset) AS s FROM task_output_frames WHERE task_id = ? AND start_offset <= ?').get(taskId, offset) as Row;
  const from = first.s === null ? 0 : num(first.s);
  const places: Place[] = [];
  let bytes = 0;
  for (const raw of out
    .stmt('SELECT start_offset, end_offset, stream, time FROM task_output_frames WHERE task_id = ? AND start_offset >= ? ORDER BY start_offset')
    .iterate(taskId, from)) {
    const r = raw as Row;
    const end = num(r.end_offset);
    if (end <= offset) continue;
    const stream = num(r.stream);
    if (!isStreamId(stream)) continue;
    const start = Math.max(num(r.start_offset), offset);
    if (bytes > 0 && bytes + (end - start) > maxBytes) break;
    places.push({ start, end, stream, time: num(r.time) });
    bytes += end - start;
    if (bytes >= maxBytes || places.length >= maxFrames) break;
  }
  if (places.length === 0) return [];
  return readPlaces(out, taskId, places, bytes);
}

type Place = { start: number; end: number; stream: OutputFrame['stream']; time: number };

/**
 * The frames at `places` (contiguous in the task's file, `bytes` in all), read with one
 * scattered read into one buffer laid out as the frames' encoding (protocol's encodeFrames:
 * each frame's header, then its bytes), the frames' data views into it: the answer to a reader
 * is then that buffer as it is (http/route.ts, sendFrames), not a second copy.
 */
function readPlaces(out: OutputContext, taskId: string, places: readonly Place[], bytes: number): OutputFrame[] {
  const layout = Buffer.allocUnsafe(bytes + places.length * FRAME_HEADER_BYTES);
  const frames: OutputFrame[] = [];
  let at = 0;
  for (const p of places) {
    const length = p.end - p.start;
    layout.writeUInt8(p.stream, at);
    layout.writeUInt32BE(length, at + 1);
    layout.writeDoubleBE(p.time, at + 5);
    at += FRAME_HEADER_BYTES;
    frames.push({ stream: p.stream, time: p.time, data: layout.subarray(at, at + length) });
    at += length;
  }
  const got = out.files.readInto(
    taskId,
    places[0]!.start,
    frames.map((f) => f.data),
  );
  // Only a damaged data folder (a file lost or cut short by a power failure, see
  // OutputFiles.reconcile) lacks recorded bytes: say so, rather than answer with nothing, which
  // a follower would ask for again and again.
  if (got < bytes) throw new Error(`the output file of task ${taskId} ends before its recorded length (damaged data folder?)`);
  return frames;
}

/**
 * Removes the stored output of up to `maxTasks` tasks that finished before `before`: their
 * frames go, the task rows stay (marked with when), and each organization's usage shrinks.
 * Call inside a transaction. Returns what was removed, per organization.
 */
export function expireOutput(stmt: Statements, before: number, now: number, maxTasks: number): { expired: ExpiredOutput[]; taskIds: string[] } {
  const due = stmt('SELECT id, org_id, stored_bytes FROM tasks WHERE output_expired_at IS NULL AND stored_bytes > 0 AND finished_at < ? LIMIT ?').all(
    before,
    maxTasks,
  ) as Row[];
  const byOrg = new Map<string, ExpiredOutput>();
  for (const t of due) {
    const orgId = String(t.org_id);
    const bytes = num(t.stored_bytes);
    stmt('DELETE FROM task_output_frames WHERE task_id = ?').run(t.id);
    stmt('UPDATE tasks SET output_expired_at = ? WHERE id = ?').run(now, t.id);
    stmt('UPDATE orgs SET output_bytes = MAX(0, output_bytes - ?) WHERE id = ?').run(bytes, orgId);
    const entry = byOrg.get(orgId) ?? { orgId, tasks: 0, bytes: 0 };
    entry.tasks += 1;
    entry.bytes += bytes;
    byOrg.set(orgId, entry);
  }
  return { expired: [...byOrg.values()], taskIds: due.map((t) => String(t.id)) };
}

/**
 * Output stored before version 15 sat in `task_output` rows: moves it into files, one task per
 * transaction (a crash in between leaves that task's rows, and the next start moves it again,
 * over what it wrote). Returns how many tasks it moved.
 */
export function moveRowsToFiles(db: Database.Database, out: OutputContext): number {
  const { stmt } = out;
  let moved = 0;
  for (;;) {
    const next = stmt('SELECT task_id FROM task_output LIMIT 1').get() as Row | undefined;
    if (!next) return moved;
    const taskId = String(next.task_id);
    db.transaction(() => {
      const insert = stmt('INSERT OR REPLACE INTO task_output_frames (task_id, start_offset, end_offset, stream, time) VALUES (?, ?, ?, ?, ?)');
      const page = stmt(
        'SELECT start_offset, end_offset, stream, time, data FROM task_output WHERE task_id = ? AND start_offset >= ? ORDER BY start_offset LIMIT 256',
      );
      // In pages, not one iteration: nothing else may run on the connection while one is open.
      for (let from = 0, rows = page.all(taskId, from) as Row[]; rows.length > 0; rows = page.all(taskId, from) as Row[]) {
        for (const r of rows) {
          out.files.write(taskId, num(r.start_offset), [r.data as Buffer]);
          insert.run(taskId, r.start_offset, r.end_offset, r.stream, r.time);
          from = num(r.start_offset) + 1;
        }
      }
      stmt('DELETE FROM task_output WHERE task_id = ?').run(taskId);
    })();
    out.files.release(taskId);
    moved += 1;
  }
}
