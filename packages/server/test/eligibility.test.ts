/**
 * Which agent may serve which target is written once in TS (`mayServe`, used by the dispatch
 * hub and key publishing) and once in SQL (claiming tasks, counting online agents, asking for
 * sealing keys). For every pair of a matrix of agents and targets, the SQL answers of a real
 * store (SQLite and PostgreSQL, helpers/stores.ts) must be what the TS predicate says. The same for which tasks an agent may run
 * (`mayRun`): a target with secrets only to agents holding its current key.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mayRun, mayServe } from '../src/eligibility.js';
import { keyNeedOf } from '../src/keys.js';
import type { AgentRow, Store, TargetRow, TaskRow } from '../src/store/types.js';
import { registerTestAgent, testTarget, testTask } from './helpers/store-fixtures.js';
import { forEachStore, type TestBackend } from './helpers/stores.js';

let store: Store;
const targets: TargetRow[] = [];
const agents: { label: string; row: AgentRow }[] = [];
const labels: string[] = [];

function targetRow(orgId: string, name: string, agentMode: TargetRow['agentMode']): TargetRow {
  return testTarget({ orgId, name, agentMode });
}

function taskRow(target: TargetRow): TaskRow {
  return testTask(target, { id: `t_${target.name}` });
}

async function addAgent(label: string, orgId: string | null, hosted: boolean, targetIds: string[]): Promise<AgentRow> {
  const agent = await registerTestAgent(store, label, { orgId, hosted, targetIds });
  labels.push(label);
  return agent;
}

async function setUp(backend: TestBackend): Promise<void> {
  for (const list of [targets, agents, labels]) list.splice(0);
  store = await backend.open('eligibility');
  const a = (await store.ensureOrg('a', Date.now())).id;
  const b = (await store.ensureOrg('b', Date.now())).id;
  for (const t of [
    targetRow(a, 'pool-a', 'hosted'),
    targetRow(b, 'pool-b', 'hosted'),
    targetRow(a, 'x', 'self-hosted'),
    targetRow(a, 'z', 'self-hosted'),
    targetRow(b, 'y', 'self-hosted'),
  ]) {
    assert.notEqual(await store.createTarget(t), 'exists');
    await store.createTask(taskRow(t));
    targets.push(t);
  }
  await addAgent('hosted-wide', null, true, []);
  await addAgent('hosted-a', a, true, []);
  await addAgent('hosted-b', b, true, []);
  await addAgent('on-x', a, false, ['g_x']);
  await addAgent('on-x-and-z', a, false, ['g_x', 'g_z']);
  await addAgent('on-y', b, false, ['g_y']);
  // Not creatable through the API (a join token is hosted or names targets), but the rule still decides.
  await addAgent('hosted-linked-to-x', a, true, ['g_x']);
  await addAgent('revoked-on-x', a, false, ['g_x']);
  assert.ok(await store.revokeAgent(a, 'a_revoked-on-x', Date.now()));
  await addAgent('revoked-hosted-wide', null, true, []);
  // Operator-wide agents belong to no organization, so no user can revoke one; the operator can.
  await backend.exec('eligibility', `UPDATE agents SET revoked_at = ${Date.now()} WHERE id = 'a_revoked-hosted-wide'`);
  // Read back after the revocations: the rows as the store has them now.
  for (const label of labels) {
    const row = await store.getAgent(`a_${label}`);
    assert.ok(row, label);
    agents.push({ label, row });
  }
}

/** Every task an agent can claim, each given back at once so the next agent sees the same queue. */
async function claimable(agent: AgentRow): Promise<string[]> {
  const claimed: TaskRow[] = [];
  for (let task = await store.claimNextTask(agent, Date.now(), 60_000); task; task = await store.claimNextTask(agent, Date.now(), 60_000)) {
    claimed.push(task);
  }
  for (const task of claimed) assert.ok(await store.releaseClaim(task.id, agent.id));
  return claimed.map((t) => t.targetId).sort();
}

const served = (agent: AgentRow): string[] =>
  targets
    .filter((t) => mayServe(agent, t))
    .map((t) => t.id)
    .sort();

