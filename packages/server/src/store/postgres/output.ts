/**
 * Task output in PostgreSQL: chunk rows (bytea) keyed by (task, stored offset), so a read seeks
 * to its offset by the primary key and a live reader costs one indexed range read per call,
 * whatever came before. Same two offsets as SQLite (sqlite/output.ts): `output_bytes` counts
 * what the agent sent, `stored_bytes` what was stored after redaction, and `output_digest` the
 * digest state of the raw bytes received (protocol's OutputDigest), written with them so that any
 * replica can check the final status. The append is one conditional statement of its own (one
 * commit per upload); the others run inside the store's transactions. Concurrent uploads of one
 * task, on any replica, apply one after the other: only one of them finds the counters it read.
 */
import { isStreamId, type OutputFrame } from '@ferry/protocol';
import type pg from 'pg';
import type { AppendResult, ExpiredOutput, HeldOutputFlush, OutputTransform } from '../types.js';
import { planAppend } from '../output-append.js';
import { num, strOrNull } from '../sqlite/rows.js';
import type { Row, Sql } from './db.js';

/**
 * Chunk rows are compressed by PostgreSQL's TOAST, with pglz unless told otherwise, which costs
 * the database about twice the CPU of lz4 on log text (and as much on incompressible bytes).
 * Each of the pool's connections asks for lz4 (PostgreSQL 14 and later, when built with it,
 * as the common packages are); a server without it refuses, and then keeps pglz, asked once.
 * A session setting, not the schema: rows already stored, and rows other servers store, read
 * back the same whichever way they were compressed.
 */
export function compressChunksWithLz4(pool: pg.Pool): void {
  let refused = false;
  pool.on('connect', (client) => {
    if (refused) return;
    client.query("SET default_toast_compression = 'lz4'").catch(() => (refused = true));
  });
}

/**
 * The INSERT of frames at stored offset `at`, as SQL text (its `?` placeholders) and values:
 * every frame's bytes in one bytea parameter, cut into the frames' rows by the database
 * (`substring`), and the frames' places in four small arrays. One bytea parameter, not one per
 * frame: the driver copies its parameters into one message buffer that it grows as it goes,
 * and one large parameter is copied once where sixteen are copied again at every growth. The
 * bytes go in binary (a Buffer parameter), never as hex or base64 text. `rows` selects from
 * the relation the statement names `t`, if it has a row (see appendOutput), so the INSERT can
 * be made conditional.
 */
function framesInsert(taskId: string, at: number, frames: readonly OutputFrame[], rows = '(SELECT 1) AS t'): { sql: string; params: unknown[]; end: number } {
  const starts: number[] = [];
  const ends: number[] = [];
  const streams: number[] = [];
  const times: number[] = [];
  const chunks: Uint8Array[] = [];
  let end = at;
  for (const frame of frames) {
    if (frame.data.length === 0) continue;
    starts.push(end);
    ends.push(end + frame.data.length);
    streams.push(frame.stream);
    times.push(frame.time);
    chunks.push(frame.data);
    end += frame.data.length;
  }
  const data = chunks.length === 1 ? toBuffer(chunks[0]!) : Buffer.concat(chunks);
  const sql = `INSERT INTO task_output (task_id, start_offset, end_offset, stream, time, data)
    SELECT ?, f.s, f.e, f.st, f.tm, substring(?::bytea FROM (f.s - ?::bigint + 1)::int FOR (f.e - f.s)::int)
    FROM ${rows}, unnest(?::bigint[], ?::bigint[], ?::int[], ?::float8[]) AS f(s, e, st, tm)`;
  return { sql, params: [taskId, data, at, starts, ends, streams, times], end };
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
}

/** Appends frames at stored offset `at` (one statement) and counts them to the organization; returns the new end. */
async function insertFrames(sql: Sql, taskId: string, orgId: string, at: number, frames: readonly OutputFrame[]): Promise<number> {
  const insert = framesInsert(taskId, at, frames);
  if (insert.end === at) return at;
  await sql.run(insert.sql, insert.params);
  await sql.run('UPDATE orgs SET output_bytes = output_bytes + ? WHERE id = ?', [insert.end - at, orgId]);
  return insert.end;
}

/** How often an append is tried again when another one of the same task (on any replica) won the race. */
const APPEND_ATTEMPTS = 5;

