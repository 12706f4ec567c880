/**
 * `ferry server migrate --from sqlite:PATH --to postgres://…`: moves an installation's whole
 * database (targets, sealed secrets, tasks, output, agents, people, webhooks, the audit chain)
 * into an empty PostgreSQL database, in one transaction, row for row: ids, hashes and sealed
 * values are copied as they are, so the audit chain still verifies and agents keep their keys.
 * The SQLite file is first brought to the current schema (as a server start would); the
 * PostgreSQL schema is this build's. A table the PostgreSQL schema lacks stops the move.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { lockDataFolder } from '../../data-lock.js';
import { verifyChain } from '../../routes/audit.js';
import { SqliteStore } from '../sqlite/index.js';
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
  'task_output',
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
  return [...ORDER.filter((t) => names.includes(t)), ...names.filter((t) => !ORDER.includes(t))];
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
  const pgStore = await PostgresStore.open({ url: toUrl, poolSize: 2 });
  try {
    const tables: Record<string, number> = {};
    await pgStore.db.tx(async (sql) => {
      const used = await sql.one('SELECT (SELECT COUNT(*) FROM orgs) + (SELECT COUNT(*) FROM audit_log) AS n');
      if (Number(used?.n) > 0) throw new Error('the PostgreSQL database is not empty: migrate into a new database');
      for (const table of sqliteTables(db)) tables[table] = await copyTable(db, sql, table);
      // New audit entries continue after the copied ones.
      await sql.one(
        "SELECT setval(pg_get_serial_sequence('audit_log', 'seq'), GREATEST((SELECT MAX(seq) FROM audit_log), 1), (SELECT MAX(seq) FROM audit_log) IS NOT NULL)",
      );
    });
    const chain = verifyChain(await pgStore.allAudit());
    if (!chain.ok) throw new Error(`the copied audit chain does not verify (broken at ${chain.brokenAt}); the copy is there: investigate before using it`);
    return { tables, auditEntries: chain.entries };
  } finally {
    db.close();
    await pgStore.close();
  }
}