forEachStore('eligibility: the SQL rule agrees with mayServe', (backend) => {
  before(() => setUp(backend));
  after(async () => {
    await store.close();
  });

  test('the matrix covers every kind of agent', () => {
    assert.deepEqual(agents.map((a) => a.label).sort(), [
      'hosted-a',
      'hosted-b',
      'hosted-linked-to-x',
      'hosted-wide',
      'on-x',
      'on-x-and-z',
      'on-y',
      'revoked-hosted-wide',
      'revoked-on-x',
    ]);
    // The rule is not trivial on this matrix: some pairs are served, some not.
    const pairs = agents.flatMap((a) => targets.map((t) => mayServe(a.row, t)));
    assert.ok(pairs.includes(true) && pairs.includes(false));
  });

  test('claimable tasks', async () => {
    for (const { label, row } of agents) assert.deepEqual(await claimable(row), served(row), label);
  });

  test('online agent counts', async () => {
    for (const target of targets) {
      const expected = agents.filter((a) => mayServe(a.row, target)).length;
      assert.equal(await store.countOnlineAgents(target, 0), expected, target.name);
      assert.equal(await store.countOnlineAgents(target, Date.now() + 60_000), 0, `${target.name}: nobody heard from in the future`);
    }
  });

  test('key requests', async () => {
    assert.ok(await store.setTargetKey('g_pool-b', 'PEM', 'kid-b'));
    const keyless = targets.filter((t) => t.id !== 'g_pool-b');
    for (const { label, row } of agents) {
      const asked = (await store.targetsNeedingKeys(row)).map((t) => t.id).sort();
      assert.deepEqual(
        asked,
        keyless
          .filter((t) => mayServe(row, t))
          .map((t) => t.id)
          .sort(),
        label,
      );
    }
  });

  test('tasks that need the key go only to agents holding it', async () => {
    const kid = (c: string): string => c.repeat(32);
    const sealed = { v: 1, alg: 'RSA-OAEP-256+A256GCM', kid: kid('a'), ek: '', iv: '', ct: '', tag: '' } as const;
    // x and pool-a have secrets; z has a key but no secret (its tasks need no key); y has neither.
    for (const [id, k] of [
      ['g_x', kid('a')],
      ['g_pool-a', kid('b')],
      ['g_z', kid('c')],
    ] as const) {
      assert.ok(await store.setTargetKey(id, 'PEM', k));
    }
    for (const [id, k] of [
      ['g_x', kid('a')],
      ['g_pool-a', kid('b')],
    ] as const) {
      const row = {
        targetId: id,
        orgId: targets.find((t) => t.id === id)!.orgId,
        name: 'S',
        kid: k,
        sealed: { ...sealed, kid: k },
        bytes: 1,
        setBy: 't',
        setAt: 1,
      };
      assert.equal(await store.putSecret(row), 'ok');
    }
    assert.equal(
      await store.putSecret({ targetId: 'g_z', orgId: 'o_a', name: 'S', kid: kid('d'), sealed, bytes: 1, setBy: 't', setAt: 1 }),
      'key_changed',
      'sealed with another key',
    );
    assert.ok(await store.addKeyHolder('g_x', 'a_on-x-and-z', kid('a'), Date.now()));
    assert.ok(await store.addKeyHolder('g_pool-a', 'a_hosted-a', kid('b'), Date.now()));
    assert.ok(!(await store.addKeyHolder('g_pool-a', 'a_hosted-wide', kid('f'), Date.now())), 'not the key in force');
    // A revoked agent's record says it holds the key; it still may not run anything.
    assert.ok(await store.addKeyHolder('g_x', 'a_revoked-on-x', kid('a'), Date.now()));
    const fresh = await Promise.all(targets.map(async (t) => (await store.getTargetById(t.id))!));
    const needs = new Map(await Promise.all(fresh.map(async (t) => [t.id, await keyNeedOf(store, t)] as const)));
    assert.ok(needs.get('g_x')?.needed && !needs.get('g_z')?.needed);
    const runnable = (agent: AgentRow): string[] =>
      fresh
        .filter((t) => mayRun(agent, t, needs.get(t.id)!))
        .map((t) => t.id)
        .sort();
    for (const { label, row } of agents) assert.deepEqual(await claimable(row), runnable(row), label);
    for (const t of fresh) {
      assert.equal(await store.countOnlineRunners(t, 0), agents.filter((a) => mayRun(a.row, t, needs.get(t.id)!)).length, `runners of ${t.name}`);
    }
    // Not trivial: an agent that serves x without its key cannot run x's task, and one with the key can.
    assert.ok(!runnable(agents.find((a) => a.label === 'on-x')!.row).includes('g_x'));
    assert.ok(runnable(agents.find((a) => a.label === 'on-x-and-z')!.row).includes('g_x'));
    assert.ok(runnable(agents.find((a) => a.label === 'on-x-and-z')!.row).includes('g_z'));
  });
});