/**
 * Appends an upload in one statement, which PostgreSQL runs as one transaction (one commit,
 * one WAL flush): the task's counters are read first, without a lock, the frames redacted,
 * and then the counters' update, the frames' rows and the organization's usage are written
 * together on the condition that the counters are still the ones read. If another append of
 * the task (on any replica) got in between, nothing was written and this one starts again from
 * what that one left. With a `digestState` (the raw output's digest after these frames), the
 * append must start where the received output ends; an upload overlapping it only partly is
 * answered with where it ends (as SQLite's, sqlite/output.ts). Not inside a transaction: `sql`
 * is the pool.
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
  for (let attempt = 1; ; attempt++) {
    const t = await sql.one("SELECT org_id, output_bytes, stored_bytes, redact_state FROM tasks WHERE id = ? AND agent_id = ? AND status = 'running'", [
      taskId,
      agentId,
    ]);
    if (!t) return 'not_held';
    const plan = planAppend(frames, offset, num(t.output_bytes), digestState);
    if ('answer' in plan) return plan.answer;
    const { fresh, expected, received } = plan;
    const storedFrom = num(t.stored_bytes);
    const out = transform(fresh, strOrNull(t.redact_state));
    if (await writeAppend(sql, { taskId, agentId, expected, storedFrom, outputEnd: expected + received }, out, digestState)) {
      return { ok: true, nextOffset: expected + received, fresh, freshOffset: expected };
    }
    if (attempt === APPEND_ATTEMPTS) throw new Error(`output of task ${taskId}: ${attempt} appends in a row lost a race with another`);
  }
}

/**
 * The conditional write of an append (see appendOutput): true if the task still had the
 * counters read and so everything was written, false if nothing was. The INSERT and the usage
 * take their rows from the UPDATE's, so they happen exactly when it does.
 *
 * Its commit does not wait for the WAL flush (`synchronous_commit` off for this transaction
 * only, `set_config(…, true)`): a 1 MiB upload's WAL is ~1.07 MiB, whose write and fsync were
 * 1–15 ms here, most of the append's wall time, and uploads of a task go one after another.
 * Output is still never lost:
 * - a crash of PostgreSQL (or its machine) can undo only the last appends (under 3 ×
 *   `wal_writer_delay`, 600 ms by default), whole and in order: WAL is one sequence, so what
 *   survives is a prefix, counters, rows, redaction and digest state together;
 * - the agent keeps every byte in its spool until the server acknowledges the final status,
 *   and an upload past the stored end is answered with where it ends, so it sends the undone
 *   part again (any replica; the redactor continues from the same state, so the same bytes);
 * - every ending commits synchronously, and its commit record comes after every append of the
 *   task in the WAL, so once an ending is acknowledged all of its output is on disk;
 * - the final status is written only if the stored count is still the one it was checked
 *   against (FinishInput.outputBytes), so a crash between the check and the write gives the
 *   agent a gap to resend, not a task ended short.
 * What it gives up: an agent lost for good within that window of a database crash (its spool
 * gone with it) leaves the task lost with those last appends missing. SQLite's store
 * (`synchronous = NORMAL`) takes the same risk for every commit on a power loss.
 */
async function writeAppend(
  sql: Sql,
  at: { taskId: string; agentId: string; expected: number; storedFrom: number; outputEnd: number },
  out: { frames: OutputFrame[]; state: string | null },
  digestState: string | null,
): Promise<boolean> {
  const { taskId, agentId, expected, storedFrom } = at;
  const insert = framesInsert(taskId, storedFrom, out.frames, 't');
  // commit_mode is selected so that it runs (a CTE nothing reads is skipped); its setting lasts
  // until this statement's own transaction commits, and no longer.
  const written = await sql.one(
    `WITH t AS (
      UPDATE tasks SET output_bytes = ?, stored_bytes = ?, redact_state = ?, output_digest = ?
      WHERE id = ? AND agent_id = ? AND status = 'running' AND output_bytes = ? AND stored_bytes = ?
      RETURNING org_id
    ), ins AS (${insert.sql}), usage AS (
      UPDATE orgs SET output_bytes = orgs.output_bytes + ? FROM t WHERE orgs.id = t.org_id AND ?::bigint > 0
    ), commit_mode AS (
      SELECT set_config('synchronous_commit', 'off', true) AS mode
    )
    SELECT count(*) AS n, (SELECT mode FROM commit_mode) AS mode FROM t`,
    [
      at.outputEnd,
      insert.end,
      out.state,
      digestState,
      taskId,
      agentId,
      expected,
      storedFrom,
      ...insert.params,
      insert.end - storedFrom,
      insert.end - storedFrom,
    ],
  );
  return num(written?.n) === 1;
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
  // Seek by the primary key (task_id, start_offset): the chunk holding `offset` (found by the
  // first query itself, so a read is one round trip; if the last chunk before `offset` ends at or
  // before it, as it does for a live reader that has read everything, from `offset` itself, so
  // that chunk is not detoasted, encoded and sent only to be skipped), then onwards, fetching only chunks that
  // start within the byte budget (stored offsets are contiguous), so a read moves about
  // `maxBytes` however large the chunks are.
  const upTo = Number.isFinite(maxBytes) ? offset + maxBytes : Number.MAX_SAFE_INTEGER;
  // The bytes come back as base64 text: a bytea result is hex text (node-postgres reads results
  // as text only; its binary result mode decodes every value as UTF-8 and so garbles bytes), which
  // is twice the size and costs the driver a UTF-8 decode of both halves and a slow hex parse.
  // Base64 is a third over the size and Node decodes it natively: about half the CPU per MiB.
  const columns = "SELECT start_offset, end_offset, stream, time, encode(data, 'base64') AS data FROM task_output WHERE task_id = ?";
  let from: number | undefined;
  for (;;) {
    const limit = Number.isFinite(maxFrames) ? Math.min(READ_BATCH, maxFrames - frames.length + 1) : READ_BATCH;
    const rows =
      from === undefined
        ? await sql.all(
            `${columns} AND start_offset >= COALESCE((SELECT CASE WHEN end_offset > ? THEN start_offset ELSE ? END FROM task_output
              WHERE task_id = ? AND start_offset <= ? ORDER BY start_offset DESC LIMIT 1), 0)
            AND start_offset < ? ORDER BY start_offset LIMIT ?`,
            [taskId, offset, offset, taskId, offset, upTo, limit],
          )
        : await sql.all(`${columns} AND start_offset >= ? AND start_offset < ? ORDER BY start_offset LIMIT ?`, [taskId, from, upTo, limit]);
    for (const r of rows) {
      if (num(r.end_offset) <= offset) continue;
      const stream = num(r.stream);
      if (!isStreamId(stream)) continue;
      let data = Buffer.from(String(r.data), 'base64');
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
