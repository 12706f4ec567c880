/**
 * The store contract, on both backends (helpers/stores.ts): each Store operation's answers, and
 * what replicas rely on. Two stores opened on one database stand for two replicas (on
 * PostgreSQL each has its own connection pool): claims racing for the same tasks give each task
 * to one agent; lease sweeps and output retention running on both at once act once per task;
 * uploads of one task racing each other store its output once; webhook deliveries are claimed by
 * one replica; output reads seek to any offset.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Streams, type OutputFrame, type SealedSecret } from '@ferry/protocol';
import type { AgentRow, OutputTransform, Store, TargetRow, TaskFilter } from '../src/store/types.js';
import { forEachStore, type TestBackend } from './helpers/stores.js';
import { registerTestAgent, testTarget, testTask } from './helpers/store-fixtures.js';

const LEASE_MS = 5000;
const keep: OutputTransform = (fresh, state) => ({ frames: [...fresh], state });
const noFlush = (): OutputFrame[] => [];
const frame = (text: string, stream: 1 | 2 = Streams.stdout): OutputFrame => ({ stream, time: 1.5, data: Buffer.from(text) });
const text = (frames: readonly OutputFrame[]): string => Buffer.concat(frames.map((f) => f.data)).toString();
const sealed = (kid: string): SealedSecret => ({ v: 1, alg: 'RSA-OAEP-256+A256GCM', kid, ek: 'AAAA', iv: 'AAAA', ct: 'AAAA', tag: 'AAAA' });

interface World {
  store: Store;
  orgId: string;
  target: TargetRow;
  agent: AgentRow;
}

async function world(backend: TestBackend, name?: string): Promise<World> {
  const store = await backend.open(name);
  const orgId = (await store.ensureOrg('acme', 1000)).id;
  const target = testTarget({ orgId, name: 'web' });
  assert.notEqual(await store.createTarget(target), 'exists');
  return { store, orgId, target, agent: await registerTestAgent(store, 'one', { orgId }) };
}

/** A task of `w.target` claimed and started by `w.agent`. */
async function running(w: World, id: string): Promise<void> {
  await w.store.createTask(testTask(w.target, { id, createdAt: 1 }));
  assert.equal((await w.store.claimNextTask(w.agent, Date.now(), LEASE_MS))?.id, id);
  assert.ok(await w.store.markStarted(id, w.agent.id, Date.now()));
}

