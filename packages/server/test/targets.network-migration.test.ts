/**
 * Migration 16 on SQLite: an existing database's targets keep their network policy, and the
 * `public` policy can be stored afterwards (the CHECK constraint it replaces allowed only none and host).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { migrations } from '../src/store/sqlite/migrations.js';
import { SqliteStore } from '../src/store/sqlite/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-network-migration-'));
after(() => rmSync(dir, { recursive: true, force: true }));

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
    assert.equal((await store.getTargetByName('o_default', 'quiet'))?.network, 'none');
    assert.equal((await store.getTargetByName('o_default', 'db'))?.network, 'host');
    const quiet = (await store.getTargetByName('o_default', 'quiet'))!;
    const { limits, redact, settings, review } = quiet;
    await store.updateTarget('g_none', { network: 'public', limits, redact, settings, review });
    assert.equal((await store.getTargetByName('o_default', 'quiet'))?.network, 'public');
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
