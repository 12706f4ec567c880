/**
 * `ferry server migrate --from sqlite:PATH --to postgres://…`: moves an installation's whole
 * database (targets, sealed secrets, tasks, output, agents, people, webhooks, the audit chain)
 * into an empty PostgreSQL database, in one transaction, row for row: ids, hashes and sealed
 * values are copied as they are, so the audit chain still verifies and agents keep their keys.
 * The SQLite file is first brought to the current schema (as a server start would); the
 * PostgreSQL schema is this build's. A table the PostgreSQL schema lacks stops the move.
 * Output is the exception to row for row: SQLite keeps its bytes in files (the data folder's
 * `output/`, see sqlite/output-files.ts) and where each frame lies in `task_output_frames`;
 * PostgreSQL keeps chunk rows with their bytes (`task_output`), made here from the two.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { lockDataFolder } from '../../data-lock.js';
import { verifyChain } from '../../routes/audit.js';
import { SqliteStore } from '../sqlite/index.js';
import { OutputFiles } from '../sqlite/output-files.js';
import type { Sql } from './db.js';
import { PostgresStore } from './index.js';

/** Parents before children (foreign keys); tables a later migration adds follow in SQLite's order. */
const ORDER = [
  'orgs',
  'principals',
  'api_tokens',
  'groups',
  'group_members',
  'targets',
  'target_grants',
  'join_tokens',
  'agents',
  'agent_targets',
  'agent_identity_keys',
  'target_key_holders',
  'key_handovers',
  'secrets',
  'tasks',
  'task_reviews',
  'audit_log',
  'webhooks',
  'webhook_deliveries',
  'webhook_attempts',
  'runbook_sources',
  'runbooks',
  'passwords',
  'invitations',
  'org_sso',
  'sso_logins',
  'sso_devices',
];

/** PostgreSQL allows 65535 parameters per statement. */
const MAX_PARAMS = 60_000;
/** Rows per INSERT at most (output chunks can be large). */
const MAX_ROWS = 500;
/** Output bytes per INSERT at most, whatever the chunk sizes. */
const MAX_OUTPUT_BYTES = 16 << 20;
/**
 * Output tables copied by `copyOutput`, not row for row: SQLite's frames become PostgreSQL's
 * chunk rows; `task_output` of SQLite (before its migration 15) is empty once the store opened.
 */
const OUTPUT_TABLES = ['task_output', 'task_output_frames'];

export interface MigrationReport {
  /** Rows copied per table. */
  tables: Record<string, number>;
  auditEntries: number;
}

type SqliteRow = Record<string, unknown>;

function sqliteTables(db: Database.Database): string[] {
  const names = (
    db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'").all() as SqliteRow[]
  ).map((r) => String(r.name));
  const tables = [...ORDER.filter((t) => names.includes(t)), ...names.filter((t) => !ORDER.includes(t))];
  return tables.filter((t) => !OUTPUT_TABLES.includes(t));
}

async function pgColumns(sql: Sql, table: string): Promise<Set<string>> {
  const rows = await sql.all('SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?', [table]);
  return new Set(rows.map((r) => String(r.column_name)));
}

/** SQLite values as PostgreSQL takes them: blobs stay Buffers, everything else as is. */
const value = (v: unknown): unknown => (v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.length) : v);

async function copyTable(db: Database.Database, sql: Sql, table: string): Promise<number> {
  const columns = (db.prepare(`PRAGMA table_info(${table})`).all() as SqliteRow[]).map((r) => String(r.name));
  const target = await pgColumns(sql, table);
  if (target.size === 0) throw new Error(`PostgreSQL has no table ${table}: this build's PostgreSQL schema lacks what the SQLite database has`);
  const missing = columns.filter((c) => !target.has(c));
  if (missing.length > 0) throw new Error(`PostgreSQL's ${table} lacks column(s) ${missing.join(', ')}`);
  const perBatch = Math.max(1, Math.min(MAX_ROWS, Math.floor(MAX_PARAMS / columns.length)));
  const overriding = table === 'audit_log' ? ' OVERRIDING SYSTEM VALUE' : '';
  const head = `INSERT INTO ${table} (${columns.join(', ')})${overriding} VALUES `;
  const row = `(${columns.map(() => '?').join(', ')})`;
  let batch: unknown[][] = [];
  let copied = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await sql.run(head + batch.map(() => row).join(', '), batch.flat());
    copied += batch.length;
    batch = [];
  };
  // The audit chain in its order (the rest has no order of its own).
  const order = table === 'audit_log' ? ' ORDER BY seq' : '';
  for (const r of db.prepare(`SELECT ${columns.join(', ')} FROM ${table}${order}`).iterate() as IterableIterator<SqliteRow>) {
    batch.push(columns.map((c) => value(r[c])));
    if (batch.length >= perBatch) await flush();
  }
  await flush();
  return copied;
}

