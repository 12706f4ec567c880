/**
 * A sandboxed task's end, in the order the runner keeps: every process of the task dead, then
 * the final status, then what the sandbox left that runs nothing of the task (its emptied cgroup's
 * folders) removed. The removal follows the status instead of preceding it (bench/README.md,
 * "the task's end path"), so it must still happen at once after it, and an agent killed in
 * between must leave nothing once the next one has started. Real bubblewrap sandboxes; needs
 * root and bwrap (skips, saying so, where the host cannot).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { BubblewrapExecutor } from '../src/executor/bubblewrap.js';
import { ownerTag } from '../src/executor/cgroup.js';
import { selectExecutor } from '../src/executor/select.js';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane, type RecordedCall } from './helpers/fake-control-plane.js';
import { TASK_PATH } from '../src/executor/types.js';
import { cgroupsOf, collect, usable } from './helpers/sandbox-run.js';

const marker = (name: string) => `ferrytest-${name}-${process.pid}-${Date.now()}`;

/** Host pids whose command line contains `pattern` (pgrep -f). */
const hostPids = (pattern: string) => spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);

/** A task that leaves a daemon behind (its own session, double-forked) and says so once it runs. */
const leavesDaemon = (m: string) => `(exec -a ${m} sleep 300 </dev/null >/dev/null 2>&1 &)
for i in $(seq 1 200); do pgrep -f '${m}' >/dev/null && break; sleep 0.02; done
pgrep -f '${m}' >/dev/null && echo daemon up
`;

/** Host processes running as `uid` (real uid, from /proc/<pid>/status). */
function processesOf(uid: number): string[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e) && readOr(`/proc/${e}/status`).match(/^Uid:\s+(\d+)/m)?.[1] === String(uid));
}

/** What a /proc file says, or '' once its process is gone. */
function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !check(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
}

test('sandbox: the final status arrives once every process of the task is dead, and its emptied cgroup is removed right after it', async (t) => {
  if (!usable(t)) return;
  const cp = await FakeControlPlane.start();
  const m = marker('end-order');
  const task = cp.queueTask({ network: 'none', script: leavesDaemon(m) });
  // This process is the agent (runAgent in-process), so its task cgroups carry this tag; without
  // a pool, the only one is the task's.
  const tag = ownerTag();
  const atArrival: { daemons: string[]; cgroups: string[] }[] = [];
  cp.on('arrival', (call: RecordedCall) => {
    if (call.route === 'finishTask') atArrival.push({ daemons: hostPids(m), cgroups: cgroupsOf(tag) });
  });
  await startAgent(t, cp, { executor: 'sandbox', sandboxPool: 0 });

  const final = await cp.waitFor('the final status', () => cp.task(task.id).final);
  assert.equal(final.status, 'succeeded');
  assert.equal(cp.output(task.id).toString(), 'daemon up\n');
  assert.equal(atArrival.length, 1);
  assert.deepEqual(atArrival[0]?.daemons, [], 'the daemon was dead when the final status arrived');
  // Where the host gives task cgroups, the emptied one is still there while the status is being
  // answered (its removal waits for the delivery), and goes right after.
  if (atArrival[0]?.cgroups.length) await until('the ended task cgroup is removed after its final status', () => cgroupsOf(tag).length === 0, 5_000);
  assert.deepEqual(cgroupsOf(tag), []);
});

test('a final status the server does not take yet does not keep the ended sandbox: its cgroup goes within about a second', async (t) => {
  if (!usable(t)) return;
  const cp = await FakeControlPlane.start();
  // Refused as unavailable six times: the agent retries for several seconds (250 ms, doubling).
  cp.answerNext('finishTask', 'FERRY_E_UNAVAILABLE', { times: 6 });
  const task = cp.queueTask({ network: 'none', script: 'true\n' });
  const tag = ownerTag();
  await startAgent(t, cp, { executor: 'sandbox', sandboxPool: 0 });
  await cp.waitFor('the first refused final status', () => cp.calls.some((c) => c.route === 'finishTask'));
  await until('the ended task cgroup is removed while the status is still being retried', () => cgroupsOf(tag).length === 0, 3_000);
  assert.equal(cp.task(task.id).final, undefined, 'the status was not taken yet');
  const final = await cp.waitFor('the final status', () => cp.task(task.id).final, 30_000);
  assert.equal(final.status, 'succeeded');
});

