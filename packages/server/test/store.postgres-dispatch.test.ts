/**
 * The PostgreSQL store on the dispatch path, against a real PostgreSQL 15: what each call costs
 * in round trips (the counts the dispatch latency rests on), that a renewal which barely moves a
 * lease writes nothing (no commit, so no fsync) yet still says what is held and what to cancel,
 * that a claim passes over a task another transaction has locked without waiting for it, and
 * that prepared statements outlive a schema change. The behaviour every backend shares is the
 * store contract's (store.contract.test.ts); these are PostgreSQL's own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { verifyChain } from '../src/routes/audit.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import type { AgentRow, TargetRow } from '../src/store/types.js';
import { usePostgres } from './helpers/stores.js';
import { registerTestAgent, testTarget, testTask } from './helpers/store-fixtures.js';

const LEASE_MS = 15_000;
const databases = usePostgres();
let counter = 0;

interface World {
  store: PostgresStore;
  url: string;
  orgId: string;
  target: TargetRow;
  agent: AgentRow;
}

async function world(poolSize = 4): Promise<World> {
  const url = await databases.url(`dispatch_${++counter}`);
  const store = await PostgresStore.open({ url, poolSize });
  const orgId = (await store.ensureOrg('acme', 1000)).id;
  const target = testTarget({ orgId, name: 'web' });
  assert.notEqual(await store.createTarget(target), 'exists');
  return { store, url, orgId, target, agent: await registerTestAgent(store, 'one', { orgId }) };
}

type AnyQuery = (this: pg.Client, ...args: unknown[]) => unknown;

/** The statements `fn` sends, on any connection (pool queries and transactions alike). */
async function statements(fn: () => Promise<unknown>): Promise<string[]> {
  const sent: string[] = [];
  const original = Reflect.get(pg.Client.prototype, 'query') as AnyQuery;
  const counting: AnyQuery = function (...args) {
    const config = args[0];
    sent.push(typeof config === 'string' ? config : String((config as { text?: string }).text));
    return original.apply(this, args);
  };
  Reflect.set(pg.Client.prototype, 'query', counting);
  try {
    await fn();
  } finally {
    Reflect.set(pg.Client.prototype, 'query', original);
  }
  return sent;
}

async function xminOf(w: World, taskId: string): Promise<string> {
  return String((await w.store.db.one('SELECT xmin::text AS x FROM tasks WHERE id = ?', [taskId]))?.x);
}