/**
 * Task output: each frame SQLite lists (`task_output_frames`) with its bytes read from the task's
 * output file becomes one PostgreSQL chunk row at the same stored offset. Returns the rows made.
 */
async function copyOutput(db: Database.Database, sql: Sql, files: OutputFiles): Promise<number> {
  const head = 'INSERT INTO task_output (task_id, start_offset, end_offset, stream, time, data) VALUES ';
  let batch: unknown[][] = [];
  let batchBytes = 0;
  let copied = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await sql.run(head + batch.map(() => '(?, ?, ?, ?, ?, ?)').join(', '), batch.flat());
    copied += batch.length;
    batch = [];
    batchBytes = 0;
  };
  const frames = db.prepare('SELECT task_id, start_offset, end_offset, stream, time FROM task_output_frames ORDER BY task_id, start_offset');
  for (const r of frames.iterate() as IterableIterator<SqliteRow>) {
    const taskId = String(r.task_id);
    const start = Number(r.start_offset);
    const length = Number(r.end_offset) - start;
    const data = files.read(taskId, start, length);
    // A damaged data folder (a file lost or cut short): stop rather than move output with holes.
    if (data.length < length) throw new Error(`the output file of task ${taskId} ends before its recorded length (damaged data folder?)`);
    batch.push([taskId, start, start + length, r.stream, r.time, data]);
    batchBytes += length;
    if (batch.length >= MAX_ROWS || batchBytes >= MAX_OUTPUT_BYTES) await flush();
  }
  await flush();
  return copied;
}

/** Copies the SQLite database `fromFile` into the empty PostgreSQL database at `toUrl`. */
export async function migrateSqliteToPostgres(fromFile: string, toUrl: string): Promise<MigrationReport> {
  // A server still running on this data folder would go on writing: its lock says so.
  const lock = existsSync(join(dirname(fromFile), 'server.lock')) ? lockDataFolder(dirname(fromFile)) : undefined;
  try {
    return await copyDatabase(fromFile, toUrl);
  } finally {
    lock?.release();
  }
}

async function copyDatabase(fromFile: string, toUrl: string): Promise<MigrationReport> {
  // Bring the file to the current schema first, as a server start would.
  await new SqliteStore(fromFile).close();
  const db = new Database(fromFile, { readonly: true, fileMustExist: true });
  // Where the SQLite store keeps output files (its default, which the server uses).
  const files = new OutputFiles(join(dirname(fromFile), 'output'));
  const pgStore = await PostgresStore.open({ url: toUrl, poolSize: 2 });
  try {
    const tables: Record<string, number> = {};
    await pgStore.db.tx(async (sql) => {
      const used = await sql.one('SELECT (SELECT COUNT(*) FROM orgs) + (SELECT COUNT(*) FROM audit_log) AS n');
      if (Number(used?.n) > 0) throw new Error('the PostgreSQL database is not empty: migrate into a new database');
      for (const table of sqliteTables(db)) {
        tables[table] = await copyTable(db, sql, table);
        // Output chunks after their tasks (foreign key), under PostgreSQL's table name.
        if (table === 'tasks') tables.task_output = await copyOutput(db, sql, files);
      }
      // New audit entries continue after the copied ones.
      await sql.one(
        "SELECT setval(pg_get_serial_sequence('audit_log', 'seq'), GREATEST((SELECT MAX(seq) FROM audit_log), 1), (SELECT MAX(seq) FROM audit_log) IS NOT NULL)",
      );
    });
    const chain = verifyChain(await pgStore.allAudit());
    if (!chain.ok) throw new Error(`the copied audit chain does not verify (broken at ${chain.brokenAt}); the copy is there: investigate before using it`);
    return { tables, auditEntries: chain.entries };
  } finally {
    files.close();
    db.close();
    await pgStore.close();
  }
}