test("an agent killed between a task's end and its sandbox's removal leaves nothing once the next agent has started", async (t) => {
  if (!usable(t)) return;
  const m = marker('end-crash');
  const source = fileURLToPath(new URL('../src/executor/bubblewrap.ts', import.meta.url));
  const cgroupSource = fileURLToPath(new URL('../src/executor/cgroup.ts', import.meta.url));
  // An "agent" whose task has ended (end(): what the final status waits for) and whose sandbox
  // is not removed yet (dispose(), which follows the status): it is killed in that window.
  const code = `
    import { BubblewrapExecutor } from ${JSON.stringify(source)};
    import { ownerTag } from ${JSON.stringify(cgroupSource)};
    const ex = new BubblewrapExecutor();
    const sandbox = await ex.create('t', { maxProcesses: 64, memoryBytes: 256 << 20, network: 'none' });
    const proc = sandbox.start({ argv: ['bash', '--noprofile', '--norc', '{script}'], env: { PATH: '/usr/bin:/bin' }, script: process.env.FERRY_TEST_SCRIPT });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    await proc.exited;
    await sandbox.end();
    console.log(JSON.stringify({ tag: ownerTag(), out }));
    setInterval(() => {}, 1 << 30);`;
  // The script goes by environment: in the command line, pgrep -f would find the marker there.
  const agent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, FERRY_TEST_SCRIPT: leavesDaemon(m) },
  });
  try {
    const [line] = (await once(agent.stdout, 'data')) as [Buffer];
    const { tag, out } = JSON.parse(line.toString()) as { tag: string; out: string };
    assert.equal(out, 'daemon up\n');
    assert.deepEqual(hostPids(m), [], 'end() left no process of the task');
    assert.ok(cgroupsOf(tag).length > 0, 'the ended sandbox keeps its emptied cgroup until dispose()');
    agent.kill('SIGKILL');
    await once(agent, 'exit');
    // The restart: what `ferry agent start` does before its first task.
    const restarted = await selectExecutor('sandbox');
    assert.deepEqual(cgroupsOf(tag), [], "the killed agent's ended task cgroup is swept");
    await restarted.close?.();
  } finally {
    agent.kill('SIGKILL');
  }
});

test("end() after a normal exit: no process of the task is left, at most bwrap's init on its way out (root, exiting) is still in the cgroup", async (t) => {
  if (!usable(t)) return;
  const executor = new BubblewrapExecutor();
  const tag = ownerTag();
  let initLeft = 0;
  try {
    for (let i = 0; i < 40; i++) {
      const sandbox = await executor.create(`t${i}`, { maxProcesses: 64, memoryBytes: 256 << 20, network: 'none' });
      const proc = sandbox.start({
        argv: ['bash', '--noprofile', '--norc', '{script}'],
        env: { PATH: TASK_PATH },
        script: i % 2 ? 'id -u\n' : 'id -u; (sleep 300 &)\n',
      });
      const io = collect(proc);
      await proc.exited;
      await sandbox.end?.();
      const uid = Number(io.out().trim());
      assert.ok(uid > 0, `the task said its uid: ${io.out()}`);
      assert.deepEqual(processesOf(uid), [], `no process runs as the task's uid ${uid} once end() resolved`);
      for (const dir of cgroupsOf(tag)) {
        for (const pid of readOr(join(dir, 'cgroup.procs')).split('\n').filter(Boolean)) {
          const stat = readOr(`/proc/${pid}/stat`);
          if (!stat) continue; // gone since
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          assert.match(stat, /\(bwrap\)/, `only bwrap's init may be left: ${stat}`);
          assert.ok((Number(fields[6]) & 0x4) !== 0, `and only on its way out (PF_EXITING): ${stat}`);
          initLeft++;
        }
      }
      await sandbox.dispose();
      assert.deepEqual(cgroupsOf(tag), [], 'dispose() removed the cgroup');
    }
    t.diagnostic(`${initLeft} of 40 ended with bwrap's init still on its way out`);
  } finally {
    await executor.close();
  }
});
