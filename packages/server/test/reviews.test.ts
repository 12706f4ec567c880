/**
 * Reviews below the API: what an approval binds (reviews.ts `bindingOf`), and the store's
 * compare-and-set on pending_review on both stores (helpers/stores.ts), including two approvals that
 * race to complete the count and a hosted agent polling while the task waits.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { bindingOf, newTaskReview } from '../src/tasks/reviews.js';
import type { ReviewDecisionRow, Store, TargetRow, TaskRow } from '../src/store/types.js';
import { registerTestAgent, testTarget, testTask } from './helpers/store-fixtures.js';
import { forEachStore } from './helpers/stores.js';

let store: Store;
let orgId: string;

type Bound = Parameters<typeof bindingOf>[0];
const base: Bound = { script: 'psql -c "select 1"', targetId: 'g_prod', args: ['a', 'b'], env: { A: '1', B: '2' }, stdin: new Uint8Array([1, 2]) };

function target(): TargetRow {
  return testTarget({ orgId, name: 'prod', review: { rule: 'any', groupId: null, groupName: null, approvals: 2, expirySeconds: 3600 } });
}

function pendingTask(id: string, t: TargetRow): TaskRow {
  const now = Date.now();
  const input: Bound = { script: 'echo hi', targetId: t.id, args: [], env: {}, stdin: null };
  return testTask(t, {
    id,
    ...input,
    status: 'pending_review',
    createdBy: 'service:author (token k_1)',
    createdByPrincipal: 'p_author',
    review: newTaskReview(t.review!, input, now),
    createdAt: now,
  });
}

const approval = (task: TaskRow, principalId: string): ReviewDecisionRow => ({
  taskId: task.id,
  principalId,
  actor: `service:${principalId}`,
  decision: 'approve',
  comment: null,
  binding: task.review!.binding,
  at: Date.now(),
});

describe('what an approval binds', () => {
  test('any change to the script, target, arguments, environment or stdin changes the binding', () => {
    const original = bindingOf(base);
    assert.match(original, /^[0-9a-f]{64}$/);
    const changes: Partial<Bound>[] = [
      { script: 'psql -c "drop table users"' },
      { targetId: 'g_other' },
      { args: ['a', 'c'] },
      { args: ['a b'] },
      { env: { A: '1', B: '3' } },
      { env: { A: '1' } },
      { stdin: new Uint8Array([1, 3]) },
      { stdin: null },
    ];
    for (const change of changes) assert.notEqual(bindingOf({ ...base, ...change }), original, JSON.stringify(change));
  });

  test('the order environment variables were given in does not matter', () => {
    assert.equal(bindingOf({ ...base, env: { B: '2', A: '1' } }), bindingOf(base));
  });
});

forEachStore('the store: pending_review', (backend) => {
  beforeEach(async () => {
    store = await backend.open();
    orgId = (await store.ensureOrg('default', Date.now())).id;
  });
  afterEach(async () => {
    await store.close();
  });

  test('no agent claims a pending task; the approval that completes the count queues it, once', async () => {
    const t = target();
    assert.notEqual(await store.createTarget(t), 'exists');
    const agent = await registerTestAgent(store, 'hosted', { orgId: null });
    const task = pendingTask('t_pending00001', t);
    await store.createTask(task);
    assert.equal(await store.claimNextTask(agent, Date.now(), 60_000), undefined, 'a pending task is never claimed');

    assert.equal(await store.approveTask(approval(task, 'p_bob'), 2), 'recorded');
    assert.equal(await store.approveTask(approval(task, 'p_bob'), 2), 'duplicate', 'one principal counts once');
    assert.equal(await store.claimNextTask(agent, Date.now(), 60_000), undefined, 'one of two approvals');
    // Two more reviewers at once: exactly one completes the count, the other finds it queued.
    const results = await Promise.all([store.approveTask(approval(task, 'p_carol'), 2), store.approveTask(approval(task, 'p_dave'), 2)]);
    assert.deepEqual(results.sort(), ['approved', 'not_pending']);
    assert.equal((await store.claimNextTask(agent, Date.now(), 60_000))?.id, task.id);
  });

  test('a rejection and an expiry are compare-and-set on pending_review', async () => {
    const t = target();
    await store.createTarget(t);
    const rejected = pendingTask('t_rejected0001', t);
    await store.createTask(rejected);
    const reject = { ...approval(rejected, 'p_bob'), decision: 'reject' as const, comment: 'no' };
    assert.equal(await store.rejectTask(reject, 'rejected by bob: no', () => []), true);
    assert.equal(await store.rejectTask(reject, 'rejected by bob: no', () => []), false);
    assert.equal(await store.approveTask(approval(rejected, 'p_carol'), 1), 'not_pending');
    assert.equal((await store.getTask(orgId, rejected.id))?.status, 'rejected');
    assert.deepEqual(
      (await store.listReviewDecisions(rejected.id)).map((d) => [d.principalId, d.decision, d.comment]),
      [['p_bob', 'reject', 'no']],
    );

    const expiring = pendingTask('t_expiring0001', t);
    await store.createTask(expiring);
    const at = expiring.review!.expiresAt;
    assert.deepEqual(await store.listExpiredReviews(at - 1), []);
    assert.equal(await store.expireReview(expiring.id, at - 1, 'too early', () => []), false);
    assert.deepEqual(
      (await store.listExpiredReviews(at)).map((x) => x.id),
      [expiring.id],
    );
    assert.equal(await store.expireReview(expiring.id, at, 'the review expired', () => []), true);
    assert.equal((await store.getTask(orgId, expiring.id))?.reason, 'the review expired');
  });
});
