/**
 * An organization's own hosted pool: `agent token create --hosted` by an organization's admin
 * makes an agent that serves only that organization's hosted targets. Polling while another
 * organization has queued tasks (older than its own) and targets without sealing keys, it gets
 * none of them: no task, no key request, and it cannot publish a key for them either.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, startFerryServer, type ServerHandle } from '../helpers/ferry.js';
import { call, createOrg, createTarget, createTask, poll, publicKeyPem, registerAgent, type PollAnswer } from '../helpers/teams.js';

describe("teams: an organization's own pool agent serves only its organization", () => {
  let server: ServerHandle;
  let alpha: string;
  let beta: string;
  const betaTasks: string[] = [];
  const betaTargets: Record<string, string> = {};

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
    alpha = await createOrg(server, 'alpha');
    beta = await createOrg(server, 'beta');
    // Beta's work is queued first, so an agent that could take it would get it before alpha's.
    for (const [name, mode] of [
      ['b-hosted', 'hosted'],
      ['b-self', 'self-hosted'],
    ] as const) {
      betaTargets[name] = (await createTarget(server, beta, name, mode)).id;
      betaTasks.push(await createTask(server, beta, name));
    }
  });
  after(async () => {
    await server?.stop();
  });

  it("receives none of another organization's tasks or key requests, while its own come through", async () => {
    const agent = await registerAgent(server, alpha, { hosted: true }, 'alpha-pool');
    const first = await poll(server, agent.token);
    assert.equal(first.task, null, 'no task of beta');
    assert.deepEqual(first.keyRequests ?? [], [], "no key request for beta's targets");

    // A long poll open while beta queues more work is not woken with it.
    const waiting = call(server, agent.token, 'POST', '/v1/agent/poll', { free: 1, running: [], waitSeconds: 2 }, 200);
    betaTasks.push(await createTask(server, beta, 'b-hosted'));
    assert.equal((await waiting).json.task, null);

    // Alpha's own hosted target: its key request and then its task reach alpha's agent.
    const own = await createTarget(server, alpha, 'a-hosted', 'hosted');
    const keyed = await poll(server, agent.token);
    assert.deepEqual(keyed.keyRequests, [{ targetId: own.id, targetName: 'a-hosted' }]);
    await call(server, agent.token, 'POST', `/v1/agent/targets/${own.id}/key`, { publicKeyPem: publicKeyPem() }, 201);
    const ownTask = await createTask(server, alpha, 'a-hosted');
    const claimed = await poll(server, agent.token);
    assert.equal(claimed.task?.id, ownTask);
    assert.notEqual(claimed.task?.orgId, undefined);
    assert.equal((await poll(server, agent.token)).task, null, 'and then nothing more');

    // Nor may it publish a key for beta's target (which it cannot even name).
    const probe = await api(server, 'POST', `/v1/agent/targets/${betaTargets['b-hosted']}/key`, {
      token: agent.token,
      body: JSON.stringify({ publicKeyPem: publicKeyPem() }),
    });
    assert.equal(probe.status, 404);
  });

  it("beta's work was there to take: beta's own pool agent gets it", async () => {
    const agent = await registerAgent(server, beta, { hosted: true }, 'beta-pool');
    // Without room for a task, the answer carries the key requests.
    const noRoom = await call(server, agent.token, 'POST', '/v1/agent/poll', { free: 0, running: [], waitSeconds: 0 }, 200);
    assert.deepEqual(
      (noRoom.json as unknown as PollAnswer).keyRequests?.map((k) => k.targetName),
      ['b-hosted'],
    );
    const first = await poll(server, agent.token);
    assert.equal(first.task?.id, betaTasks[0], "beta's oldest hosted task");
    const shown = await call(server, beta, 'GET', `/v1/tasks/${betaTasks[0]}`, undefined, 200);
    assert.equal(shown.json.agent, 'beta-pool');
  });
});
