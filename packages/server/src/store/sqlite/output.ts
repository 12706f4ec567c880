/**
 * Task output in SQLite. Two offsets: `output_bytes` counts what the agent sent (its offsets,
 * which make uploads idempotent); `stored_bytes` counts what was stored after redaction (the
 * offsets readers use). These run inside the store's transactions; they never change a task's
 * state.
 */
import type Database from 'better-sqlite3';
import { isStreamId, type OutputFrame } from '@ferry/protocol';
import type { AppendResult, ExpiredOutput, HeldOutputFlush, OutputTransform } from '../types.js';
import { num, strOrNull, type Row } from './rows.js';

export type Statements = (sql: string) => Database.Statement;

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

/** Appends frames at stored offset `at` and counts them to the organization's usage; returns the new end. */
function insertFrames(stmt: Statements, taskId: string, orgId: string, at: number, frames: readonly OutputFrame[]): number {
  const start = at;
  const insert = stmt('INSERT INTO task_output (task_id, start_offset, end_offset, stream, time, data) VALUES (?, ?, ?, ?, ?, ?)');
  for (const frame of frames) {
    if (frame.data.length === 0) continue;
    insert.run(taskId, at, at + frame.data.length, frame.stream, frame.time, frame.data);
    at += frame.data.length;
  }
  if (at > start) stmt('UPDATE orgs SET output_bytes = output_bytes + ? WHERE id = ?').run(at - start, orgId);
  return at;
}

/** Call inside a transaction: the running task's counters are read and written as one. */
export function appendOutput(
  stmt: Statements,
  taskId: string,
  agentId: string,
  offset: number,
  frames: readonly OutputFrame[],
  transform: OutputTransform,
): AppendResult | 'not_held' {
  const t = stmt("SELECT org_id, output_bytes, stored_bytes, redact_state FROM tasks WHERE id = ? AND agent_id = ? AND status = 'running'").get(
    taskId,
    agentId,
  ) as Row | undefined;
  if (!t) return 'not_held';
  const expected = num(t.output_bytes);
  if (offset > expected) return { ok: false, expectedOffset: expected };
  const fresh = unseenFrames(frames, offset, expected);
  const received = fresh.reduce((n, f) => n + f.data.length, 0);
  if (received === 0) return { ok: true, nextOffset: expected, fresh: [], freshOffset: expected };
  const out = transform(fresh, strOrNull(t.redact_state));
  const stored = insertFrames(stmt, taskId, String(t.org_id), num(t.stored_bytes), out.frames);
  stmt('UPDATE tasks SET output_bytes = ?, stored_bytes = ?, redact_state = ? WHERE id = ? AND output_bytes = ?').run(
    expected + received,
    stored,
    out.state,
    taskId,
    expected,
  );
  return { ok: true, nextOffset: expected + received, fresh, freshOffset: expected };
}

/** Stores what the redactor still held back and clears its state. Call inside the ending's transaction. */
export function flushHeldOutput(stmt: Statements, taskId: string, flush: HeldOutputFlush): void {
  const t = stmt('SELECT org_id, stored_bytes, redact_state FROM tasks WHERE id = ? AND redact_state IS NOT NULL').get(taskId) as Row | undefined;
  if (!t) return;
  const stored = insertFrames(stmt, taskId, String(t.org_id), num(t.stored_bytes), flush(strOrNull(t.redact_state)));
  stmt('UPDATE tasks SET stored_bytes = ?, redact_state = NULL WHERE id = ?').run(stored, taskId);
}

export function readOutput(stmt: Statements, taskId: string, offset: number, maxBytes: number, maxFrames: number): OutputFrame[] {
  const frames: OutputFrame[] = [];
  let bytes = 0;
  // Seek by the primary key (task_id, start_offset): the row holding `offset`, then onwards.
  const first = stmt('SELECT MAX(start_offset) AS s FROM task_output WHERE task_id = ? AND start_offset <= ?').get(taskId, offset) as Row;
  const from = first.s === null ? 0 : num(first.s);
  for (const raw of stmt(
    'SELECT start_offset, end_offset, stream, time, data FROM task_output WHERE task_id = ? AND start_offset >= ? ORDER BY start_offset',
  ).iterate(taskId, from)) {
    const r = raw as Row;
    if (num(r.end_offset) <= offset) continue;
    const stream = num(r.stream);
    if (!isStreamId(stream)) continue;
    let data = r.data as Buffer;
    const start = num(r.start_offset);
    if (start < offset) data = data.subarray(offset - start);
    if (bytes > 0 && bytes + data.length > maxBytes) break;
    frames.push({ stream, time: num(r.time), data });
    bytes += data.length;
    if (bytes >= maxBytes || frames.length >= maxFrames) break;
  }
  return frames;
}

/**
 * Removes the stored output of up to `maxTasks` tasks that finished before `before`: their
 * frames go, the task rows stay (marked with when), and each organization's usage shrinks.
 * Call inside a transaction. Returns what was removed, per organization.
 */
export function expireOutput(stmt: Statements, before: number, now: number, maxTasks: number): ExpiredOutput[] {
  const due = stmt('SELECT id, org_id, stored_bytes FROM tasks WHERE output_expired_at IS NULL AND stored_bytes > 0 AND finished_at < ? LIMIT ?').all(
    before,
    maxTasks,
  ) as Row[];
  const byOrg = new Map<string, ExpiredOutput>();
  for (const t of due) {
    const orgId = String(t.org_id);
    const bytes = num(t.stored_bytes);
    stmt('DELETE FROM task_output WHERE task_id = ?').run(t.id);
    stmt('UPDATE tasks SET output_expired_at = ? WHERE id = ?').run(now, t.id);
    stmt('UPDATE orgs SET output_bytes = MAX(0, output_bytes - ?) WHERE id = ?').run(bytes, orgId);
    const entry = byOrg.get(orgId) ?? { orgId, tasks: 0, bytes: 0 };
    entry.tasks += 1;
    entry.bytes += bytes;
    byOrg.set(orgId, entry);
  }
  return [...byOrg.values()];
}