test('the dispatch path in round trips: agent lookup 1, key state 1, task insert 1 (quota, key state and runners in it), claim 1 (with its task), renewal 1, both 1, audit append 1', async () => {
  const w = await world();
  try {
    await w.store.createTask(testTask(w.target, { id: 't_1', createdAt: 1 }));
    assert.equal((await statements(() => w.store.findAgentByToken('token-one'))).length, 1);
    const agent = await w.store.getAgent(w.agent.id);
    assert.deepEqual(agent, w.agent, 'the agent with its targets, as registered');
    assert.equal((await statements(() => w.store.targetKeyState(w.target.id))).length, 1);
    let claimed: Awaited<ReturnType<PostgresStore['claimNextTask']>>;
    assert.equal((await statements(async () => (claimed = await w.store.claimNextTask(w.agent, Date.now(), LEASE_MS)))).length, 1);
    assert.deepEqual([claimed?.id, claimed?.status, claimed?.agentId, claimed?.agentName, claimed?.targetName], ['t_1', 'running', w.agent.id, 'one', 'web']);
    assert.equal((await statements(() => w.store.claimNextTask(w.agent, Date.now(), LEASE_MS))).length, 1, 'an empty queue: one round trip too');
    const inserted = await statements(() => w.store.insertTask(testTask(w.target, { id: 't_0', createdAt: 2 }), 1000, 0));
    assert.equal(inserted.length, 1, 'a task written with its quota check, its key state and its runners: one statement');
    assert.equal((await w.store.getTask(w.orgId, 't_0'))?.status, 'queued');
    assert.equal((await statements(() => w.store.renewLeases(w.agent.id, ['t_1'], Date.now() + LEASE_MS))).length, 1);
    let both: Awaited<ReturnType<PostgresStore['claimNextTaskRenewing']>> | undefined;
    const sentBoth = await statements(
      async () => (both = await w.store.claimNextTaskRenewing(w.agent, Date.now(), LEASE_MS, ['t_1'], Date.now() + 2 * LEASE_MS)),
    );
    assert.equal(sentBoth.length, 1, 'a poll with a free slot and a task running: the claim and the renewal in one statement');
    assert.deepEqual([both?.task?.id, both?.held], ['t_0', ['t_1']], 't_0, inserted above, claimed');
    const entry = { orgId: w.orgId, at: 5, actor: 'test', action: 'task.create', subject: 't_1', details: {} };
    const sent = await statements(() => w.store.appendAudit(entry));
    assert.equal(sent.length, 1, `the lock and the insert (its head read and hash in it), one implicit transaction: ${sent.join(' | ')}`);
    assert.match(
      sent[0] ?? '',
      /^PREPARE ferry_audit_append .*; SELECT pg_advisory_xact_lock\(\d+\); EXECUTE ferry_audit_append\(/s,
      'prepared on its first use',
    );
    assert.equal(
      (await statements(() => w.store.appendAudit({ ...entry, at: 6 })))[0]?.startsWith('SELECT pg_advisory_xact_lock('),
      true,
      'then only executed',
    );
    assert.equal((await w.store.allAudit()).length, 2);
  } finally {
    await w.store.close();
  }
});

test('an ending with nothing held back is one statement; with held-back output, the transaction that stores it', async () => {
  const w = await world();
  try {
    const finish = { status: 'succeeded' as const, exitCode: 0, signal: null, reason: null, now: 10 };
    for (const [i, id] of ['t_plain', 't_held'].entries()) await w.store.createTask(testTask(w.target, { id, createdAt: 1 + i }));
    assert.equal((await w.store.claimNextTask(w.agent, Date.now(), LEASE_MS))?.id, 't_plain');
    assert.equal((await w.store.claimNextTask(w.agent, Date.now(), LEASE_MS))?.id, 't_held');
    const flushed: (string | null)[] = [];
    const flush = (state: string | null) => (flushed.push(state), [{ stream: 1 as const, time: 9, data: Buffer.from('held') }]);
    const plain = await statements(async () => assert.ok(await w.store.finishTask('t_plain', w.agent.id, finish, flush)));
    assert.equal(plain.length, 1, plain.join(' | '));
    assert.deepEqual(flushed, [], 'nothing held: the flush is not asked');
    assert.equal(await w.store.finishTask('t_plain', w.agent.id, finish, flush), false, 'a task ends once');
    // An upload whose redactor keeps state: the ending stores what it held, in the ending's transaction.
    const keep = (fresh: Parameters<Parameters<PostgresStore['appendOutput']>[4]>[0]) => ({ frames: [...fresh], state: '{"held":true}' });
    assert.ok(await w.store.appendOutput('t_held', w.agent.id, 0, [{ stream: 1, time: 1, data: Buffer.from('out ') }], keep));
    const held = await statements(async () => assert.ok(await w.store.finishTask('t_held', w.agent.id, finish, flush)));
    assert.equal(held[0]?.includes('redact_state IS NULL'), true, 'the one-statement try first');
    assert.ok(held.includes('BEGIN') && held.at(-1) === 'COMMIT', held.join(' | '));
    assert.deepEqual(flushed, ['{"held":true}']);
    assert.equal(Buffer.concat((await w.store.readOutput('t_held', 0, 1 << 20)).map((f) => f.data)).toString(), 'out held');
    const ended = await w.store.getTaskForAgent('t_held', w.agent.id);
    assert.deepEqual([ended?.status, ended?.outputDigest ?? null], ['succeeded', null]);
  } finally {
    await w.store.close();
  }
});

test('the audit statement is prepared again where a connection lacks it, or not where it has it (a pooler in transaction mode)', async () => {
  const w = await world(1);
  try {
    const entry = { orgId: w.orgId, at: 5, actor: 'test', action: 'a', subject: 's', details: {} };
    await w.store.appendAudit(entry);
    await w.store.db.run('DEALLOCATE ferry_audit_append');
    const again = await statements(() => w.store.appendAudit({ ...entry, at: 6 }));
    assert.equal(again.length, 2, 'the EXECUTE, then the batch with the PREPARE');
    await w.store.db.run('DEALLOCATE ferry_audit_append');
    await w.store.db.run(`PREPARE ferry_audit_append (text, bigint, text, text, text, text, text) AS SELECT 1 AS seq, '0' AS prev_hash, '0' AS hash`);
    // A statement of that name but another text: its answer is not the entry's, and the store says so.
    await assert.rejects(w.store.appendAudit({ ...entry, at: 7 }), /hash differs/);
    await w.store.db.run('DEALLOCATE ferry_audit_append');
    assert.ok(await w.store.appendAudit({ ...entry, at: 8 }), 'prepared again');
    assert.deepEqual(verifyChain(await w.store.allAudit()), { ok: true, entries: 3, brokenAt: null });
  } finally {
    await w.store.close();
  }
});

test('a renewal that barely moves a lease writes nothing, and still says what is held and what to cancel', async () => {
  const w = await world();
  try {
    await w.store.createTask(testTask(w.target, { id: 't_1', createdAt: 1 }));
    const now = Date.now();
    assert.equal((await w.store.claimNextTask(w.agent, now, LEASE_MS))?.id, 't_1');
    const claimedRow = await xminOf(w, 't_1');
    // The same lease asked for again a moment later: within the slack, left as it is.
    assert.deepEqual(await w.store.renewLeases(w.agent.id, ['t_1', 't_gone'], now + LEASE_MS + 50), { held: ['t_1'], cancel: [] });
    assert.equal(await xminOf(w, 't_1'), claimedRow, 'no new row version: nothing written, nothing to commit');
    assert.ok(await w.store.requestStop(w.orgId, 't_1', now));
    const stopRow = await xminOf(w, 't_1');
    assert.deepEqual(await w.store.renewLeases(w.agent.id, ['t_1'], now + LEASE_MS + 100), { held: ['t_1'], cancel: ['t_1'] });
    assert.equal(await xminOf(w, 't_1'), stopRow);
    // A lease further out than the slack is written; so is a shorter one (the contract's renewal sets it).
    assert.deepEqual(await w.store.renewLeases(w.agent.id, ['t_1'], now + 3 * LEASE_MS), { held: ['t_1'], cancel: ['t_1'] });
    assert.equal((await w.store.getTaskForAgent('t_1', w.agent.id))?.leaseExpiresAt, now + 3 * LEASE_MS);
    assert.deepEqual(await w.store.renewLeases(w.agent.id, ['t_1'], now - 1), { held: ['t_1'], cancel: ['t_1'] });
    assert.deepEqual(
      (await w.store.listLapsedLeases(now)).map((t) => t.id),
      ['t_1'],
    );
    // Another agent's renewal holds nothing and writes nothing.
    const other = await registerTestAgent(w.store, 'two', { orgId: w.orgId });
    const before = await xminOf(w, 't_1');
    assert.deepEqual(await w.store.renewLeases(other.id, ['t_1'], now + LEASE_MS), { held: [], cancel: [] });
    assert.equal(await xminOf(w, 't_1'), before);
  } finally {
    await w.store.close();
  }
});

test('a claim passes over a task another transaction holds locked, without waiting, and takes it once released', async () => {
  const w = await world();
  const locker = new pg.Client({ connectionString: w.url });
  await locker.connect();
  try {
    await w.store.createTask(testTask(w.target, { id: 't_1', createdAt: 1 }));
    await locker.query('BEGIN');
    await locker.query("SELECT 1 FROM tasks WHERE id = 't_1' FOR UPDATE");
    const t0 = Date.now();
    assert.equal(await w.store.claimNextTask(w.agent, Date.now(), LEASE_MS), undefined);
    assert.ok(Date.now() - t0 < 2000, 'answered without waiting for the lock');
    await locker.query('ROLLBACK');
    assert.equal((await w.store.claimNextTask(w.agent, Date.now(), LEASE_MS))?.id, 't_1');
    assert.equal(await w.store.claimNextTask(w.agent, Date.now(), LEASE_MS), undefined, 'claimed once');
  } finally {
    await locker.end();
    await w.store.close();
  }
});

test('prepared statements outlive a schema change made behind the store (another replica migrating)', async () => {
  // One connection, so the statement prepared before the change is the one used after it.
  const w = await world(1);
  const alter = new pg.Client({ connectionString: w.url });
  await alter.connect();
  try {
    assert.equal((await w.store.getTargetById(w.target.id))?.name, 'web');
    await alter.query('ALTER TABLE targets ADD COLUMN extra_one INTEGER');
    assert.equal((await w.store.getTargetById(w.target.id))?.name, 'web', 'a pool query');
    const changes = { network: 'none' as const, limits: {}, redact: 'secrets' as const, settings: { A: 'b' }, review: null };
    assert.ok(await w.store.updateTarget(w.target.id, changes));
    await alter.query('ALTER TABLE targets ADD COLUMN extra_two INTEGER');
    const updated = await w.store.updateTarget(w.target.id, { ...changes, settings: { A: 'c' } });
    assert.ok(updated && 'id' in updated, 'a transaction');
    assert.deepEqual(updated.settings, { A: 'c' });
  } finally {
    await alter.end();
    await w.store.close();
  }
});
