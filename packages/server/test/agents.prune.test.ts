/**
 * Agents leave the list (`agent prune`) without leaving the history, and join tokens for
 * deleted targets make no agents, on both stores (helpers/stores.ts). Time is moved by passing `now`.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { Store, TargetRow, TaskRow } from '../src/store/types.js';
import { registerTestAgent, testTarget, testTask } from './helpers/store-fixtures.js';
import { forEachStore } from './helpers/stores.js';

const DAY = 24 * 3600 * 1000;

let store: Store;
let orgId: string;

function target(name: string, agentMode: TargetRow['agentMode']): TargetRow {
  return testTarget({ orgId, name, agentMode });
}

function task(id: string, t: TargetRow): TaskRow {
  return testTask(t, { id });
}

forEachStore('agents', (backend) => {
  beforeEach(async () => {
    store = await backend.open();
    orgId = (await store.ensureOrg('default', Date.now())).id;
  });
  afterEach(async () => {
    await store.close();
  });

  describe('agent prune', () => {
    test('removes revoked agents and agents offline too long from the list, keeps the rest and the names tasks show', async () => {
      const pool = target('pool', 'hosted');
      assert.notEqual(await store.createTarget(pool), 'exists');
      const live = await registerTestAgent(store, 'live', { orgId });
      const stale = await registerTestAgent(store, 'stale', { orgId });
      const revoked = await registerTestAgent(store, 'revoked', { orgId });
      const busy = await registerTestAgent(store, 'busy', { orgId });
      const operatorWide = await registerTestAgent(store, 'embedded', { orgId: null });
      assert.ok(await store.revokeAgent(orgId, revoked.id, Date.now()));

      // `stale` ran a task (finished); `busy` holds a running one.
      await store.createTask(task('t_stale000001', pool));
      const ran = await store.claimNextTask(stale, Date.now(), 60_000);
      assert.equal(ran?.id, 't_stale000001');
      assert.ok(await store.finishTask(ran.id, stale.id, { status: 'succeeded', exitCode: 0, signal: null, reason: null, now: Date.now() }, () => []));
      await store.createTask(task('t_busy0000001', pool));
      assert.equal((await store.claimNextTask(busy, Date.now(), 60_000))?.id, 't_busy0000001');

      // Eight days on, only `live` has been heard from.
      const later = Date.now() + 8 * DAY;
      await store.touchAgent(live.id, later);
      const pruned = await store.pruneAgents(orgId, later - 7 * DAY, later);
      assert.deepEqual(pruned.map((a) => [a.name, a.why]).sort(), [
        ['revoked', 'revoked'],
        ['stale', 'offline'],
      ]);

      const listed = (await store.listAgents(orgId)).map((a) => a.name).sort();
      assert.deepEqual(listed, ['busy', 'embedded', 'live'], 'a running task keeps its agent; operator-wide agents are not the organization’s to prune');
      assert.equal((await store.getTask(orgId, 't_stale000001'))?.agentName, 'stale', 'the task still names its agent');
      assert.notEqual((await store.getAgent(stale.id))?.revokedAt, null, 'a pruned agent cannot come back with its old credential');
      assert.equal((await store.getAgent(operatorWide.id))?.revokedAt, null);
      assert.deepEqual(await store.pruneAgents(orgId, later - 7 * DAY, later), [], 'pruning again finds nothing');
    });
  });

  describe('join tokens for deleted targets', () => {
    test('a token whose every target was deleted is refused and stays unused; one with a target left serves only that one', async () => {
      const gone = target('gone', 'self-hosted');
      const kept = target('kept', 'self-hosted');
      await store.createTarget(gone);
      await store.createTarget(kept);
      const now = Date.now();
      await store.createJoinToken(
        { id: 'j_gone', orgId, hosted: false, targetIds: [gone.id], createdBy: 't', createdAt: now, expiresAt: now + 60_000, usedAt: null },
        'h-gone',
      );
      await store.createJoinToken(
        { id: 'j_both', orgId, hosted: false, targetIds: [gone.id, kept.id], createdBy: 't', createdAt: now, expiresAt: now + 60_000, usedAt: null },
        'h-both',
      );
      assert.equal(await store.deleteTarget(orgId, gone.id, now), 'deleted');
      const agent = { name: 'x', hostname: 'h', version: '0', platform: 'linux', concurrency: 1 };

      const refused = await store.consumeJoinToken('h-gone', now, { ...agent, id: 'a_gone', tokenHash: 't-gone' });
      assert.deepEqual(refused, { ok: false, code: 'FERRY_E_JOIN_TOKEN_TARGET_DELETED' });
      assert.equal(await store.getAgent('a_gone'), undefined);
      const again = await store.consumeJoinToken('h-gone', now, { ...agent, id: 'a_gone2', tokenHash: 't-gone2' });
      assert.deepEqual(again, { ok: false, code: 'FERRY_E_JOIN_TOKEN_TARGET_DELETED' }, 'not marked used');

      const joined = await store.consumeJoinToken('h-both', now, { ...agent, id: 'a_both', tokenHash: 't-both' });
      assert.ok(joined.ok);
      assert.deepEqual(joined.agent.targetIds, [kept.id]);
    });
  });
});
