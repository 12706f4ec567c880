/**
 * The store's parts on both backends (helpers/stores.ts): teams (organizations, principals,
 * service accounts, tokens, groups), webhooks (their rows, subscribers, attempts and delivery
 * history), runbooks (sources, syncs good and failed) and people (invitations used once,
 * accounts, removal, single sign-on logins and devices taken once). Each operation's answers as
 * the routes rely on them; test/conventions/store-contract.test.ts checks none is left out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PrincipalRow, TokenRow } from '../src/store/teams-types.js';
import type { RunbookRow } from '../src/store/runbook-types.js';
import { forEachStore } from './helpers/stores.js';
import { testTarget } from './helpers/store-fixtures.js';

const principal = (orgId: string, id: string, name: string, over: Partial<PrincipalRow> = {}): PrincipalRow => ({
  id,
  orgId,
  kind: 'service',
  name,
  role: 'operator',
  instanceAdmin: false,
  createdBy: null,
  createdAt: 1,
  ...over,
});
const token = (orgId: string, principalId: string, id: string, name: string, createdAt: number): TokenRow => ({
  id,
  orgId,
  principalId,
  name,
  createdAt,
  expiresAt: null,
  lastUsedAt: null,
  revokedAt: null,
});

forEachStore('store parts', (backend) => {
  test('teams: organizations with their admin, principals, service accounts, tokens by id or name, groups with members and grants', async () => {
    const store = await backend.open();
    const org = { id: 'o_acme', name: 'acme', createdAt: 10 };
    const admin = principal(org.id, 'p_admin', 'admin', { role: 'admin' });
    assert.equal(await store.teams.createOrgWithAdmin(org, admin, token(org.id, 'p_admin', 'k_admin', 'admin', 10), 'h-admin'), 'ok');
    assert.equal(
      await store.teams.createOrgWithAdmin(org, principal(org.id, 'p_x', 'x'), token(org.id, 'p_x', 'k_x', 'x', 10), 'h-x'),
      'exists',
      'an organization of that name exists: nothing of it is made',
    );
    assert.equal(await store.teams.findPrincipal(org.id, 'x'), undefined);
    await store.ensureOrg('default', 5);
    assert.deepEqual(
      (await store.teams.listOrgs()).map((o) => o.name),
      ['default', 'acme'],
    );
    assert.deepEqual(await store.teams.getOrg(org.id), org);
    assert.equal(await store.teams.getOrg('o_none'), undefined);
    assert.deepEqual(await store.teams.findPrincipal(org.id, 'admin'), admin);

    const bot = principal(org.id, 'p_bot', 'bot');
    assert.equal(await store.teams.createServiceAccount(bot, token(org.id, 'p_bot', 'k_bot', 'bot', 20), 'h-bot'), 'ok');
    assert.equal(await store.teams.createServiceAccount({ ...bot, id: 'p_bot2' }, token(org.id, 'p_bot2', 'k_bot2', 'bot2', 20), 'h-bot2'), 'exists');
    assert.equal(await store.teams.findToken('h-bot2'), undefined, 'the refused account made no token');
    assert.equal(await store.teams.createToken(token(org.id, 'p_bot', 'k_bot_b', 'bot-b', 30), 'h-bot-b'), 'ok');
    await store.teams.touchToken('k_bot', 500);
    await store.teams.touchToken('k_bot', 400); // older: kept at the later use
    assert.equal((await store.teams.findToken('h-bot'))?.token.lastUsedAt, 500);
    assert.deepEqual(
      (await store.teams.listTokens(org.id)).map((t) => t.token.id),
      ['k_bot_b', 'k_bot', 'k_admin'],
      'newest first',
    );
    assert.deepEqual(
      (await store.teams.listTokens(org.id, ['p_bot'])).map((t) => [t.token.id, t.principal.name]),
      [
        ['k_bot_b', 'bot'],
        ['k_bot', 'bot'],
      ],
    );
    assert.equal((await store.teams.findLiveToken(org.id, 'k_bot'))?.token.name, 'bot', 'by id');
    assert.equal((await store.teams.findLiveToken(org.id, 'bot-b'))?.token.id, 'k_bot_b', 'by name');
    assert.ok(await store.teams.revokeToken(org.id, 'k_bot_b', 600));
    assert.equal(await store.teams.findLiveToken(org.id, 'bot-b'), undefined, 'a revoked token is not live');
    assert.equal(await store.teams.findLiveToken('o_other', 'k_bot'), undefined, 'scoped by organization');

    const target = testTarget({ orgId: org.id, name: 'web' });
    await store.createTarget(target);
    assert.equal(await store.teams.createGroup({ id: 'r_ops', orgId: org.id, name: 'ops', createdAt: 1 }), 'ok');
    assert.equal(await store.teams.createGroup({ id: 'r_ops2', orgId: org.id, name: 'ops', createdAt: 1 }), 'exists');
    assert.deepEqual(await store.teams.findGroup(org.id, 'ops'), { id: 'r_ops', orgId: org.id, name: 'ops', createdAt: 1 });
    assert.equal(await store.teams.findGroup(org.id, 'nobody'), undefined);
    await store.teams.addGroupMember('r_ops', 'p_bot');
    await store.teams.addGroupMember('r_ops', 'p_admin');
    await store.teams.putGrant(target.id, 'r_ops', 'operator', 1);
    assert.deepEqual(await store.teams.listGroups(org.id), [
      { id: 'r_ops', orgId: org.id, name: 'ops', createdAt: 1, members: ['admin', 'bot'], grants: [{ target: 'web', role: 'operator' }] },
    ]);
    assert.ok(await store.isGroupMember('r_ops', 'p_bot'));
    assert.ok(!(await store.isGroupMember('r_ops', 'p_nobody')));
  });

  test('webhooks: listed and got per organization, subscribers by event, attempts recorded with their outcome, deleting fails what is pending', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const hook = { orgId, format: 'json' as const, secret: 's', createdBy: 'admin' };
    await store.webhooks.create({ ...hook, id: 'w_1', url: 'https://a.example/', events: ['task.finished'], createdAt: 1 });
    await store.webhooks.create({ ...hook, id: 'w_2', url: 'https://b.example/', events: ['task.finished', 'task.pending_review'], createdAt: 2 });
    assert.deepEqual(
      (await store.webhooks.list(orgId)).map((w) => [w.id, w.events]),
      [
        ['w_1', ['task.finished']],
        ['w_2', ['task.finished', 'task.pending_review']],
      ],
    );
    assert.equal((await store.webhooks.get(orgId, 'w_2'))?.url, 'https://b.example/');
    assert.equal(await store.webhooks.get('o_other', 'w_2'), undefined);
    assert.deepEqual(
      (await store.webhooks.subscribers(orgId, 'task.pending_review')).map((w) => w.id),
      ['w_2'],
    );
    await store.webhooks.enqueue([
      { id: 'd_1', webhookId: 'w_1', event: 'task.finished', taskId: 't_1', body: '{}', createdAt: 100 },
      { id: 'd_2', webhookId: 'w_1', event: 'task.finished', taskId: 't_2', body: '{}', createdAt: 101 },
      { id: 'd_3', webhookId: 'w_2', event: 'task.finished', taskId: 't_1', body: '{}', createdAt: 102 },
    ]);
    await store.webhooks.recordAttempt('d_1', { at: 110, httpStatus: 500, error: null, durationMs: 7 }, { kind: 'retry', retryAt: 200 });
    await store.webhooks.recordAttempt('d_1', { at: 200, httpStatus: 204, error: null, durationMs: 5 }, { kind: 'delivered' });
    await store.webhooks.recordAttempt('d_2', { at: 111, httpStatus: null, error: 'refused', durationMs: 1 }, { kind: 'retry', retryAt: 300 });
    const history = await store.webhooks.deliveries('w_1', 10);
    assert.deepEqual(
      history.map((d) => [d.id, d.status, d.nextAttemptAt, d.attempts.map((a) => a.httpStatus ?? a.error)]),
      [
        ['d_2', 'pending', 300, ['refused']],
        ['d_1', 'delivered', null, [500, 204]],
      ],
      'newest first, each with its attempts in order',
    );
    assert.equal((await store.webhooks.deliveries('w_1', 1)).length, 1);
    assert.ok(await store.webhooks.delete(orgId, 'w_1'));
    assert.ok(!(await store.webhooks.delete(orgId, 'w_1')), 'once');
    assert.equal(await store.webhooks.get(orgId, 'w_1'), undefined);
    assert.deepEqual(
      (await store.webhooks.deliveries('w_1', 10)).map((d) => [d.id, d.status]),
      [
        ['d_2', 'failed'],
        ['d_1', 'delivered'],
      ],
    );
    assert.equal(await store.webhooks.nextDue(), 102, "only the live webhook's delivery is pending");
  });

  test('runbooks: sources unique by name, a good sync replaces the runbooks, a failed one keeps them and says why', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const other = (await store.ensureOrg('other', 2)).id;
    const source = { orgId, git: 'https://git.example/ops.git', ref: 'main', path: 'runbooks', commit: null, syncedAt: null, lastError: null, createdBy: 'a' };
    assert.equal(await store.runbooks.addSource({ ...source, id: 's_1', name: 'ops', createdAt: 1 }), 'ok');
    assert.equal(await store.runbooks.addSource({ ...source, id: 's_2', name: 'ops', createdAt: 2 }), 'exists');
    assert.equal(await store.runbooks.addSource({ ...source, orgId: other, id: 's_3', name: 'ops', createdAt: 3 }), 'ok', 'names are per organization');
    assert.deepEqual(
      (await store.runbooks.listSources()).map((s) => s.id),
      ['s_1', 's_3'],
    );
    assert.deepEqual(
      (await store.runbooks.listSources(orgId)).map((s) => s.id),
      ['s_1'],
    );
    const book = (name: string): RunbookRow => ({
      orgId,
      name,
      sourceId: 's_1',
      sourceName: 'ops',
      file: `${name}.sh`,
      commit: 'c1',
      script: `echo ${name}`,
      description: null,
      targetType: 'shell',
      defaultTarget: null,
      params: [{ name: 'N', type: 'string', required: true, default: null, allowed: null, pattern: null, description: null }],
    });
    await store.runbooks.replaceRunbooks('s_1', 'c1', 50, [book('restart'), book('deploy')], null);
    assert.deepEqual(
      (await store.runbooks.listRunbooks(orgId)).map((r) => r.name),
      ['deploy', 'restart'],
    );
    assert.deepEqual(await store.runbooks.getRunbook(orgId, 'restart'), book('restart'));
    await store.runbooks.replaceRunbooks('s_1', 'c2', 60, [{ ...book('deploy'), commit: 'c2' }], 'one file skipped');
    assert.equal(await store.runbooks.countRunbooks('s_1'), 1);
    assert.equal(await store.runbooks.getRunbook(orgId, 'restart'), undefined);
    assert.deepEqual(
      [(await store.runbooks.getSource(orgId, 'ops'))?.commit, (await store.runbooks.getSource(orgId, 'ops'))?.lastError],
      ['c2', 'one file skipped'],
    );
    await store.runbooks.syncFailed('s_1', 'git: unreachable');
    const failed = await store.runbooks.getSource(orgId, 'ops');
    assert.deepEqual([failed?.commit, failed?.syncedAt, failed?.lastError], ['c2', 60, 'git: unreachable']);
    assert.equal(await store.runbooks.countRunbooks('s_1'), 1, 'a failed sync keeps the runbooks');
  });

  test('people: invitations replaced and used once, accounts by e-mail, roles, removal, single sign-on taken once', async () => {
    const store = await backend.open();
    const orgId = (await store.ensureOrg('acme', 1)).id;
    const invite = { orgId, email: 'ann@example.com', role: 'operator' as const, createdBy: 'admin', expiresAt: 10_000, usedAt: null };
    await store.people.createInvitation({ ...invite, id: 'i_1', createdAt: 1 }, 'h-i1');
    await store.people.createInvitation({ ...invite, id: 'i_2', createdAt: 2 }, 'h-i2');
    await store.people.createInvitation({ ...invite, id: 'i_3', email: 'bob@example.com', createdAt: 3 }, 'h-i3');
    assert.equal((await store.people.findInvitation('h-i1'))?.usedAt, 2, 'a new invitation for the e-mail ends the earlier one');
    assert.deepEqual(
      (await store.people.listPendingInvitations(orgId, 5)).map((i) => i.id),
      ['i_2', 'i_3'],
    );
    assert.deepEqual(await store.people.listPendingInvitations(orgId, 10_000), [], 'expired ones are not pending');
    const ann = principal(orgId, 'p_ann', 'ann@example.com', { kind: 'person' });
    assert.equal(await store.people.acceptInvitation('i_1', ann, 'pw-hash', 5), 'used');
    assert.equal(await store.people.acceptInvitation('i_2', ann, 'pw-hash', 5), 'ok');
    assert.equal(await store.people.acceptInvitation('i_2', ann, 'pw-hash', 6), 'used', 'once');
    assert.equal(await store.people.acceptInvitation('i_3', { ...ann, id: 'p_ann2' }, 'pw-hash', 6), 'exists');
    const accounts = await store.people.findAccounts('ann@example.com');
    assert.deepEqual(
      accounts.map((a) => [a.principal.id, a.orgName, a.passwordHash]),
      [['p_ann', 'acme', 'pw-hash']],
    );
    await store.teams.createGroup({ id: 'r_ops', orgId, name: 'ops', createdAt: 1 });
    await store.teams.addGroupMember('r_ops', 'p_ann');
    await store.people.setRole(orgId, 'p_ann', 'admin');
    assert.deepEqual(
      (await store.people.listPeople(orgId)).map((p) => [p.name, p.role, p.groups]),
      [['ann@example.com', 'admin', ['ops']]],
    );
    await store.teams.createToken(token(orgId, 'p_ann', 'k_ann', 'ann-cli', 7), 'h-ann');
    assert.ok(!(await store.people.wasRemoved(orgId, 'ann@example.com')));
    await store.people.removePerson(orgId, 'p_ann', 8);
    assert.ok(await store.people.wasRemoved(orgId, 'ann@example.com'));
    assert.deepEqual(await store.people.listPeople(orgId), []);
    assert.deepEqual(await store.people.findAccounts('ann@example.com'), []);
    assert.equal((await store.teams.findToken('h-ann'))?.token.revokedAt, 8, 'their tokens are revoked');
    assert.ok(!(await store.isGroupMember('r_ops', 'p_ann')));
    await store.people.createInvitation({ ...invite, id: 'i_4', email: 'cy@example.com', createdAt: 9 }, 'h-i4');
    await store.people.useInvitations(orgId, 'cy@example.com', 9);
    assert.equal((await store.people.findInvitation('h-i4'))?.usedAt, 9);

    const sso = { orgId, issuer: 'https://idp.example', clientId: 'c', clientSecret: 's', domains: ['example.com'], groupsClaim: null, updatedAt: 1 };
    await store.people.putSso(sso);
    await store.people.putSso({ ...sso, groupsClaim: 'groups', updatedAt: 2 });
    assert.deepEqual(await store.people.getSso(orgId), { ...sso, groupsClaim: 'groups', updatedAt: 2 });
    const login = { id: 'l_1', orgId, codeVerifier: 'v', nonce: 'n', loopbackPort: 4242, cliChallenge: 'ch', createdAt: 1, expiresAt: 1000 };
    await store.people.createSsoLogin(login, 'h-state');
    assert.equal(await store.people.takeSsoLogin('h-state', 1000), undefined, 'expired');
    assert.deepEqual(await store.people.takeSsoLogin('h-state', 10), login);
    assert.equal(await store.people.takeSsoLogin('h-state', 11), undefined, 'once');
    assert.equal(await store.people.takeSsoExchange('h-exchange', 12), undefined, 'not completed yet');
    await store.teams.createPrincipal(principal(orgId, 'p_dee', 'dee@example.com', { kind: 'person' }));
    await store.people.completeSsoLogin('l_1', 'p_dee', 'h-exchange');
    assert.deepEqual(await store.people.takeSsoExchange('h-exchange', 12), { ...login, principalId: 'p_dee' });
    assert.equal(await store.people.takeSsoExchange('h-exchange', 13), undefined, 'once');
    const device = { id: 'v_1', orgId, deviceCode: 'dc', createdAt: 1, expiresAt: 1000 };
    await store.people.createSsoDevice(device, 'h-device');
    assert.deepEqual(await store.people.findSsoDevice('h-device', 10), device);
    assert.equal(await store.people.findSsoDevice('h-device', 1000), undefined, 'expired');
    assert.ok(await store.people.useSsoDevice('v_1', 11));
    assert.ok(!(await store.people.useSsoDevice('v_1', 12)), 'once');
    assert.equal(await store.people.findSsoDevice('h-device', 13), undefined, 'used');
  });
});
