/**
 * Reviews through the real API, one server with its embedded agent: a task on a target with a
 * review rule waits as pending_review, no agent ever receives it, and only what the rule allows
 * moves it: approvals from distinct principals with the review right (never its author, whatever
 * token the author uses), a reviewer's rejection with a comment, or the review's expiry. Every
 * decision is audited.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, startFerryServer, waitFor, waitForAgents, type ApiResult, type ServerHandle } from '../helpers/ferry.js';
import { call, grant, group, poll, registerAgent, serviceAccount } from '../helpers/teams.js';

interface TaskJson {
  id: string;
  status: string;
  reason: string | null;
  review: {
    rule: string;
    group: string | null;
    approvalsNeeded: number;
    decisions: { by: string; decision: string; comment: string | null }[];
    binding: string;
  } | null;
}

describe('reviews: the lifecycle of a task that waits for approval', () => {
  let server: ServerHandle;
  /** Tokens: the organization's admin, two operators in the group granted operator, a viewer granted viewer, an operator without a grant. */
  const t: Record<string, string> = {};

  const task = async (id: string, token = t.admin!): Promise<TaskJson> =>
    (await call(server, token, 'GET', `/v1/tasks/${id}`, undefined, 200)).json as unknown as TaskJson;
  const submit = async (token: string, target: string, script = 'echo reviewed-and-ran', extra: object = {}): Promise<TaskJson> =>
    (await call(server, token, 'POST', '/v1/tasks', { target, script, ...extra }, 201)).json as unknown as TaskJson;
  const approve = (token: string, id: string, body: object = {}): Promise<ApiResult> =>
    api(server, 'POST', `/v1/tasks/${id}/approve`, { token, body: JSON.stringify(body) });
  const ended = (id: string): Promise<TaskJson> =>
    waitFor(
      async () => {
        const now = await task(id);
        return ['succeeded', 'failed', 'rejected', 'cancelled', 'error'].includes(now.status) ? now : undefined;
      },
      30_000,
      `task ${id} to end`,
    );

  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
    t.admin = await serviceAccount(server, server.adminToken, 'rv-admin', 'admin');
    t.alice = await serviceAccount(server, t.admin, 'alice', 'operator');
    t.bob = await serviceAccount(server, t.admin, 'bob', 'operator');
    t.carol = await serviceAccount(server, t.admin, 'carol', 'operator');
    t.viewer = await serviceAccount(server, t.admin, 'vera', 'viewer');
    t.stranger = await serviceAccount(server, t.admin, 'stranger', 'operator');
    await group(server, t.admin, 'ops', ['alice', 'bob', 'carol']);
    await group(server, t.admin, 'readers', ['vera']);
    await group(server, t.admin, 'dba', ['vera', 'carol']);
    const target = async (name: string, review: object, agent: 'hosted' | 'self-hosted' = 'hosted'): Promise<void> => {
      await call(server, t.admin!, 'POST', '/v1/targets', { name, type: 'shell', agent, review }, 201);
      await grant(server, t.admin!, name, 'ops', 'operator');
      await grant(server, t.admin!, name, 'readers', 'viewer');
    };
    await target('prod', { rule: 'any' });
    await target('prod2', { rule: 'any', approvals: 2 });
    await target('prod-dba', { rule: 'group', group: 'dba' });
    await target('prod-short', { rule: 'any', expirySeconds: 1 });
    await target('site', { rule: 'any' }, 'self-hosted');
  });
  after(async () => {
    await server?.stop();
  });

  it('pending → approved → runs: the approval binds the script, target and parameters', async () => {
    const created = await submit(t.alice!, 'prod', 'echo "$1 $GREETING"', { args: ['hello'], env: { GREETING: 'world' } });
    assert.equal(created.status, 'pending_review');
    assert.equal(created.review?.rule, 'any');
    assert.match(created.review?.binding ?? '', /^[0-9a-f]{64}$/);
    // Nothing runs it while it waits, although the embedded agent is online and idle.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await task(created.id)).status, 'pending_review');

    const res = await approve(t.bob!, created.id, { comment: 'checked the args' });
    assert.equal(res.status, 200, res.body.toString());
    const done = await ended(created.id);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(
      done.review?.decisions.map((d) => [d.decision, d.comment, d.by.startsWith('service:bob ')]),
      [['approve', 'checked the args', true]],
    );
    assert.equal(done.review?.binding, created.review?.binding, 'what was approved is what ran');
    const output = await api(server, 'GET', `/v1/tasks/${created.id}/output`, { token: t.alice! });
    assert.match(output.body.toString(), /hello world/);
  });

  it('the author cannot approve their own task, not even with another token of theirs', async () => {
    const created = await submit(t.alice!, 'prod');
    const own = await approve(t.alice!, created.id);
    assert.equal(own.status, 403);
    assert.equal(own.json.code, 'FERRY_E_SELF_APPROVAL');
    const second = String((await call(server, t.alice!, 'POST', '/v1/tokens', { name: 'alice-laptop', personal: true }, 201)).json.token);
    const viaOther = await approve(second, created.id);
    assert.equal(viaOther.json.code, 'FERRY_E_SELF_APPROVAL');
    assert.equal((await task(created.id)).status, 'pending_review');
    await call(server, t.alice!, 'POST', `/v1/tasks/${created.id}/cancel`, undefined, 200);
  });

  it('rejected with a comment: final, and it says who and why', async () => {
    const created = await submit(t.alice!, 'prod');
    const empty = await api(server, 'POST', `/v1/tasks/${created.id}/reject`, { token: t.bob!, body: '{}' });
    assert.equal(empty.status, 400, 'a rejection needs a comment');
    await call(server, t.bob!, 'POST', `/v1/tasks/${created.id}/reject`, { comment: 'wrong database' }, 200);
    const now = await task(created.id);
    assert.equal(now.status, 'rejected');
    assert.match(now.reason ?? '', /^rejected by service:bob \(token [^)]+\): wrong database$/);
    const late = await approve(t.carol!, created.id);
    assert.equal(late.status, 409);
    assert.equal(late.json.code, 'FERRY_E_NOT_PENDING_REVIEW');
  });

  it('expired: a task not approved in time is rejected, saying so', async () => {
    const created = await submit(t.alice!, 'prod-short');
    const done = await ended(created.id);
    assert.equal(done.status, 'rejected');
    assert.match(done.reason ?? '', /^the review expired: 0 of 1 approval within 1s$/);
    assert.equal((await approve(t.bob!, created.id)).json.code, 'FERRY_E_NOT_PENDING_REVIEW');
  });

  it('N approvals from N distinct principals; one principal counts once', async () => {
    const created = await submit(t.alice!, 'prod2', 'echo two-approvals');
    assert.equal((await approve(t.bob!, created.id)).status, 200);
    assert.equal((await task(created.id)).status, 'pending_review', 'one of two approvals');
    const again = await approve(t.bob!, created.id);
    assert.equal(again.status, 409);
    assert.equal(again.json.code, 'FERRY_E_ALREADY_REVIEWED');
    assert.equal((await task(created.id)).status, 'pending_review', 'the same principal twice is still one');
    assert.equal((await approve(t.carol!, created.id)).status, 200);
    const done = await ended(created.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.review?.decisions.length, 2);
  });

  it('an approval by someone without the review right is refused', async () => {
    const created = await submit(t.alice!, 'prod');
    // A viewer sees the task but may not run on the target: no right under rule `any`.
    const viewer = await approve(t.viewer!, created.id);
    assert.equal(viewer.status, 403);
    assert.equal(viewer.json.code, 'FERRY_E_NOT_A_REVIEWER');
    assert.match(String(viewer.json.message), /reviewed by anyone other than its author who may run tasks on prod/);
    // An operator without a grant does not even see it.
    assert.equal((await approve(t.stranger!, created.id)).status, 404);
    assert.equal((await task(created.id)).status, 'pending_review');

    // Rule group:dba: bob may run on the target but is not in dba; vera (a viewer) is, and may.
    const byGroup = await submit(t.alice!, 'prod-dba', 'echo approved-by-dba');
    const bob = await approve(t.bob!, byGroup.id);
    assert.equal(bob.json.code, 'FERRY_E_NOT_A_REVIEWER');
    assert.match(String(bob.json.message), /members of group dba/);
    assert.equal((await approve(t.viewer!, byGroup.id)).status, 200);
    assert.equal((await ended(byGroup.id)).status, 'succeeded');
    await call(server, t.alice!, 'POST', `/v1/tasks/${created.id}/cancel`, undefined, 200);
  });

  it('review list: what waits for me, not my own nor what I approved', async () => {
    const created = await submit(t.alice!, 'prod2', 'echo listed');
    const ids = async (token: string): Promise<string[]> =>
      ((await call(server, token, 'GET', '/v1/reviews', undefined, 200)).json.tasks as { id: string }[]).map((x) => x.id);
    assert.ok((await ids(t.bob!)).includes(created.id));
    assert.ok(!(await ids(t.alice!)).includes(created.id), 'not the author');
    assert.ok(!(await ids(t.viewer!)).includes(created.id), 'not without the right');
    await approve(t.bob!, created.id);
    assert.ok(!(await ids(t.bob!)).includes(created.id), 'not once approved by me');
    assert.ok((await ids(t.carol!)).includes(created.id));
    const listed = (await call(server, t.admin!, 'GET', '/v1/tasks?status=pending_review', undefined, 200)).json.tasks as { id: string }[];
    assert.ok(listed.some((x) => x.id === created.id));
    await call(server, t.alice!, 'POST', `/v1/tasks/${created.id}/cancel`, undefined, 200);
  });

  it('a pending task is never handed to a polling agent; once approved it is', async () => {
    const agent = await registerAgent(server, t.admin!, { targets: ['site'] }, 'site-agent');
    const created = await submit(t.alice!, 'site', 'echo site');
    for (let i = 0; i < 5; i++) assert.equal((await poll(server, agent.token)).task, null, 'no agent receives a pending task');
    const long = await call(server, agent.token, 'POST', '/v1/agent/poll', { free: 1, running: [], waitSeconds: 1 }, 200);
    assert.equal((long.json as { task: unknown }).task, null, 'not even a waiting poll');
    await approve(t.bob!, created.id);
    assert.equal((await poll(server, agent.token)).task?.id, created.id);
  });

  it('every decision is audited', async () => {
    const entries = (await call(server, t.admin!, 'GET', '/v1/audit?limit=1000', undefined, 200)).json.entries as {
      action: string;
      actor: string;
      details: Record<string, unknown>;
    }[];
    const actions = new Set(entries.map((e) => e.action));
    for (const action of ['task.approve', 'task.reject', 'task.review_expired']) assert.ok(actions.has(action), action);
    const approval = entries.find((e) => e.action === 'task.approve' && e.details.comment === 'checked the args');
    assert.ok(approval?.actor.startsWith('service:bob '));
    assert.equal(approval?.details.queued, true);
    assert.match(String(approval?.details.binding), /^[0-9a-f]{64}$/);
    const created = entries.find((e) => e.action === 'task.create' && e.details.review !== undefined);
    assert.ok(created, 'task.create records the review it waits for');
    const update = await call(server, t.admin!, 'PATCH', '/v1/targets/prod', { review: { approvals: 3 } }, 200);
    assert.deepEqual(update.json.review, { rule: 'any', group: null, approvals: 3, expirySeconds: 86400 });
    const after = (await call(server, t.admin!, 'GET', '/v1/audit?limit=5', undefined, 200)).json.entries as {
      action: string;
      details: Record<string, unknown>;
    }[];
    const changed = after.find((e) => e.action === 'target.update');
    assert.deepEqual((changed?.details.review as { to: unknown }).to, { rule: 'any', group: null, approvals: 3, expirySeconds: 86400 });
  });
});
