/**
 * The rest of the store contract on both backends (helpers/stores.ts): organizations with their
 * first admin, service accounts and token lookups; people (invitations used once, accounts,
 * roles, removal); single sign-on state used once; groups with their members and grants;
 * webhooks' listing, attempts and removal; runbook sources and their runbooks; review expiry.
 * test/conventions/store-contract.test.ts checks that no Store operation is left out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PrincipalRow, TokenRow } from '../src/store/teams-types.js';
import { newTaskReview } from '../src/tasks/reviews.js';
import { testTarget, testTask } from './helpers/store-fixtures.js';
import { forEachStore } from './helpers/stores.js';

const person = (orgId: string, id: string, name: string): PrincipalRow => ({
  id,
  orgId,
  kind: 'person',
  name,
  role: 'operator',
  instanceAdmin: false,
  createdBy: 'p_admin',
  createdAt: 5,
});
const token = (orgId: string, id: string, principalId: string, name: string): TokenRow => ({
  id,
  orgId,
  principalId,
  name,
  createdAt: 1,
  expiresAt: null,
  lastUsedAt: null,
  revokedAt: null,
});

forEachStore('store contract: teams, people, sign-on, webhooks, runbooks', (backend) => {
  test('organizations with their first admin, service accounts, token lookups', async () => {
    const store = await backend.open();
    const org = { id: 'o_acme', name: 'acme', createdAt: 1 };
    const admin: PrincipalRow = { ...person('o_acme', 'p_admin', 'admin'), kind: 'service', role: 'admin', createdBy: null };
    assert.equal(await store.teams.createOrgWithAdmin(org, admin, token('o_acme', 'k_a', 'p_admin', 'admin'), 'h-a'), 'ok');
    assert.equal(
      await store.teams.createOrgWithAdmin({ ...org, id: 'o_other' }, { ...admin, id: 'p_x' }, token('o_other', 'k_x', 'p_x', 'x'), 'h-x'),
      'exists',
    );
    assert.deepEqual(await store.teams.listOrgs(), [org], 'nothing of the refused one stays');
    assert.deepEqual(await store.teams.getOrg('o_acme'), org);
    const bot: PrincipalRow = { ...person('o_acme', 'p_bot', 'ci'), kind: 'service' };
    assert.equal(await store.teams.createServiceAccount(bot, token('o_acme', 'k_ci', 'p_bot', 'ci'), 'h-ci'), 'ok');
    assert.equal(await store.teams.createServiceAccount({ ...bot, id: 'p_bot2' }, token('o_acme', 'k_ci2', 'p_bot2', 'ci2'), 'h-ci2'), 'exists');
    await store.teams.touchToken('k_ci', 50);
    await store.teams.touchToken('k_ci', 40);
    assert.equal((await store.teams.findToken('h-ci'))?.token.lastUsedAt, 50, 'last use only moves forward');
    assert.equal((await store.teams.findLiveToken('o_acme', 'ci'))?.token.id, 'k_ci');
    assert.equal((await store.teams.findLiveToken('o_acme', 'k_ci'))?.principal.name, 'ci');
    assert.deepEqual(
      (await store.teams.listTokens('o_acme', ['p_bot'])).map((t) => t.token.id),
      ['k_ci'],
    );
    assert.equal((await store.teams.findPrincipal('o_acme', 'admin'))?.instanceAdmin, false);
  });

  test('people: an invitation is used once; accounts, roles, removal', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const now = 1000;
    const invitation = {
      id: 'i_1',
      orgId,
      email: 'ann@example.com',
      role: 'operator' as const,
      createdBy: 'admin',
      createdAt: now,
      expiresAt: now + 100,
      usedAt: null,
    };
    await store.people.createInvitation(invitation, 'h-1');
    await store.people.createInvitation({ ...invitation, id: 'i_2' }, 'h-2');
    assert.notEqual((await store.people.findInvitation('h-1'))?.usedAt, null, 'a new invitation replaces the pending one');
    assert.deepEqual(
      (await store.people.listPendingInvitations(orgId, now)).map((i) => i.id),
      ['i_2'],
    );
    const ann = person(orgId, 'p_ann', 'ann@example.com');
    assert.equal(await store.people.acceptInvitation('i_2', ann, '$argon2id$hash', now + 1), 'ok');
    assert.equal(await store.people.acceptInvitation('i_2', ann, '$argon2id$hash', now + 2), 'used');
    const accounts = await store.people.findAccounts('ann@example.com');
    assert.deepEqual(
      accounts.map((a) => [a.principal.id, a.orgName, a.passwordHash]),
      [['p_ann', 'acme', '$argon2id$hash']],
    );
    await store.teams.createGroup({ id: 'r_1', orgId, name: 'ops', createdAt: 1 });
    await store.teams.addGroupMember('r_1', 'p_ann');
    await store.people.setRole(orgId, 'p_ann', 'viewer');
    assert.deepEqual(
      (await store.people.listPeople(orgId)).map((p) => [p.name, p.role, p.groups]),
      [['ann@example.com', 'viewer', ['ops']]],
    );
    await store.teams.createToken(token(orgId, 'k_ann', 'p_ann', 'ann-cli'), 'h-ann');
    await store.people.removePerson(orgId, 'p_ann', now + 3);
    assert.deepEqual(await store.people.listPeople(orgId), []);
    assert.equal((await store.teams.findToken('h-ann'))?.token.revokedAt, now + 3);
    assert.deepEqual(await store.people.findAccounts('ann@example.com'), []);
    assert.ok(await store.people.wasRemoved(orgId, 'ann@example.com'));
    await store.people.createInvitation({ ...invitation, id: 'i_3', createdAt: now + 4, expiresAt: now + 500 }, 'h-3');
    await store.people.useInvitations(orgId, 'ann@example.com', now + 5);
    assert.deepEqual(await store.people.listPendingInvitations(orgId, now + 5), []);
  });

  test('single sign-on: settings, a sign-in and its exchange each used once, device sign-ins', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const sso = { orgId, issuer: 'https://idp.example', clientId: 'c', clientSecret: 's', domains: ['example.com'], groupsClaim: null, updatedAt: 1 };
    await store.people.putSso(sso);
    await store.people.putSso({ ...sso, groupsClaim: 'groups', updatedAt: 2 });
    assert.deepEqual(await store.people.getSso(orgId), { ...sso, groupsClaim: 'groups', updatedAt: 2 });
    const login = { id: 'l_1', orgId, codeVerifier: 'v', nonce: 'n', loopbackPort: 5555, cliChallenge: 'ch', createdAt: 10, expiresAt: 100 };
    await store.people.createSsoLogin(login, 'state-h');
    assert.equal(await store.people.takeSsoLogin('state-h', 200), undefined, 'expired');
    assert.deepEqual(await store.people.takeSsoLogin('state-h', 20), login);
    assert.equal(await store.people.takeSsoLogin('state-h', 20), undefined, 'once');
    assert.equal(await store.people.takeSsoExchange('ex-h', 20), undefined, 'not completed yet');
    await store.teams.createPrincipal(person(orgId, 'p_ann', 'ann@example.com'));
    await store.people.completeSsoLogin('l_1', 'p_ann', 'ex-h');
    assert.deepEqual(await store.people.takeSsoExchange('ex-h', 21), { ...login, principalId: 'p_ann' });
    assert.equal(await store.people.takeSsoExchange('ex-h', 21), undefined, 'once');
    await store.people.createSsoDevice({ id: 'd_1', orgId, deviceCode: 'dc', createdAt: 10, expiresAt: 100 }, 'handle-h');
    assert.equal((await store.people.findSsoDevice('handle-h', 20))?.deviceCode, 'dc');
    assert.ok(await store.people.useSsoDevice('d_1', 30));
    assert.equal(await store.people.useSsoDevice('d_1', 31), false);
    assert.equal(await store.people.findSsoDevice('handle-h', 40), undefined);
  });

  test('groups: found by name, listed with members and grants, membership added and removed', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    await store.createTarget(testTarget({ orgId, name: 'web' }));
    await store.createTarget(testTarget({ orgId, name: 'db' }));
    for (const [id, name] of [
      ['p_ann', 'ann@example.com'],
      ['p_bob', 'bob@example.com'],
    ] as const)
      await store.teams.createPrincipal(person(orgId, id, name));
    assert.equal(await store.teams.createGroup({ id: 'r_ops', orgId, name: 'ops', createdAt: 1 }), 'ok');
    assert.equal(await store.teams.createGroup({ id: 'r_ops2', orgId, name: 'ops', createdAt: 1 }), 'exists');
    assert.equal(await store.teams.createGroup({ id: 'r_dev', orgId, name: 'dev', createdAt: 2 }), 'ok');
    assert.deepEqual(await store.teams.findGroup(orgId, 'ops'), { id: 'r_ops', orgId, name: 'ops', createdAt: 1 });
    assert.equal(await store.teams.findGroup(orgId, 'nobody'), undefined);
    await store.teams.addGroupMember('r_ops', 'p_bob');
    await store.teams.addGroupMember('r_ops', 'p_ann');
    await store.teams.putGrant('g_web', 'r_ops', 'operator', 1);
    await store.teams.putGrant('g_db', 'r_ops', 'viewer', 1);
    assert.deepEqual(await store.teams.listGroups(orgId), [
      { id: 'r_dev', orgId, name: 'dev', createdAt: 2, members: [], grants: [] },
      {
        id: 'r_ops',
        orgId,
        name: 'ops',
        createdAt: 1,
        members: ['ann@example.com', 'bob@example.com'],
        grants: [
          { target: 'db', role: 'viewer' },
          { target: 'web', role: 'operator' },
        ],
      },
    ]);
    assert.ok(await store.isGroupMember('r_ops', 'p_ann'));
    assert.ok(!(await store.isGroupMember('r_dev', 'p_ann')));
    assert.ok(await store.teams.removeGroupMember('r_ops', 'p_ann'));
    assert.equal(await store.teams.removeGroupMember('r_ops', 'p_ann'), false, 'no longer a member');
    assert.ok(!(await store.isGroupMember('r_ops', 'p_ann')));
    assert.deepEqual((await store.teams.listGroups(orgId)).find((g) => g.id === 'r_ops')?.members, ['bob@example.com']);
  });

  test('webhook attempts: each recorded with its outcome, in the delivery history newest first', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    await store.webhooks.create({
      id: 'w_1',
      orgId,
      url: 'https://h.example/',
      events: ['task.finished'],
      format: 'json',
      secret: 's',
      createdBy: 't',
      createdAt: 1,
    });
    await store.webhooks.enqueue([
      { id: 'd_1', webhookId: 'w_1', event: 'task.finished', taskId: 't_1', body: '{}', createdAt: 100 },
      { id: 'd_2', webhookId: 'w_1', event: 'task.finished', taskId: 't_2', body: '{}', createdAt: 101 },
      { id: 'd_3', webhookId: 'w_1', event: 'task.finished', taskId: 't_3', body: '{}', createdAt: 102 },
    ]);
    await store.webhooks.recordAttempt('d_1', { at: 110, httpStatus: 500, error: null, durationMs: 7 }, { kind: 'retry', retryAt: 200 });
    await store.webhooks.recordAttempt('d_1', { at: 200, httpStatus: 204, error: null, durationMs: 5 }, { kind: 'delivered' });
    await store.webhooks.recordAttempt('d_2', { at: 111, httpStatus: null, error: 'refused', durationMs: 1 }, { kind: 'retry', retryAt: 300 });
    await store.webhooks.recordAttempt('d_3', { at: 112, httpStatus: 410, error: null, durationMs: 2 }, { kind: 'failed' });
    assert.deepEqual(
      (await store.webhooks.deliveries('w_1', 10)).map((d) => [d.id, d.status, d.nextAttemptAt, d.attempts.map((a) => [a.at, a.httpStatus ?? a.error])]),
      [
        ['d_3', 'failed', null, [[112, 410]]],
        ['d_2', 'pending', 300, [[111, 'refused']]],
        [
          'd_1',
          'delivered',
          null,
          [
            [110, 500],
            [200, 204],
          ],
        ],
      ],
    );
    assert.equal((await store.webhooks.deliveries('w_1', 1)).length, 1);
    assert.equal(await store.webhooks.nextDue(), 300, 'the one left pending');
  });

  test('webhooks: listed per organization, subscribers by event; removal fails what was pending', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const hook = {
      id: 'w_1',
      orgId,
      url: 'https://h.example/',
      events: ['task.finished' as const],
      format: 'json' as const,
      secret: 's',
      createdBy: 't',
      createdAt: 1,
    };
    await store.webhooks.create(hook);
    await store.webhooks.create({ ...hook, id: 'w_2', events: ['task.approved'], createdAt: 2 });
    assert.deepEqual(
      (await store.webhooks.list(orgId)).map((w) => w.id),
      ['w_1', 'w_2'],
    );
    assert.deepEqual(
      (await store.webhooks.subscribers(orgId, 'task.finished')).map((w) => w.id),
      ['w_1'],
    );
    await store.webhooks.enqueue([{ id: 'd_1', webhookId: 'w_1', event: 'task.finished', taskId: 't', body: '{}', createdAt: 5 }]);
    assert.ok(await store.webhooks.delete(orgId, 'w_1'));
    assert.equal(await store.webhooks.delete(orgId, 'w_1'), false);
    assert.equal(await store.webhooks.get(orgId, 'w_1'), undefined);
    assert.deepEqual(
      (await store.webhooks.deliveries('w_1', 10)).map((d) => [d.id, d.status]),
      [['d_1', 'failed']],
    );
    assert.equal(await store.webhooks.nextDue(), undefined);
  });

  test('runbooks: a source once per name; a good sync replaces its runbooks, a failed one keeps them', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const source = {
      id: 's_1',
      orgId,
      name: 'ops',
      git: 'https://g.example/r.git',
      ref: 'main',
      path: '.',
      commit: null,
      syncedAt: null,
      lastError: null,
      createdBy: 't',
      createdAt: 1,
    };
    assert.equal(await store.runbooks.addSource(source), 'ok');
    assert.equal(await store.runbooks.addSource({ ...source, id: 's_2' }), 'exists');
    const rb = {
      orgId,
      sourceId: 's_1',
      sourceName: 'ops',
      file: 'a.sh',
      commit: 'c1',
      script: 'echo a',
      description: null,
      targetType: 'shell',
      defaultTarget: null,
      params: [],
    };
    await store.runbooks.replaceRunbooks(
      's_1',
      'c1',
      10,
      [
        { ...rb, name: 'a' },
        { ...rb, name: 'b', file: 'b.sh' },
      ],
      null,
    );
    await store.runbooks.replaceRunbooks('s_1', 'c2', 20, [{ ...rb, name: 'b', file: 'b.sh', commit: 'c2' }], 'one file skipped');
    await store.runbooks.syncFailed('s_1', 'fetch failed');
    assert.equal(await store.runbooks.countRunbooks('s_1'), 1);
    assert.deepEqual(
      (await store.runbooks.listRunbooks(orgId)).map((r) => [r.name, r.commit, r.sourceName]),
      [['b', 'c2', 'ops']],
    );
    assert.equal((await store.runbooks.getRunbook(orgId, 'b'))?.script, 'echo a');
    const got = await store.runbooks.getSource(orgId, 'ops');
    assert.deepEqual([got?.commit, got?.syncedAt, got?.lastError], ['c2', 20, 'fetch failed']);
    assert.equal((await store.runbooks.listSources()).length, 1);
  });

  test('reviews that expire: listed once due, rejected once', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const target = testTarget({ orgId, name: 'prod', review: { rule: 'any', groupId: null, groupName: null, approvals: 1, expirySeconds: 1 } });
    await store.createTarget(target);
    const review = newTaskReview(target.review!, { script: 'x', targetId: target.id, args: [], env: {}, stdin: null }, 1000);
    await store.createTask(testTask(target, { id: 't_r', status: 'pending_review', review }));
    assert.deepEqual(await store.listExpiredReviews(1500), []);
    assert.deepEqual(
      (await store.listExpiredReviews(2000)).map((t) => t.id),
      ['t_r'],
    );
    const results = await Promise.all([store.expireReview('t_r', 2000, 'expired', () => []), store.expireReview('t_r', 2000, 'expired', () => [])]);
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal((await store.getTask(orgId, 't_r'))?.status, 'rejected');
  });
});
