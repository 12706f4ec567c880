/**
 * After a poll brings a task, the next poll goes out once the server has answered that task's
 * start confirmation, not beside it: on the server the poll's work (a claim attempt, renewing
 * the lease just granted) ran alongside the compare-and-set the hand-over waits for. A server
 * slow to confirm holds the next poll back only START_WAIT_MS. A real agent against a fake
 * control plane whose confirmation answers are held back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { START_WAIT_MS } from '../src/poll-loop.js';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane, type RecordedCall } from './helpers/fake-control-plane.js';

/** For every poll that arrives: the tasks earlier polls brought, and whose confirmations were answered by then. */
function watchPolls(cp: FakeControlPlane): { brought: number; confirmed: number; at: number }[] {
  const seen: { brought: number; confirmed: number; at: number }[] = [];
  cp.on('arrival', (call: RecordedCall) => {
    if (call.route !== 'poll') return;
    const brought = cp.callsTo('poll').filter((c) => (c.answer as { task?: unknown } | undefined)?.task).length;
    seen.push({ brought, confirmed: cp.callsTo('confirmStart').length, at: Date.now() });
  });
  return seen;
}

test('the poll after one that brought a task goes out once that task’s start is confirmed', async (t) => {
  const cp = await FakeControlPlane.start();
  cp.delayAnswers('confirmStart', Math.round(START_WAIT_MS / 2));
  const tasks = [cp.queueTask(), cp.queueTask(), cp.queueTask()];
  const polls = watchPolls(cp);
  await startAgent(t, cp, { concurrency: 4 });

  for (const task of tasks) assert.equal((await cp.waitFor('the final status', () => cp.task(task.id).final)).status, 'succeeded');
  const afterTasks = polls.filter((p) => p.brought > 0);
  assert.ok(afterTasks.length >= tasks.length, `a poll after each task (${afterTasks.length})`);
  for (const p of afterTasks) assert.equal(p.confirmed, p.brought, 'every task brought so far had its start confirmed before this poll arrived');
});

test('a server slow to confirm a start holds the next poll back only a moment', async (t) => {
  const cp = await FakeControlPlane.start();
  const slowMs = START_WAIT_MS * 8;
  cp.delayAnswers('confirmStart', slowMs);
  const task = cp.queueTask();
  const polls = watchPolls(cp);
  await startAgent(t, cp, { concurrency: 4 });

  await cp.waitFor('the final status', () => cp.task(task.id).final);
  const broughtAt = cp.callsTo('poll').find((c) => (c.answer as { task?: unknown } | undefined)?.task);
  assert.ok(broughtAt, 'a poll brought the task');
  const next = polls.find((p) => p.brought > 0);
  assert.ok(next, 'the agent polled again');
  assert.equal(next.confirmed, 0, 'the next poll did not wait for the slow confirmation');
});
