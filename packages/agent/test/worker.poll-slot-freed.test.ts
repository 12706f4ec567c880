/**
 * A slot freeing while the agent's poll waits with free = 0: the next task starts at once, and
 * the waiting poll is not hung up (that would close its connection, and every task would pay a
 * new TLS handshake on both sides). A real agent against a fake control plane.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane } from './helpers/fake-control-plane.js';

test('when a task ends while a poll waits with no room, the next task starts without the agent hanging up that poll', async (t) => {
  const cp = await FakeControlPlane.start();
  const first = cp.queueTask({ script: 'sleep 0.3\necho one\n' });
  const second = cp.queueTask({ script: 'echo two\n' });
  const started = Date.now();
  // One slot, and polls that would wait 20 s: the second task must not wait for that.
  await startAgent(t, cp, { concurrency: 1, pollWaitSeconds: 20 });

  await cp.waitFor('the first final status', () => cp.task(first.id).final, 10_000);
  const final = await cp.waitFor('the second final status', () => cp.task(second.id).final, 10_000);
  assert.equal(final.status, 'succeeded');
  assert.ok(Date.now() - started < 15_000, 'the second task did not wait out the long poll');
  const polls = cp.callsTo('poll');
  const withRoom = polls.filter((c) => (c.body as { free: number }).free > 0);
  assert.ok(withRoom.length >= 2, 'each task came in a poll with room');
  const hungUp = polls.filter((c) => c.status === 0);
  assert.deepEqual(hungUp, [], 'no poll was hung up by the agent');
});
