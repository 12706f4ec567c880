/**
 * Migration 16 on SQLite, and its PostgreSQL counterpart (migration 3): an existing database's
 * targets keep their network policy, and the `public` policy can be stored afterwards (the CHECK
 * constraint it replaces allowed only none and host).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { pgMigrations } from '../src/store/postgres/migrations.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import { migrations } from '../src/store/sqlite/migrations.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import type { Store } from '../src/store/types.js';
import { usePostgres } from './helpers/stores.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-network-migration-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const postgres = usePostgres();

/** The old targets keep their policy; one is then set to public through the store. */
async function checkMigrated(store: Store): Promise<void> {
  assert.equal((await store.getTargetByName('o_default', 'quiet'))?.network, 'none');
  assert.equal((await store.getTargetByName('o_default', 'db'))?.network, 'host');
  const quiet = (await store.getTargetByName('o_default', 'quiet'))!;
  const { limits, redact, settings, review } = quiet;
  await store.updateTarget('g_none', { network: 'public', limits, redact, settings, review });
  assert.equal((await store.getTargetByName('o_default', 'quiet'))?.network, 'public');
}

test("migration 16 keeps every target's network policy and lets 'public' be stored; anything else is still refused", async () => {
  const file = join(dir, 'ferry.db');
  const old = new Database(file);
  old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  for (const m of migrations.filter((x) => x.version < 16)) {
    old.exec(m.sql);
    old.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, 0);
  }
  assert.throws(
    () =>
      old.exec(
        `INSERT INTO targets (id, org_id, name, type, agent_mode, created_at, network) VALUES ('g_x', 'o_default', 'x', 'shell', 'hosted', 1, 'public')`,
      ),
    /CHECK constraint failed/,
    'before the migration, public is refused',
  );
  old.exec(`INSERT INTO orgs (id, name, created_at) VALUES ('o_default', 'default', 1);
    INSERT INTO targets (id, org_id, name, type, agent_mode, created_at, network) VALUES
      ('g_none', 'o_default', 'quiet', 'shell', 'hosted', 1, 'none'),
      ('g_host', 'o_default', 'db', 'postgres', 'self-hosted', 2, 'host');`);
  old.close();

  const store = new SqliteStore(file);
  try {
    await checkMigrated(store);
  } finally {
    await store.close();
  }
  const raw = new Database(file);
  try {
    assert.throws(() => raw.exec(`UPDATE targets SET network = 'everything' WHERE id = 'g_host'`), /CHECK constraint failed/);
  } finally {
    raw.close();
  }
});

test("PostgreSQL migration 3 keeps every target's network policy and lets 'public' be stored; anything else is still refused", async () => {
  const url = await postgres.url('network_migration');
  const old = new pg.Client({ connectionString: url });
  await old.connect();
  try {
    // The database as the build before migration 3 left it.
    await old.query('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    for (const m of pgMigrations.filter((x) => x.version < 3)) {
      await old.query(m.sql);
      await old.query('INSERT INTO schema_migrations VALUES ($1, $2, 0)', [m.version, m.name]);
    }
    await old.query(`INSERT INTO orgs (id, name, created_at) VALUES ('o_default', 'default', 1)`);
    await assert.rejects(
      old.query(
        `INSERT INTO targets (id, org_id, name, type, agent_mode, created_at, network) VALUES ('g_x', 'o_default', 'x', 'shell', 'hosted', 1, 'public')`,
      ),
      /targets_network_check/,
      'before the migration, public is refused',
    );
    await old.query(`INSERT INTO targets (id, org_id, name, type, agent_mode, created_at, network) VALUES
      ('g_none', 'o_default', 'quiet', 'shell', 'hosted', 1, 'none'),
      ('g_host', 'o_default', 'db', 'postgres', 'self-hosted', 2, 'host')`);
  } finally {
    await old.end();
  }
  const store = await PostgresStore.open({ url, poolSize: 2 });
  try {
    await checkMigrated(store);
    await assert.rejects(store.db.run(`UPDATE targets SET network = 'everything' WHERE id = 'g_host'`), /targets_network_check/);
  } finally {
    await store.close();
  }
});
