/**
 * Moving an installation from SQLite to PostgreSQL (`ferry server migrate`): a populated SQLite
 * store (targets with sealed secrets and key holders, tasks with binary output, a pending
 * review, agents, groups and grants, tokens, invitations, webhooks with deliveries, runbooks,
 * an audit chain; output in SQLite's files with its digest state) is copied into an empty PostgreSQL database; every read the server makes
 * answers the same on both, the audit chain still verifies and grows on, and a database that is
 * not empty is refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Streams, type OutputFrame } from '@ferry/protocol';
import { verifyChain } from '../src/routes/audit.js';
import { migrateSqliteToPostgres } from '../src/store/postgres/migrate-from-sqlite.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import type { Store } from '../src/store/types.js';
import { newTaskReview } from '../src/tasks/reviews.js';
import { registerTestAgent, testTarget, testTask } from './helpers/store-fixtures.js';
import { usePostgres } from './helpers/stores.js';

const postgres = usePostgres();
const dir = mkdtempSync(join(tmpdir(), 'ferry-migrate-'));
const file = join(dir, 'ferry.db');
const keep = (fresh: readonly OutputFrame[], state: string | null) => ({ frames: [...fresh], state });
const sealed = (kid: string, ct: string) => ({ v: 1 as const, alg: 'RSA-OAEP-256+A256GCM' as const, kid, ek: 'AAAA', iv: 'AAAA', ct, tag: 'AAAA' });
let orgId: string;

async function populate(store: Store): Promise<void> {
  const now = Date.now();
  orgId = (await store.ensureOrg('default', now)).id;
  const admin = { id: 'p_admin', orgId, kind: 'service' as const, name: 'admin', role: 'admin' as const, instanceAdmin: true, createdBy: null, createdAt: now };
  await store.teams.createPrincipal(admin);
  await store.teams.createToken(
    { id: 'k_admin', orgId, principalId: 'p_admin', name: 'admin', createdAt: now, expiresAt: null, lastUsedAt: now, revokedAt: null },
    'h-admin',
  );
  await store.teams.createGroup({ id: 'r_ops', orgId, name: 'ops', createdAt: now });
  await store.teams.addGroupMember('r_ops', 'p_admin');
  const web = testTarget({ orgId, name: 'web', settings: { REGION: 'eu', A: 'z' } });
  const prod = testTarget({ orgId, name: 'prod', review: { rule: 'any', groupId: null, groupName: null, approvals: 2, expirySeconds: 3600 } });
  for (const t of [web, prod]) await store.createTarget(t);
  await store.teams.putGrant(web.id, 'r_ops', 'operator', now);
  const agent = await registerTestAgent(store, 'one', { orgId });
  await store.setAgentIdentityKey(agent.id, 'PEM-one', 'e'.repeat(32), now);
  await store.setTargetKey(web.id, 'PEM-web', 'a'.repeat(32));
  await store.addKeyHolder(web.id, agent.id, 'a'.repeat(32), now);
  for (const name of ['TOKEN', 'PASSWORD']) {
    await store.putSecret({
      targetId: web.id,
      orgId,
      name,
      kid: 'a'.repeat(32),
      sealed: sealed('a'.repeat(32), `ct-${name}`),
      bytes: 12,
      setBy: 'admin',
      setAt: now,
    });
  }
  // A task that ran, with output on both streams and bytes that are not text.
  await store.createTask(testTask(web, { id: 't_ran', createdAt: 1, stdin: Buffer.from([0, 255, 10]), args: ['x'], env: { K: 'v' } }));
  await store.claimNextTask(agent, now, 60_000);
  await store.markStarted('t_ran', agent.id, now);
  const frames: OutputFrame[] = [
    { stream: Streams.stdout, time: 0.25, data: Buffer.from('hello\n') },
    { stream: Streams.stderr, time: 0.5, data: Buffer.from([0, 1, 2, 254, 255]) },
    { stream: Streams.stdout, time: 0.75, data: Buffer.alloc(70_000, 0x61) },
  ];
  await store.appendOutput('t_ran', agent.id, 0, frames, keep);
  await store.finishTask('t_ran', agent.id, { status: 'succeeded', exitCode: 0, signal: null, reason: null, now }, () => []);
  // A task still running, with the raw output's digest state (any string to the store), which
  // must move with it so that its final status can still be checked.
  await store.createTask(testTask(web, { id: 't_live', createdAt: 1 }));
  await store.claimNextTask(agent, now, 60_000);
  await store.markStarted('t_live', agent.id, now);
  await store.appendOutput('t_live', agent.id, 0, [{ stream: Streams.stdout, time: 0.1, data: Buffer.from('so far\n') }], keep, 'digest-state-of-t_live');
  await store.createTask(testTask(web, { id: 't_queued', createdAt: 2 }));
  const input = { script: 'echo hi', targetId: prod.id, args: [], env: {}, stdin: null };
  const review = newTaskReview(prod.review!, input, now);
  await store.createTask(testTask(prod, { id: 't_review', createdAt: 3, status: 'pending_review', review, createdByPrincipal: 'p_author' }));
  await store.approveTask(
    { taskId: 't_review', principalId: 'p_admin', actor: 'service:admin', decision: 'approve', comment: 'ok', binding: review.binding, at: now },
    2,
  );
  await store.webhooks.create({
    id: 'w_1',
    orgId,
    url: 'https://hooks.example/x',
    events: ['task.finished'],
    format: 'json',
    secret: 'whsec',
    createdBy: 'admin',
    createdAt: now,
  });
  await store.webhooks.enqueue([{ id: 'd_1', webhookId: 'w_1', event: 'task.finished', taskId: 't_ran', body: '{"a":1}', createdAt: now }]);
  await store.webhooks.recordAttempt('d_1', { at: now, httpStatus: 500, error: null, durationMs: 12 }, { kind: 'retry', retryAt: now + 10_000 });
  await store.people.createInvitation(
    { id: 'i_1', orgId, email: 'ann@example.com', role: 'operator', createdBy: 'admin', createdAt: now, expiresAt: now + 3_600_000, usedAt: null },
    'h-invite',
  );
  await store.runbooks.addSource({
    id: 's_1',
    orgId,
    name: 'ops',
    git: 'https://git.example/ops.git',
    ref: 'main',
    path: 'runbooks',
    commit: null,
    syncedAt: null,
    lastError: null,
    createdBy: 'admin',
    createdAt: now,
  });
  await store.runbooks.replaceRunbooks(
    's_1',
    'c0ffee',
    now,
    [
      {
        orgId,
        name: 'restart',
        sourceId: 's_1',
        sourceName: 'ops',
        file: 'restart.sh',
        commit: 'c0ffee',
        script: 'systemctl restart app',
        description: 'restart',
        targetType: 'shell',
        defaultTarget: 'web',
        params: [],
      },
    ],
    null,
  );
  for (let i = 0; i < 12; i++) {
    await store.appendAudit({
      orgId: i % 3 === 0 ? null : orgId,
      at: now + i,
      actor: 'admin',
      action: 'thing.do',
      subject: `s${i}`,
      details: { i, z: 'last', a: 'first' },
    });
  }
}

/** What the server reads, as one comparable object. */
async function snapshot(store: Store): Promise<unknown> {
  const agents = await store.listAgents(orgId);
  return {
    targets: await store.listTargets(orgId),
    secrets: await store.listSecrets('g_web'),
    tasks: await Promise.all(['t_ran', 't_live', 't_queued', 't_review'].map((id) => store.getTask(orgId, id))),
    output: (await store.readOutput('t_ran', 0, 1 << 20)).map((f) => [f.stream, f.time, Buffer.from(f.data).toString('hex')]),
    outputFrom: (await store.readOutput('t_ran', 8, 100)).map((f) => Buffer.from(f.data).toString('hex')),
    agents,
    keyState: await store.targetKeyState('g_web'),
    holdings: [...(await store.keyHoldings(orgId))],
    decisions: await store.listReviewDecisions('t_review'),
    audit: await store.allAudit(),
    orgs: await store.teams.listOrgs(),
    tokens: await store.teams.listTokens(orgId),
    groups: await store.teams.listGroups(orgId),
    grants: [...(await store.teams.grantsOf('p_admin'))],
    hooks: await store.webhooks.deliveries('w_1', 10),
    invitations: await store.people.listPendingInvitations(orgId, 0),
    runbooks: await store.runbooks.listRunbooks(orgId),
    sources: await store.runbooks.listSources(orgId),
    usage: await store.orgOutputBytes(orgId),
    metrics: await store.metricsSnapshot(0),
    byToken: await store.findAgentByToken('token-one'),
  };
}

