/**
 * Task output in PostgreSQL: chunk rows (bytea) keyed by (task, stored offset), so a read seeks
 * to its offset by the primary key and a live reader costs one indexed range read per call,
 * whatever came before. Same two offsets as SQLite (sqlite/output.ts): `output_bytes` counts
 * what the agent sent, `stored_bytes` what was stored after redaction, and `output_digest` the
 * digest state of the raw bytes received (protocol's OutputDigest), written with them so that any
 * replica can check the final status. These run inside the store's transactions; the append locks the task row first (FOR UPDATE), so concurrent uploads
 * of one task, on any replica, apply one after the other.
 */
import { isStreamId, type OutputFrame } from '@ferry/protocol';
import type { AppendResult, ExpiredOutput, HeldOutputFlush, OutputTransform } from '../types.js';
import { num, strOrNull } from '../sqlite/rows.js';
import type { Row, Sql } from './db.js';

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

/** Rows per INSERT: well under PostgreSQL's 65535 parameters. */
const INSERT_BATCH = 500;

/** Appends frames at stored offset `at` (one multi-row INSERT per batch) and counts them to the organization; returns the new end. */
async function insertFrames(sql: Sql, taskId: string, orgId: string, at: number, frames: readonly OutputFrame[]): Promise<number> {
  const start = at;
  const rows: unknown[][] = [];
  for (const frame of frames) {
    if (frame.data.length === 0) continue;
    rows.push([taskId, at, at + frame.data.length, frame.stream, frame.time, Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.length)]);
    at += frame.data.length;
  }
  for (let i = 0; i < rows.length; i += INSERT_BATCH) {
    const batch = rows.slice(i, i + INSERT_BATCH);
    const values = batch.map(() => '(?, ?, ?, ?, ?, ?)').join(', ');
    await sql.run(`INSERT INTO task_output (task_id, start_offset, end_offset, stream, time, data) VALUES ${values}`, batch.flat());
  }
  if (at > start) await sql.run('UPDATE orgs SET output_bytes = output_bytes + ? WHERE id = ?', [at - start, orgId]);
  return at;
}

/**
 * Call inside a transaction. With a `digestState` (the raw output's digest after these frames),
 * the append must start where the received output ends; an upload overlapping it only partly is
 * answered with where it ends (as SQLite's, sqlite/output.ts).
 */
export async function appendOutput(
  sql: Sql,
  taskId: string,
  agentId: string,
  offset: number,
  frames: readonly OutputFrame[],
  transform: OutputTransform,
  digestState: string | null,
): Promise<AppendResult | 'not_held'> {
  const t = await sql.one(
    "SELECT org_id, output_bytes, stored_bytes, redact_state FROM tasks WHERE id = ? AND agent_id = ? AND status = 'running' FOR UPDATE",
    [taskId, agentId],
  );
  if (!t) return 'not_held';
  const expected = num(t.output_bytes);
  if (offset > expected) return { ok: false, expectedOffset: expected };
  const fresh = unseenFrames(frames, offset, expected);
  const received = fresh.reduce((n, f) => n + f.data.length, 0);
  if (received === 0) return { ok: true, nextOffset: expected, fresh: [], freshOffset: expected };
  // The digest state was computed for bytes from `offset`: from anywhere else it would be wrong.
  if (digestState !== null && offset !== expected) return { ok: false, expectedOffset: expected };
  const out = transform(fresh, strOrNull(t.redact_state));
  const stored = await insertFrames(sql, taskId, String(t.org_id), num(t.stored_bytes), out.frames);
  await sql.run('UPDATE tasks SET output_bytes = ?, stored_bytes = ?, redact_state = ?, output_digest = ? WHERE id = ? AND output_bytes = ?', [
    expected + received,
    stored,
    out.state,
    digestState,
    taskId,
    expected,
  ]);
  return { ok: true, nextOffset: expected + received, fresh, freshOffset: expected };
}

