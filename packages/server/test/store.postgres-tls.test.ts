/**
 * TLS to PostgreSQL: with `sslmode=verify-full` and `sslrootcert`, the store connects only to a
 * server whose certificate chains to that CA and names the host it dialled; the connection is
 * encrypted (pg_stat_ssl says so). Against a real PostgreSQL 15 serving TLS.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startPostgres, type DbServer } from '../../../test/helpers/databases.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import { ensureTlsMaterial } from '../src/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-pg-tls-'));
const ours = join(dir, 'ours');
const theirs = join(dir, 'theirs');
let db: DbServer;

function url(host: string, caDir: string, mode = 'verify-full'): string {
  return `postgres://${db.user}:${encodeURIComponent(db.password)}@${host}:${db.port}/${db.database}?sslmode=${mode}&sslrootcert=${join(caDir, 'ca.pem')}`;
}

before(async () => {
  // The database's certificate names `localhost` only, so dialling 127.0.0.1 is a name mismatch.
  for (const d of [ours, theirs]) mkdirSync(d);
  const tls = ensureTlsMaterial(ours, ['localhost']);
  ensureTlsMaterial(theirs, ['localhost']);
  db = await startPostgres({ tls: { certPem: tls.certPem, keyPem: tls.keyPem } });
});
after(async () => {
  await db?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('verify-full with the right CA and host name: connected, encrypted', async () => {
  const store = await PostgresStore.open({ url: url('localhost', ours), poolSize: 2 });
  try {
    const r = await store.db.one('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    assert.equal(r?.ssl, true);
    const { appliedMigrations, knownMigrations } = await store.readiness();
    assert.deepEqual(appliedMigrations, knownMigrations, 'the schema was made over TLS');
  } finally {
    await store.close();
  }
});

test('verify-full refuses a certificate from another CA, and one that does not name the host dialled', async () => {
  await assert.rejects(PostgresStore.open({ url: url('localhost', theirs), poolSize: 2 }), /self[- ]signed|unable to verify|certificate/i);
  await assert.rejects(PostgresStore.open({ url: url('127.0.0.1', ours), poolSize: 2 }), /altnames|does not match|Hostname/i);
});
