/**
 * The audit log is append-only (triggers refuse UPDATE and DELETE) and hash-chained, so even a
 * change made behind the database's back is detected by verification.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { verifyChain } from '../src/routes/audit.js';

test('audit log: append-only, hash-chained, tampering detected', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-audit-'));
  const file = join(dir, 'ferry.db');
  try {
    const store = new SqliteStore(file);
    for (let i = 0; i < 5; i++) await store.appendAudit({ orgId: null, at: 1000 + i, actor: 'test', action: 'thing.do', subject: `s${i}`, details: { i } });
    assert.deepEqual(verifyChain(await store.allAudit()), { ok: true, entries: 5, brokenAt: null });
    await store.close();

    const db = new Database(file);
    assert.throws(() => db.prepare("UPDATE audit_log SET subject = 'forged' WHERE seq = 3").run(), /append-only/);
    assert.throws(() => db.prepare('DELETE FROM audit_log WHERE seq = 3').run(), /append-only/);
    // Someone with the file drops the trigger and edits an entry: the chain shows it.
    db.exec('DROP TRIGGER audit_log_no_update');
    db.prepare("UPDATE audit_log SET subject = 'forged' WHERE seq = 3").run();
    db.close();
    const reopened = new SqliteStore(file);
    assert.deepEqual(verifyChain(await reopened.allAudit()), { ok: false, entries: 5, brokenAt: 3 });
    await reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
