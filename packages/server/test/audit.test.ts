/**
 * The audit log is append-only (the database refuses UPDATE and DELETE) and hash-chained, so
 * even a change made behind the database's back is detected by verification; and it stays one
 * chain when many writers append at once (on PostgreSQL, from separate connections and pools,
 * as replicas do). Both backends (helpers/stores.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { verifyChain } from '../src/routes/audit.js';
import { forEachStore } from './helpers/stores.js';

forEachStore('audit log', (backend) => {
  test('append-only, hash-chained, tampering detected', async () => {
    const store = await backend.open('audit_tamper');
    for (let i = 0; i < 5; i++) await store.appendAudit({ orgId: null, at: 1000 + i, actor: 'test', action: 'thing.do', subject: `s${i}`, details: { i } });
    assert.deepEqual(verifyChain(await store.allAudit()), { ok: true, entries: 5, brokenAt: null });
    await store.close();

    await assert.rejects(backend.exec('audit_tamper', "UPDATE audit_log SET subject = 'forged' WHERE seq = 3"), /append-only/);
    await assert.rejects(backend.exec('audit_tamper', 'DELETE FROM audit_log WHERE seq = 3'), /append-only/);
    // Someone with database access drops the trigger and edits an entry: the chain shows it.
    await backend.exec(
      'audit_tamper',
      `DROP TRIGGER audit_log_no_update${backend.kind === 'postgres' ? ' ON audit_log' : ''}; UPDATE audit_log SET subject = 'forged' WHERE seq = 3`,
    );
    const reopened = await backend.open('audit_tamper');
    assert.deepEqual(verifyChain(await reopened.allAudit()), { ok: false, entries: 5, brokenAt: 3 });
    await reopened.close();
  });

  test('many writers at once, through two stores on one database: one chain, every entry in it', async () => {
    const one = await backend.open('audit_race');
    const two = await backend.open('audit_race');
    const writes = Array.from({ length: 60 }, (_, i) =>
      (i % 2 === 0 ? one : two).appendAudit({ orgId: null, at: 2000 + i, actor: 'test', action: 'race', subject: `s${i}`, details: { i } }),
    );
    const rows = await Promise.all(writes);
    assert.equal(new Set(rows.map((r) => r.seq)).size, 60, 'each append has its own place');
    const chain = await one.allAudit();
    assert.deepEqual(verifyChain(chain), { ok: true, entries: 60, brokenAt: null });
    assert.deepEqual(chain.map((e) => e.subject).sort(), rows.map((r) => r.subject).sort());
    await one.close();
    await two.close();
  });
});
