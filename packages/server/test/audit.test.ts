/**
 * The audit log is append-only (the database refuses UPDATE and DELETE) and hash-chained, so
 * even a change made behind the database's back is detected by verification; and it stays one
 * chain when many writers append at once (on PostgreSQL, from separate connections and pools,
 * as replicas do). Its list narrows by actor, action, target and time and pages by sequence
 * number alike on both backends (helpers/stores.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyChain } from '../src/routes/audit.js';
import { auditHash } from '../src/store/audit-hash.js';
import { forEachStore } from './helpers/stores.js';
import pino from 'pino';
import { loadServerConfig } from '../src/config.js';
import { DispatchHub } from '../src/dispatch.js';
import type { AuditFilter, Store, TargetRow } from '../src/store/types.js';
import { TaskService } from '../src/tasks/task-service.js';
import { testAdmin, testTarget } from './helpers/store-fixtures.js';

/** A task of the target, made the way the server makes one (its own audit entries are not kept). */
async function createTestTask(store: Store, target: TargetRow, dir: string): Promise<{ id: string }> {
  const config = loadServerConfig({ dataDir: dir }, {});
  const tasks = new TaskService({ store, hub: new DispatchHub(), config, log: pino({ level: 'silent' }), audit: async () => {} });
  return (await tasks.create(testAdmin(target.orgId), { target: target.name, script: 'echo' })).task;
}

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

  test('entries with quotes, backslashes, non-ASCII and control characters chain as auditHash says (PostgreSQL hashes in SQL)', async () => {
    const store = await backend.open('audit_chars');
    const awkward = ["it's", 'back\\slash \\n', 'naïve – 日本語 🚀', 'tab\tnew\nline\u0001', '"quoted"', "E'x'", '$1 ? ?::text'];
    for (const [i, text] of awkward.entries()) {
      const row = await store.appendAudit({
        orgId: null,
        at: 3000 + i,
        actor: text,
        action: 'chars',
        subject: text,
        details: { text, n: i, nested: [text, null] },
      });
      assert.equal(row.hash, auditHash(row.prevHash, row), `entry ${i}`);
    }
    const chain = await store.allAudit();
    assert.deepEqual(verifyChain(chain), { ok: true, entries: awkward.length, brokenAt: null });
    assert.deepEqual(
      chain.map((e) => e.actor),
      awkward,
      'stored as given',
    );
    assert.deepEqual(
      chain.map((e) => e.details.text),
      awkward,
    );
    await store.close();
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

  test('list: filters by actor, action prefix, target (its secrets and tasks too) and time, and pages by sequence number', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-audit-filter-'));
    try {
      const store = await backend.open();
      const org = await store.ensureOrg('default', 1);
      const other = await store.ensureOrg('other', 1);
      const db = testTarget({ orgId: org.id, name: 'db' });
      assert.notEqual(await store.createTarget(db), 'exists');
      const task = await createTestTask(store, db, dir);
      const at = (n: number): number => Date.UTC(2026, 0, 1, 0, n);
      const add = (orgId: string | null, n: number, actor: string, action: string, subject: string, details: Record<string, unknown> = {}) =>
        store.appendAudit({ orgId, at: at(n), actor, action, subject, details });
      await add(org.id, 1, 'person:ada@example.com', 'target.create', 'db');
      await add(org.id, 2, 'person:ada@example.com', 'secret.set', 'db/PG_PASS');
      await add(org.id, 3, 'service:bot (token k_1)', 'task.create', task.id, { target: 'db' });
      await add(org.id, 4, 'server', 'task.finish', task.id);
      await add(org.id, 5, 'person:bob@example.com', 'secret.set', 'dbx/TOKEN');
      await add(org.id, 6, 'person:bob@example.com', 'agent.token.create', 'j_1', { targets: ['dbx'] });
      await add(other.id, 7, 'person:ada@example.com', 'secret.set', 'db/PG_PASS');
      await add(null, 8, 'server', 'token.create', 'instance');
      await add(org.id, 9, 'person:ada@example.com', 'group.create', 'db');
      // details is JSON text: a `target` or `targets` that names another target, or is no string, matches nothing.
      await add(org.id, 10, 'x', 'agent.token.create', 'j_2', { targets: ['dbx', 'other'], target: 7 });

      const subjects = async (filter: AuditFilter, limit = 100, instance = false): Promise<string[]> =>
        (await store.listAudit(org.id, limit, instance, filter)).map((e) => `${e.seq}:${e.action}`);
      assert.deepEqual(await subjects({}), [
        '10:agent.token.create',
        '9:group.create',
        '6:agent.token.create',
        '5:secret.set',
        '4:task.finish',
        '3:task.create',
        '2:secret.set',
        '1:target.create',
      ]);
      assert.deepEqual(
        await subjects({ actorContains: 'ADA@' }),
        ['9:group.create', '2:secret.set', '1:target.create'],
        'case-insensitive, this organization only',
      );
      assert.deepEqual(await subjects({ actionPrefix: 'secret.' }), ['5:secret.set', '2:secret.set']);
      assert.deepEqual(await subjects({ actionPrefix: 'task.create' }), ['3:task.create']);
      assert.deepEqual(await subjects({ actionPrefix: '%' }), [], 'no LIKE wildcards');
      assert.deepEqual(
        await subjects({ target: 'db' }),
        ['4:task.finish', '3:task.create', '2:secret.set', '1:target.create'],
        "the target, its secret, its task's entries; not those of dbx, nor of a group named db",
      );
      assert.deepEqual(await subjects({ target: 'dbx' }), ['10:agent.token.create', '6:agent.token.create', '5:secret.set'], 'a join token names its targets');
      assert.deepEqual(await subjects({ since: at(2), until: at(4) }), ['3:task.create', '2:secret.set'], 'since inclusive, until exclusive');
      assert.deepEqual(await subjects({}, 2), ['10:agent.token.create', '9:group.create'], 'first page');
      assert.deepEqual(await subjects({ beforeSeq: 6 }, 2), ['5:secret.set', '4:task.finish'], 'next page');
      assert.deepEqual(
        await subjects({ actorContains: 'server' }, 100, true),
        ['8:token.create', '4:task.finish'],
        "the instance's entries for its administrators",
      );
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
