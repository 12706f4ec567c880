/**
 * Nothing of a task runs before the server confirms its start: a task the server no longer
 * assigns to this agent (requeued while the agent was cut off, say) must not run here as well
 * as on the agent that took it over. A real agent (process executor) against a fake control
 * plane that refuses the start.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane } from './helpers/fake-control-plane.js';

test('a task whose start the server refuses never runs, reports nothing, and the agent goes on to the next', async (t) => {
  const cp = await FakeControlPlane.start();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-start-refused-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ran = join(dir, 'ran');
  cp.answerNext('confirmStart', 'FERRY_E_LEASE_LOST');
  const refused = cp.queueTask({ script: `echo ran > '${ran}'\necho printed\n` });
  await startAgent(t, cp);

  await cp.waitFor('the refused start', () => cp.callsTo('confirmStart').find((c) => c.status === 409));
  const next = cp.queueTask({ script: 'echo next\n' });
  const final = await cp.waitFor('the next task to finish', () => cp.task(next.id).final);
  assert.equal(final.status, 'succeeded');

  assert.equal(existsSync(ran), false, 'the refused task did not run');
  assert.equal(cp.task(refused.id).final, undefined, 'no final status for a task the agent does not hold');
  assert.equal(cp.output(refused.id).length, 0, 'no output for it either');
});
