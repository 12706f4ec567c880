/**
 * "Finished" means nothing of the task still runs: the final status reaches the server only
 * after the task's processes are dead, one it left in the background included. A real agent
 * (process executor) against a fake control plane that looks at the moment the status arrives.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane, type RecordedCall } from './helpers/fake-control-plane.js';

/** Whether `pid` runs (a zombie waiting to be reaped has already died). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('the final status arrives only once every process of the task is dead, a background one included', async (t) => {
  const cp = await FakeControlPlane.start();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-final-after-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pidFile = join(dir, 'pid');
  const task = cp.queueTask({ script: `sleep 300 >/dev/null 2>&1 &\necho $! > '${pidFile}'\necho left behind\n` });
  const atArrival: boolean[] = [];
  cp.on('arrival', (call: RecordedCall) => {
    if (call.route === 'finishTask') atArrival.push(running(Number(readFileSync(pidFile, 'utf8'))));
  });
  await startAgent(t, cp);

  const final = await cp.waitFor('the final status', () => cp.task(task.id).final);
  assert.equal(final.status, 'succeeded');
  assert.equal(cp.output(task.id).toString(), 'left behind\n');
  assert.deepEqual(atArrival, [false], 'the background process was dead when the final status arrived');
});
