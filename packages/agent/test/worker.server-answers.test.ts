/**
 * How the agent meets the server's failures: an unavailable server is retried with backoff,
 * a refused credential stops the agent. A real agent against a fake control plane.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FatalAgentError } from '../src/index.js';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane } from './helpers/fake-control-plane.js';

test('503 answers to polls are retried, and the task still runs', async (t) => {
  const cp = await FakeControlPlane.start();
  cp.answerNext('poll', 'FERRY_E_UNAVAILABLE', { times: 3 });
  const task = cp.queueTask({ script: 'echo ran\n' });
  await startAgent(t, cp);

  const final = await cp.waitFor('the final status', () => cp.task(task.id).final);
  assert.equal(final.status, 'succeeded');
  assert.equal(cp.output(task.id).toString(), 'ran\n');
  const polls = cp.callsTo('poll').map((c) => c.status);
  assert.deepEqual(polls.slice(0, 4), [503, 503, 503, 200], 'three refused polls, then the one that brought the task');
});

test('a 401 answer to a poll stops the agent with a fatal error, and it polls no more', async (t) => {
  const cp = await FakeControlPlane.start();
  cp.answerNext('poll', 'FERRY_E_AGENT_REVOKED');
  const agent = await startAgent(t, cp);

  await assert.rejects(agent.done, (err: unknown) => {
    assert.ok(err instanceof FatalAgentError, `a FatalAgentError, not ${String(err)}`);
    // The server's words, which say what to do, passed on as they are.
    assert.match(err.message, /^this agent was revoked; start it with a new join token: ferry agent token create/);
    return true;
  });
  assert.deepEqual(
    cp.callsTo('registerAgent').map((c) => c.status),
    [201],
  );
  assert.deepEqual(
    cp.callsTo('poll').map((c) => c.status),
    [401],
  );
});

test('a 401 answer to a heartbeat stops the agent with a fatal error and cancels its running task', async (t) => {
  const cp = await FakeControlPlane.start();
  cp.heartbeatSeconds = 0.2;
  const task = cp.queueTask({ script: 'echo started\nsleep 20\necho never\n' });
  const agent = await startAgent(t, cp);
  await cp.waitFor("the task's first output", () => cp.output(task.id).includes('started'));
  cp.answerNext('heartbeat', 'FERRY_E_AGENT_REVOKED');

  await assert.rejects(agent.done, FatalAgentError);
  assert.ok(!cp.output(task.id).includes('never'), 'the task was stopped');
});