/** Stores what the redactor still held back and clears its state. Call inside the ending's transaction. */
export async function flushHeldOutput(sql: Sql, taskId: string, flush: HeldOutputFlush): Promise<void> {
  const t = await sql.one('SELECT org_id, stored_bytes, redact_state FROM tasks WHERE id = ? AND redact_state IS NOT NULL', [taskId]);
  if (!t) return;
  const stored = await insertFrames(sql, taskId, String(t.org_id), num(t.stored_bytes), flush(strOrNull(t.redact_state)));
  await sql.run('UPDATE tasks SET stored_bytes = ?, redact_state = NULL WHERE id = ?', [stored, taskId]);
}

/** Rows fetched per round trip at most (reads of many tiny frames take several). */
const READ_BATCH = 1024;

export async function readOutput(sql: Sql, taskId: string, offset: number, maxBytes: number, maxFrames: number): Promise<OutputFrame[]> {
  const frames: OutputFrame[] = [];
  let bytes = 0;
  // Seek by the primary key (task_id, start_offset): the chunk holding `offset`, then onwards,
  // fetching only chunks that start within the byte budget (stored offsets are contiguous), so
  // a read moves about `maxBytes` however large the chunks are.
  const first = await sql.one('SELECT MAX(start_offset) AS s FROM task_output WHERE task_id = ? AND start_offset <= ?', [taskId, offset]);
  let from = first?.s === null || first?.s === undefined ? 0 : num(first.s);
  const upTo = Number.isFinite(maxBytes) ? Math.max(offset + maxBytes, from + 1) : Number.MAX_SAFE_INTEGER;
  for (;;) {
    const limit = Number.isFinite(maxFrames) ? Math.min(READ_BATCH, maxFrames - frames.length + 1) : READ_BATCH;
    const rows = await sql.all(
      'SELECT start_offset, end_offset, stream, time, data FROM task_output WHERE task_id = ? AND start_offset >= ? AND start_offset < ? ORDER BY start_offset LIMIT ?',
      [taskId, from, upTo, limit],
    );
    for (const r of rows) {
      if (num(r.end_offset) <= offset) continue;
      const stream = num(r.stream);
      if (!isStreamId(stream)) continue;
      let data = r.data as Buffer;
      const start = num(r.start_offset);
      if (start < offset) data = data.subarray(offset - start);
      if (bytes > 0 && bytes + data.length > maxBytes) return frames;
      frames.push({ stream, time: num(r.time), data });
      bytes += data.length;
      if (bytes >= maxBytes || frames.length >= maxFrames) return frames;
    }
    if (rows.length < limit) return frames;
    from = num((rows[rows.length - 1] as Row).end_offset);
  }
}

/**
 * Removes the stored output of up to `maxTasks` tasks that finished before `before`. The due
 * tasks are locked with SKIP LOCKED, so replicas running retention at once take different tasks,
 * and each task's removal is a conditional update that counts once. Call inside a transaction.
 */
export async function expireOutput(sql: Sql, before: number, now: number, maxTasks: number): Promise<ExpiredOutput[]> {
  const due = await sql.all(
    'SELECT id, org_id, stored_bytes FROM tasks WHERE output_expired_at IS NULL AND stored_bytes > 0 AND finished_at < ? ORDER BY finished_at LIMIT ? FOR UPDATE SKIP LOCKED',
    [before, maxTasks],
  );
  const byOrg = new Map<string, ExpiredOutput>();
  for (const t of due) {
    const orgId = String(t.org_id);
    const bytes = num(t.stored_bytes);
    if ((await sql.run('UPDATE tasks SET output_expired_at = ? WHERE id = ? AND output_expired_at IS NULL', [now, t.id])) !== 1) continue;
    await sql.run('DELETE FROM task_output WHERE task_id = ?', [t.id]);
    await sql.run('UPDATE orgs SET output_bytes = GREATEST(0, output_bytes - ?) WHERE id = ?', [bytes, orgId]);
    const entry = byOrg.get(orgId) ?? { orgId, tasks: 0, bytes: 0 };
    entry.tasks += 1;
    entry.bytes += bytes;
    byOrg.set(orgId, entry);
  }
  return [...byOrg.values()];
}