forEachStore('store contract', (backend) => {
  test('organizations, targets: create once per live name, list, update with setting/secret name checks, delete refused while busy', async () => {
    const { store, orgId, target } = await world(backend);
    assert.equal((await store.ensureOrg('acme', 2000)).id, orgId, 'ensureOrg is idempotent');
    assert.equal(await store.createTarget({ ...target, id: 'g_other' }), 'exists');
    assert.deepEqual(
      (await store.listTargets(orgId)).map((t) => t.name),
      ['web'],
    );
    assert.equal((await store.getTargetByName(orgId, 'web'))?.id, target.id);
    assert.ok(await store.setTargetKey(target.id, 'PEM', 'k1'));
    assert.equal(await store.setTargetKey(target.id, 'PEM2', 'k2'), false, 'a key is set once');
    assert.equal(await store.putSecret({ targetId: target.id, orgId, name: 'TOKEN', kid: 'k1', sealed: sealed('k1'), bytes: 10, setBy: 't', setAt: 5 }), 'ok');
    assert.equal(
      await store.putSecret({ targetId: target.id, orgId, name: 'X', kid: 'old', sealed: sealed('old'), bytes: 10, setBy: 't', setAt: 5 }),
      'key_changed',
    );
    const changes = { network: 'host' as const, limits: { timeoutSeconds: 5 }, redact: 'all' as const, settings: { TOKEN: 'x' }, review: null };
    assert.deepEqual(await store.updateTarget(target.id, changes), { conflict: ['TOKEN'] });
    const updated = await store.updateTarget(target.id, { ...changes, settings: { REGION: 'eu', A: 'b' } });
    assert.ok(updated && 'id' in updated);
    assert.deepEqual([updated.network, updated.redact, updated.settings, updated.limits], ['host', 'all', { REGION: 'eu', A: 'b' }, { timeoutSeconds: 5 }]);
    assert.deepEqual(await store.putSecret({ targetId: target.id, orgId, name: 'REGION', kid: 'k1', sealed: sealed('k1'), bytes: 1, setBy: 't', setAt: 6 }), {
      conflict: ['REGION'],
    });
    assert.deepEqual(
      (await store.listSecrets(target.id)).map((s) => [s.name, s.kid, s.sealed.kid]),
      [['TOKEN', 'k1', 'k1']],
    );
    await store.createTask(testTask(target, { id: 't_busy' }));
    assert.equal(await store.deleteTarget(orgId, target.id, 10), 'busy');
    assert.ok(await store.cancelUnclaimed(orgId, 't_busy', 11, 'test', noFlush));
    assert.equal(await store.deleteTarget(orgId, target.id, 12), 'deleted');
    assert.equal(await store.getTargetByName(orgId, 'web'), undefined);
    assert.notEqual(await store.createTarget({ ...target, id: 'g_web2' }), 'exists', 'the name is free again');
    assert.ok(await store.deleteSecret(target.id, 'TOKEN'));
    assert.equal(await store.deleteSecret(target.id, 'TOKEN'), false);
  });

  test('join tokens and agents: used once, expiry, revocation, listing, running count', async () => {
    const { store, orgId, agent } = await world(backend);
    const now = Date.now();
    await store.createJoinToken(
      { id: 'j_x', orgId, hosted: true, targetIds: [], createdBy: 't', createdAt: now, expiresAt: now + 1000, usedAt: null },
      'sec-x',
    );
    const newAgent = { id: 'a_x', name: 'x', hostname: 'h', version: '1', platform: 'linux', concurrency: 2, tokenHash: 'tok-x' };
    assert.deepEqual(await store.consumeJoinToken('nope', now, newAgent), { ok: false, code: 'FERRY_E_JOIN_TOKEN_INVALID' });
    assert.deepEqual(await store.consumeJoinToken('sec-x', now + 1000, newAgent), { ok: false, code: 'FERRY_E_JOIN_TOKEN_EXPIRED' });
    const joined = await store.consumeJoinToken('sec-x', now, newAgent);
    assert.ok(joined.ok);
    assert.deepEqual([joined.agent.orgId, joined.agent.hosted, joined.agent.concurrency], [orgId, true, 2]);
    assert.deepEqual(await store.consumeJoinToken('sec-x', now, { ...newAgent, id: 'a_y', tokenHash: 'tok-y' }), {
      ok: false,
      code: 'FERRY_E_JOIN_TOKEN_USED',
    });
    // A token naming only deleted targets is refused (and stays unused).
    await store.createTarget(testTarget({ orgId, name: 'gone', agentMode: 'self-hosted' }));
    await store.deleteTarget(orgId, 'g_gone', now);
    await store.createJoinToken(
      { id: 'j_g', orgId, hosted: false, targetIds: ['g_gone'], createdBy: 't', createdAt: now, expiresAt: now + 1000, usedAt: null },
      'sec-g',
    );
    assert.deepEqual(await store.consumeJoinToken('sec-g', now, { ...newAgent, id: 'a_g', tokenHash: 'tok-g' }), {
      ok: false,
      code: 'FERRY_E_JOIN_TOKEN_TARGET_DELETED',
    });

    assert.equal((await store.findAgentByToken('tok-x'))?.id, 'a_x');
    await store.touchAgent('a_x', now + 500);
    assert.equal((await store.getAgent('a_x'))?.lastSeenAt, now + 500);
    assert.deepEqual(
      (await store.listAgents(orgId)).map((a) => a.id),
      [agent.id, 'a_x'],
    );
    assert.equal(await store.revokeAgent(null, 'a_x', now), false, 'revoking needs the agent’s own organization');
    assert.ok(await store.revokeAgent(orgId, 'a_x', now));
    assert.equal(await store.revokeAgent(orgId, 'a_x', now), false);
    assert.equal(await store.countRunningTasks(agent.id), 0);
  });

  test('insertTask: the task as createTask writes it, with its target key state; nothing written once the organization output reaches the quota', async () => {
    const w = await world(backend);
    const { store, orgId, target, agent } = w;
    const first = await store.insertTask(
      testTask(target, { id: 't_1', createdAt: 1, stdin: Buffer.from([0, 1, 255]), args: ['a b'], env: { X: '1' }, timeoutSeconds: 1.5 }),
      0,
      0,
    );
    assert.deepEqual(first, { keyState: { holders: [], rotationRequested: false, secretCount: 0 }, runners: 1 });
    const got = await store.getTask(orgId, 't_1');
    assert.deepEqual(
      [Buffer.from(got?.stdin ?? []).toString('hex'), got?.args, got?.env, got?.timeoutSeconds, got?.status, got?.targetName],
      ['0001ff', ['a b'], { X: '1' }, 1.5, 'queued', 'web'],
    );
    assert.ok(await store.setTargetKey(target.id, 'PEM', 'k1'));
    assert.ok(await store.addKeyHolder(target.id, agent.id, 'k1', 1));
    assert.equal(await store.putSecret({ targetId: target.id, orgId, name: 'TOKEN', kid: 'k1', sealed: sealed('k1'), bytes: 10, setBy: 't', setAt: 5 }), 'ok');
    const second = await store.insertTask(testTask(target, { id: 't_2', createdAt: 2 }), 0, 0);
    assert.ok(second !== 'quota_reached');
    assert.deepEqual(
      [second.keyState.secretCount, second.keyState.holders.map((h) => h.agentId), second.runners],
      [1, [agent.id], 1],
      'the key state as of the write; the one agent holds the key, so it may run the task',
    );
    const unseen = await store.insertTask(testTask(target, { id: 't_2c', createdAt: 2 }), 0, Date.now() + 60_000);
    assert.equal(unseen !== 'quota_reached' && unseen.runners, 0, 'no agent seen since then');
    // 10 bytes of output stored: a quota of 11 admits a task, one of 10 does not.
    assert.equal((await store.claimNextTask(agent, Date.now(), LEASE_MS))?.id, 't_1');
    assert.ok(await store.markStarted('t_1', agent.id, Date.now()));
    assert.notEqual(await store.appendOutput('t_1', agent.id, 0, [frame('0123456789')], keep), 'not_held');
    assert.equal(await store.orgOutputBytes(orgId), 10);
    assert.notEqual(await store.insertTask(testTask(target, { id: 't_3', createdAt: 3 }), 11, 0), 'quota_reached');
    assert.equal(await store.insertTask(testTask(target, { id: 't_4', createdAt: 4 }), 10, 0), 'quota_reached');
    assert.equal(await store.getTask(orgId, 't_4'), undefined, 'nothing written');
    assert.notEqual(await store.insertTask(testTask(target, { id: 't_5', createdAt: 5 }), 0, 0), 'quota_reached', 'no quota');
  });

  test('finishTaskWithoutOutput: ends a held running task with no output stored, once; not one with output, nor another agent’s', async () => {
    const w = await world(backend);
    const { store, orgId, agent } = w;
    const other = await registerTestAgent(store, 'two', { orgId });
    const finish = { status: 'succeeded' as const, exitCode: 0, signal: null, reason: null, now: 100, outputBytes: 0 };
    await running(w, 't_quiet');
    assert.equal(await store.finishTaskWithoutOutput('t_quiet', other.id, finish), undefined, 'another agent’s task');
    assert.equal(await store.finishTaskWithoutOutput('t_quiet', agent.id, finish), orgId);
    const ended = await store.getTask(orgId, 't_quiet');
    assert.deepEqual([ended?.status, ended?.exitCode, ended?.finishedAt, ended?.leaseExpiresAt], ['succeeded', 0, 100, null]);
    assert.equal(await store.finishTaskWithoutOutput('t_quiet', agent.id, finish), undefined, 'a task ends once');
    await running(w, 't_loud');
    assert.notEqual(await store.appendOutput('t_loud', agent.id, 0, [frame('x')], keep), 'not_held');
    assert.equal(await store.finishTaskWithoutOutput('t_loud', agent.id, finish), undefined, 'output was stored');
    assert.equal((await store.getTask(orgId, 't_loud'))?.status, 'running');
  });

  test('claimNextTaskRenewing: the claim and the renewal of one poll, answering as claimNextTask and renewLeases do', async () => {
    const w = await world(backend);
    const { store, orgId, agent } = w;
    await running(w, 't_a');
    await running(w, 't_b');
    assert.ok(await store.requestStop(orgId, 't_b', Date.now()));
    await store.createTask(testTask(w.target, { id: 't_c', createdAt: 2 }));
    const leaseUntil = Date.now() + 4 * LEASE_MS;
    const first = await store.claimNextTaskRenewing(agent, Date.now(), LEASE_MS, ['t_a', 't_b', 't_unknown'], leaseUntil);
    assert.deepEqual(
      [first.task?.id, first.task?.status, first.task?.agentId, first.held, first.cancel],
      ['t_c', 'running', agent.id, ['t_a', 't_b'], ['t_b']],
    );
    assert.equal((await store.getTask(orgId, 't_a'))?.leaseExpiresAt, leaseUntil, 'the lease renewed');
    const claimedLease = (await store.getTask(orgId, 't_c'))?.leaseExpiresAt ?? 0;
    assert.ok(claimedLease < leaseUntil, 'the claimed task has its own lease');
    const second = await store.claimNextTaskRenewing(agent, Date.now(), LEASE_MS, ['t_a', 't_c'], leaseUntil);
    assert.deepEqual([second.task, second.held, second.cancel], [undefined, ['t_a', 't_c'], []], 'nothing left to claim; renewals still answered');
    const none = await store.claimNextTaskRenewing(agent, Date.now(), LEASE_MS, [], leaseUntil);
    assert.deepEqual([none.task, none.held, none.cancel], [undefined, [], []]);
  });

  test('tasks: list filters, claim in order, start, renew, stop request, finish once', async () => {
    const w = await world(backend);
    const { store, orgId, target, agent } = w;
    await store.createTask(testTask(target, { id: 't_1', createdAt: 1, stdin: Buffer.from([0, 1, 2, 255]), args: ['a b', 'c'], env: { X: '1' } }));
    await store.createTask(testTask(target, { id: 't_2', createdAt: 2 }));
    const got = await store.getTask(orgId, 't_1');
    assert.deepEqual([Buffer.from(got?.stdin ?? []).toString('hex'), got?.args, got?.env, got?.targetName], ['000102ff', ['a b', 'c'], { X: '1' }, 'web']);
    assert.deepEqual(
      (await store.listTasks(orgId, { limit: 10 })).map((t) => t.id),
      ['t_2', 't_1'],
    );
    assert.deepEqual(
      (await store.listTasks(orgId, { limit: 10, targetIds: ['g_none'] })).map((t) => t.id),
      [],
    );
    assert.deepEqual(
      (await store.listTasks(orgId, { limit: 1, status: 'queued', targetIds: [target.id] })).map((t) => t.id),
      ['t_2'],
    );
    // With secrets only a holder of the target's key may run its tasks; the claim brings them.
    assert.ok(await store.setTargetKey(target.id, 'PEM', 'k1'));
    assert.ok(await store.addKeyHolder(target.id, agent.id, 'k1', 1));
    for (const name of ['B_TOKEN', 'A_TOKEN']) {
      assert.equal(await store.putSecret({ targetId: target.id, orgId, name, kid: 'k1', sealed: sealed('k1'), bytes: 10, setBy: 't', setAt: 5 }), 'ok');
    }
    const now = Date.now();
    const claimed = await store.claimNextTask(agent, now, LEASE_MS);
    assert.deepEqual([claimed?.id, claimed?.status, claimed?.agentName, claimed?.leaseExpiresAt], ['t_1', 'running', 'one', now + LEASE_MS]);
    assert.deepEqual(claimed?.secrets, await store.listSecrets(target.id));
    assert.deepEqual(
      claimed?.secrets.map((x) => [x.name, x.sealed.kid, x.bytes]),
      [
        ['A_TOKEN', 'k1', 10],
        ['B_TOKEN', 'k1', 10],
      ],
    );
    assert.equal(await store.countRunningTasks(agent.id, orgId), 1);
    assert.ok(await store.markStarted('t_1', agent.id, now));
    assert.ok(await store.markStarted('t_1', agent.id, now + 1), 'idempotent');
    assert.equal(await store.releaseClaim('t_1', agent.id), false, 'a started task is not given back');
    assert.deepEqual(await store.renewLeases(agent.id, ['t_1', 't_2'], now + 2 * LEASE_MS), { held: ['t_1'], cancel: [] });
    assert.ok(await store.requestStop(orgId, 't_1', now));
    assert.equal(await store.requestStop(orgId, 't_1', now), false);
    assert.deepEqual(await store.renewLeases(agent.id, ['t_1'], now + 2 * LEASE_MS), { held: ['t_1'], cancel: ['t_1'] });
    const finish = { status: 'succeeded' as const, exitCode: 0, signal: null, reason: null, now: now + 10 };
    assert.ok(await store.finishTask('t_1', agent.id, finish, noFlush));
    assert.equal(await store.finishTask('t_1', agent.id, finish, noFlush), false, 'a task ends once');
    const done = await store.getTaskForAgent('t_1', agent.id);
    assert.deepEqual([done?.status, done?.exitCode, done?.startedAt, done?.finishedAt], ['succeeded', 0, now, now + 10]);
    const second = await store.claimNextTask(agent, now, LEASE_MS);
    assert.equal(second?.id, 't_2');
    assert.ok(await store.releaseClaim('t_2', agent.id), 'a claim not started can be given back');
    assert.equal((await store.getTask(orgId, 't_2'))?.status, 'queued');
  });

  test('task list: by the principal that created them, and paged by (created_at, id), newest first', async () => {
    const w = await world(backend);
    for (const [id, createdAt, by] of [
      ['t_a', 1, 'p_1'],
      ['t_b', 2, 'p_2'],
      ['t_c', 2, 'p_1'],
      ['t_d', 3, 'p_1'],
    ] as const)
      await w.store.createTask(testTask(w.target, { id, createdAt, createdByPrincipal: by }));
    const ids = async (filter: Omit<TaskFilter, 'limit'>, limit = 10): Promise<string[]> =>
      (await w.store.listTasks(w.orgId, { limit, ...filter })).map((t) => t.id);
    assert.deepEqual(await ids({ createdByPrincipal: 'p_1' }), ['t_d', 't_c', 't_a']);
    assert.deepEqual(await ids({}, 2), ['t_d', 't_c'], 'first page; t_c before t_b: same time, larger id');
    assert.deepEqual(await ids({ before: { createdAt: 2, id: 't_c' } }, 2), ['t_b', 't_a'], 'next page');
    assert.deepEqual(await ids({ before: { createdAt: 3, id: 't_d' }, createdByPrincipal: 'p_1' }), ['t_c', 't_a']);
    assert.deepEqual(await ids({ createdByPrincipal: 'p_nobody' }), []);
  });

  test('claims racing from two stores on one database: every task goes to exactly one agent', { timeout: 60_000 }, async () => {
    const name = `race_claims_${backend.kind}`;
    const a = await world(backend, name);
    const b = await backend.open(name);
    const agents = [a.agent];
    for (const label of ['two', 'three', 'four']) agents.push(await registerTestAgent(a.store, label, { orgId: a.orgId }));
    const N = 40;
    for (let i = 0; i < N; i++) await a.store.createTask(testTask(a.target, { id: `t_${String(i).padStart(2, '0')}`, createdAt: i }));
    const claimedBy = new Map<string, string>();
    // Each agent claims through both stores at once, over and over, until nothing is left.
    await Promise.all(
      agents.flatMap((agent) =>
        [a.store, b].map(async (store) => {
          for (;;) {
            const task = await store.claimNextTask(agent, Date.now(), LEASE_MS);
            if (!task) return;
            assert.equal(claimedBy.has(task.id), false, `${task.id} claimed twice`);
            claimedBy.set(task.id, agent.id);
          }
        }),
      ),
    );
    assert.equal(claimedBy.size, N);
    const rows = await a.store.listTasks(a.orgId, { limit: 100 });
    for (const t of rows) assert.deepEqual([t.status, t.agentId], ['running', claimedBy.get(t.id)]);
  });

  test('lease sweeps on two stores at once: a lapsed task is requeued or lost once; a renewed one is left alone', async () => {
    const name = `race_sweeps_${backend.kind}`;
    const a = await world(backend, name);
    const b = await backend.open(name);
    await a.store.createTask(testTask(a.target, { id: 't_unstarted', createdAt: 1 }));
    assert.ok(await a.store.claimNextTask(a.agent, 0, 10));
    await running(a, 't_started');
    await a.store.createTask(testTask(a.target, { id: 't_renewed', createdAt: 3 }));
    assert.ok(await a.store.claimNextTask(a.agent, 0, 10));
    await a.store.renewLeases(a.agent.id, ['t_started'], 20);
    await a.store.renewLeases(a.agent.id, ['t_renewed'], Date.now() + 10 * LEASE_MS);
    const now = Date.now();
    const lapsed = (await b.listLapsedLeases(now)).map((t) => t.id).sort();
    assert.deepEqual(lapsed, ['t_started', 't_unstarted']);
    const requeued = await Promise.all([a.store, b].map((s) => s.requeueLapsed('t_unstarted', a.agent.id, now)));
    const lost = await Promise.all([a.store, b].map((s) => s.markLost('t_started', a.agent.id, now, 'lease lapsed', noFlush)));
    assert.deepEqual([requeued.filter(Boolean).length, lost.filter(Boolean).length], [1, 1]);
    assert.equal(await a.store.requeueLapsed('t_started', a.agent.id, now), false, 'a started task is never requeued');
    assert.deepEqual(
      [
        (await a.store.getTask(a.orgId, 't_unstarted'))?.status,
        (await a.store.getTask(a.orgId, 't_started'))?.status,
        (await b.getTask(a.orgId, 't_renewed'))?.status,
      ],
      ['queued', 'lost', 'running'],
    );
    assert.equal(await a.store.extendRunningLeases(now + LEASE_MS), 0, 'the renewed lease is later than that already');
    // Claimed again, asked to stop before it started, its lease lapsed: cancelled once, never requeued.
    assert.equal((await a.store.claimNextTask(a.agent, 0, 10))?.id, 't_unstarted');
    assert.ok(await b.requestStop(a.orgId, 't_unstarted', now));
    assert.equal(await a.store.requeueLapsed('t_unstarted', a.agent.id, now), false, 'a stop was asked for');
    const cancelled = await Promise.all([a.store, b].map((s) => s.cancelLapsed('t_unstarted', a.agent.id, now, 'stopped before it started', noFlush)));
    assert.equal(cancelled.filter(Boolean).length, 1);
    const task = await b.getTask(a.orgId, 't_unstarted');
    assert.deepEqual([task?.status, task?.reason], ['cancelled', 'stopped before it started']);
  });

  test('output: offset-addressed idempotent appends, reads that seek to any offset within byte and frame budgets', async () => {
    const w = await world(backend);
    await running(w, 't_out');
    const chunks = Array.from({ length: 50 }, (_, i) => frame(`chunk-${String(i).padStart(2, '0')};`, i % 2 === 0 ? Streams.stdout : Streams.stderr));
    const all = text(chunks);
    let offset = 0;
    for (let i = 0; i < chunks.length; i += 5) {
      const slice = chunks.slice(i, i + 5);
      const r = await w.store.appendOutput('t_out', w.agent.id, offset, slice, keep);
      assert.ok(r !== 'not_held' && r.ok);
      offset = r.nextOffset;
    }
    assert.equal(offset, all.length);
    // The same upload again (a retry after a lost answer) stores nothing new.
    const again = await w.store.appendOutput('t_out', w.agent.id, offset - chunks[49]!.data.length, [chunks[49]!], keep);
    assert.deepEqual(again !== 'not_held' && again.ok && [again.nextOffset, again.fresh.length], [offset, 0]);
    assert.deepEqual(await w.store.appendOutput('t_out', w.agent.id, offset + 5, [frame('x')], keep), { ok: false, expectedOffset: offset });
    assert.equal(await w.store.appendOutput('t_out', 'a_other', offset, [frame('x')], keep), 'not_held');

    assert.equal(text(await w.store.readOutput('t_out', 0, 1 << 20)), all);
    for (const at of [0, 1, 9, 10, 11, 250, all.length - 1]) assert.equal(text(await w.store.readOutput('t_out', at, 1 << 20)), all.slice(at), `from ${at}`);
    assert.deepEqual(await w.store.readOutput('t_out', all.length, 1 << 20), []);
    const two = await w.store.readOutput('t_out', 3, 1 << 20, 2);
    assert.deepEqual([two.length, text(two)], [2, all.slice(3, 18)]);
    assert.deepEqual(
      two.map((f) => f.stream),
      [Streams.stdout, Streams.stderr],
    );
    const budget = await w.store.readOutput('t_out', 0, 25);
    assert.equal(text(budget), all.slice(0, 18), 'whole frames within the byte budget');
    assert.equal(text(await w.store.readOutput('t_out', 0, 1)), all.slice(0, 9), 'at least one frame');
    const task = await w.store.getTask(w.orgId, 't_out');
    assert.deepEqual([task?.outputBytes, task?.storedBytes, await w.store.orgOutputBytes(w.orgId)], [all.length, all.length, all.length]);
  });

  test('output digest state: stored with the append and read by another store; with a state an append must start where received output ends', async () => {
    const name = `digest_${backend.kind}`;
    const a = await world(backend, name);
    const b = await backend.open(name);
    await running(a, 't_dig');
    assert.equal((await b.getTask(a.orgId, 't_dig'))?.outputDigest, null, 'no state before any output');
    const first = await a.store.appendOutput('t_dig', a.agent.id, 0, [frame('0123456789')], keep, 'state-after-10');
    assert.deepEqual(first !== 'not_held' && first.ok && [first.nextOffset, text(first.fresh)], [10, '0123456789']);
    // Another replica sees the state with the counters it belongs to (what verifyFinal reads).
    const seen = await b.getTaskForAgent('t_dig', a.agent.id);
    assert.deepEqual([seen?.outputDigest, seen?.outputBytes], ['state-after-10', 10]);
    // An upload overlapping the received output only partly: its state is for bytes from its own
    // offset, so it is answered as a gap (where the output ends), and nothing changes.
    assert.deepEqual(await b.appendOutput('t_dig', a.agent.id, 4, [frame('456789abcd')], keep, 'state-after-14'), { ok: false, expectedOffset: 10 });
    // The same upload again (a retry after a lost answer) stores nothing and keeps the state.
    const again = await b.appendOutput('t_dig', a.agent.id, 0, [frame('0123456789')], keep, 'state-after-10');
    assert.deepEqual(again !== 'not_held' && again.ok && [again.nextOffset, again.fresh.length], [10, 0]);
    assert.deepEqual(await b.appendOutput('t_dig', a.agent.id, 12, [frame('x')], keep, 'state-after-13'), { ok: false, expectedOffset: 10 });
    const next = await b.appendOutput('t_dig', a.agent.id, 10, [frame('abcd')], keep, 'state-after-14');
    assert.ok(next !== 'not_held' && next.ok && next.nextOffset === 14);
    assert.equal((await a.store.getTask(a.orgId, 't_dig'))?.outputDigest, 'state-after-14');
    assert.equal(text(await a.store.readOutput('t_dig', 0, 1 << 20)), '0123456789abcd');
    // Without a state (an agent from before the digest), the overlap is skipped as before and
    // the state becomes unknown: it no longer describes the output.
    const old = await a.store.appendOutput('t_dig', a.agent.id, 12, [frame('cdef')], keep);
    assert.ok(old !== 'not_held' && old.ok && old.nextOffset === 16);
    assert.equal((await b.getTask(a.orgId, 't_dig'))?.outputDigest, null);
    // The state holds raw (unredacted) bytes of the output: the task's end removes it, in the
    // ending's transaction (the final status is checked before).
    await a.store.appendOutput('t_dig', a.agent.id, 16, [frame('!')], keep, 'state-after-17');
    assert.equal((await b.getTask(a.orgId, 't_dig'))?.outputDigest, 'state-after-17');
    assert.ok(await b.finishTask('t_dig', a.agent.id, { status: 'succeeded', exitCode: 0, signal: null, reason: null, now: 100 }, noFlush));
    const ended = (await a.store.listTasks(a.orgId, { limit: 10 })).find((t) => t.id === 't_dig');
    assert.deepEqual([ended?.outputDigest, ended?.outputBytes, ended?.storedBytes], [null, 17, 17]);
  });

  test('uploads of one task racing from two stores: the output is stored once, in order', async () => {
    const name = `race_output_${backend.kind}`;
    const a = await world(backend, name);
    const b = await backend.open(name);
    await running(a, 't_dup');
    const parts = Array.from({ length: 20 }, (_, i) => frame(`part-${String(i).padStart(2, '0')}|`));
    // Every upload is sent twice, once through each store, at the same time (a retry that crossed its answer).
    let offset = 0;
    for (const part of parts) {
      const results = await Promise.all([a.store, b].map((s) => s.appendOutput('t_dup', a.agent.id, offset, [part], keep)));
      for (const r of results) assert.ok(r !== 'not_held' && r.ok);
      const stored = results.filter((r) => r !== 'not_held' && r.ok && r.fresh.length > 0);
      assert.equal(stored.length, 1, 'one of the two stored it');
      offset += part.data.length;
    }
    assert.equal(text(await b.readOutput('t_dup', 0, 1 << 20)), text(parts));
    assert.equal(await a.store.orgOutputBytes(a.orgId), offset);
  });

  test('uploads of different lengths racing from two stores: the redactor state always matches what is stored', async () => {
    const name = `race_state_${backend.kind}`;
    const a = await world(backend, name);
    const b = await backend.open(name);
    await running(a, 't_state');
    // A redactor whose state is the number of bytes it has passed: a store that appended with a
    // state read before another append won would leave a state that disagrees with the output.
    const counting: OutputTransform = (fresh, state) => ({
      frames: fresh.map((f) => ({ ...f, data: Buffer.from(f.data.toString().toUpperCase()) })),
      state: String(Number(state ?? 0) + fresh.reduce((n, f) => n + f.data.length, 0)),
    });
    const parts = Array.from({ length: 30 }, (_, i) => `p${String(i).padStart(2, '0')}|`);
    let offset = 0;
    for (let i = 0; i < parts.length; i += 2) {
      // Through one store the next part, through the other the next two, from the same offset.
      const [one, two] = await Promise.all([
        a.store.appendOutput('t_state', a.agent.id, offset, [frame(parts[i]!)], counting),
        b.appendOutput('t_state', a.agent.id, offset, [frame(parts[i]! + (parts[i + 1] ?? ''))], counting),
      ]);
      for (const r of [one, two]) assert.ok(r !== 'not_held' && r.ok);
      offset = Math.max(one !== 'not_held' && one.ok ? one.nextOffset : 0, two !== 'not_held' && two.ok ? two.nextOffset : 0);
    }
    const all = parts.join('');
    assert.equal(offset, all.length);
    assert.equal(text(await b.readOutput('t_state', 0, 1 << 20)), all.toUpperCase());
    const task = await b.getTask(a.orgId, 't_state');
    assert.deepEqual([task?.outputBytes, task?.storedBytes, task?.redactState], [all.length, all.length, String(all.length)]);
    assert.equal(await a.store.orgOutputBytes(a.orgId), all.length);
  });

  test('output retention on two stores at once: each task’s output is removed and counted once', async () => {
    const name = `race_expiry_${backend.kind}`;
    const a = await world(backend, name);
    const b = await backend.open(name);
    for (const id of ['t_e1', 't_e2', 't_e3', 't_e4']) {
      await running(a, id);
      await a.store.appendOutput(id, a.agent.id, 0, [frame('0123456789')], keep);
      await a.store.finishTask(id, a.agent.id, { status: 'succeeded', exitCode: 0, signal: null, reason: null, now: 100 }, noFlush);
    }
    assert.equal(await a.store.orgOutputBytes(a.orgId), 40);
    const passes = await Promise.all([a.store.expireOutput(200, 300, 2), b.expireOutput(200, 300, 2), a.store.expireOutput(200, 300, 4)]);
    const removed = passes.flat().reduce((n, e) => n + e.tasks, 0);
    assert.equal(removed, 4);
    assert.equal(await a.store.orgOutputBytes(a.orgId), 0);
    assert.deepEqual(await a.store.readOutput('t_e1', 0, 100), []);
    assert.equal((await b.getTask(a.orgId, 't_e3'))?.outputExpiredAt, 300);
  });

  test('webhook deliveries claimed by two stores at once: each goes to one of them', async () => {
    const name = `race_hooks_${backend.kind}`;
    const a = await world(backend, name);
    const b = await backend.open(name);
    await a.store.webhooks.create({
      id: 'w_1',
      orgId: a.orgId,
      url: 'https://example.test/',
      events: ['task.finished'],
      format: 'json',
      secret: 's',
      createdBy: 't',
      createdAt: 1,
    });
    await a.store.webhooks.enqueue(
      Array.from({ length: 30 }, (_, i) => ({
        id: `d_${String(i).padStart(2, '0')}`,
        webhookId: 'w_1',
        event: 'task.finished' as const,
        taskId: 't',
        body: '{}',
        createdAt: i,
      })),
    );
    const claims = await Promise.all([a.store, b, a.store, b].map((s) => s.webhooks.claimDue(1000, 60_000, 10)));
    const ids = claims.flat().map((d) => d.id);
    assert.equal(ids.length, 30);
    assert.equal(new Set(ids).size, 30, 'no delivery claimed twice');
    assert.deepEqual(await b.webhooks.claimDue(1000, 60_000, 10), [], 'all leased ahead');
    assert.equal(await a.store.webhooks.nextDue(), 61_000);
  });

  test('metrics and readiness read the database', async () => {
    const w = await world(backend);
    await w.store.createTask(testTask(w.target, { id: 't_m' }));
    const m = await w.store.metricsSnapshot(0);
    assert.deepEqual(m.tasksByStatus, [{ status: 'queued', count: 1 }]);
    assert.deepEqual(m.queueDepth, [{ org: 'acme', target: 'web', count: 1 }]);
    assert.deepEqual(m.agentsOnline, [
      { hosted: true, count: 1 },
      { hosted: false, count: 0 },
    ]);
    const r = await w.store.readiness();
    assert.deepEqual(r.appliedMigrations, r.knownMigrations);
  });
});
