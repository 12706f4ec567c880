/**
 * Stopping work: a cancel brought by a heartbeat stops the task, and stopping the agent lets
 * running tasks finish (drain). A real agent against a fake control plane.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane } from './helpers/fake-control-plane.js';

test('a cancel in a heartbeat answer stops the task, and it ends as cancelled', async (t) => {
  const cp = await FakeControlPlane.start();
  const task = cp.queueTask({ script: 'echo started\nsleep 20\necho never\n' });
  await startAgent(t, cp);
  await cp.waitFor("the task's first output", () => cp.output(task.id).includes('started'));
  cp.cancelInHeartbeat(task.id);

  const final = await cp.waitFor('the final status', () => cp.task(task.id).final);
  assert.equal(final.status, 'cancelled');
  assert.match(final.reason ?? '', /^cancelled: stopped by SIGTERM/);
  const carried = cp.callsTo('heartbeat').some((c) => (c.answer as { cancel?: string[] }).cancel?.includes(task.id));
  assert.ok(carried, 'the cancel came in a heartbeat answer');
  assert.doesNotMatch(cp.output(task.id).toString(), /never/);
});

test('stopping the agent lets a running task finish and report before the agent ends', async (t) => {
  const cp = await FakeControlPlane.start();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-drain-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const flag = join(dir, 'go');
  const task = cp.queueTask({ script: `echo started\nfor i in $(seq 200); do [ -e '${flag}' ] && break; sleep 0.1; done\necho finished\n` });
  const agent = await startAgent(t, cp);
  await cp.waitFor("the task's first output", () => cp.output(task.id).includes('started'));

  agent.stop();
  const pollsAtStop = cp.callsTo('poll').length;
  await writeFile(flag, '');
  await agent.done;

  const final = cp.task(task.id).final;
  assert.equal(final?.status, 'succeeded', 'the task finished and its status was delivered before the agent ended');
  assert.equal(cp.output(task.id).toString(), 'started\nfinished\n');
  assert.ok(cp.callsTo('poll').length <= pollsAtStop + 1, 'no new polls after the stop (only the one it cut short)');
});