let url: string;
before(async () => {
  const store = new SqliteStore(file);
  await populate(store);
  await store.close();
  url = await postgres.url('moved');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('a populated SQLite installation moves to PostgreSQL: every read answers the same, the audit chain verifies and grows on', async () => {
  const report = await migrateSqliteToPostgres(file, url);
  assert.equal(report.auditEntries, 12);
  assert.equal(report.tables.task_output, 4);
  assert.equal(report.tables.secrets, 2);
  const from = new SqliteStore(file);
  const to = await PostgresStore.open({ url, poolSize: 2 });
  try {
    assert.deepEqual(await snapshot(to), await snapshot(from));
    assert.equal((await to.getTask(orgId, 't_live'))?.outputDigest, 'digest-state-of-t_live');
    const next = await to.appendAudit({ orgId, at: Date.now(), actor: 'admin', action: 'after.move', subject: 'x', details: {} });
    assert.equal(next.seq, 13, 'new entries continue the sequence');
    assert.deepEqual(verifyChain(await to.allAudit()), { ok: true, entries: 13, brokenAt: null });
    // The moved installation works on: the queued task is claimed, the review completes.
    const agent = await to.getAgent('a_one');
    assert.equal((await to.claimNextTask(agent!, Date.now(), 60_000))?.id, 't_queued');
  } finally {
    await from.close();
    await to.close();
  }
});

test('a PostgreSQL database that is not empty is refused', async () => {
  await assert.rejects(migrateSqliteToPostgres(file, url), /not empty/);
});
