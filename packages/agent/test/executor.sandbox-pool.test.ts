/**
 * Sandboxes started ahead of their tasks (executor/sandbox-pool.ts) keep every guarantee of a
 * sandbox made for its task: nothing of one task reaches the next, each serves one task, no
 * secret is in a sandbox before its hand-over, a sandbox that waits too long is destroyed with
 * its cgroup, and an agent killed with SIGKILL leaves nothing once the next one has started.
 * Real bubblewrap sandboxes; needs root and bwrap (skips, saying so, where the host cannot).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BubblewrapExecutor } from '../src/executor/bubblewrap.js';
import { ownerTag } from '../src/executor/cgroup.js';
import { selectExecutor } from '../src/executor/select.js';
import { TASK_PATH, type Sandbox, type SandboxLimits } from '../src/executor/types.js';
import { cgroupsOf, collect, usable } from './helpers/sandbox-run.js';

const LIMITS: SandboxLimits = { maxProcesses: 64, memoryBytes: 256 << 20, network: 'none' };
const BASH = ['bash', '--noprofile', '--norc', '{script}'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` holds, polling; fails with `what` after `ms`. */
async function until(what: string | (() => string), check: () => boolean, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; !check(); await sleep(20))
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${typeof what === 'string' ? what : what()}`);
}

interface HostProcess {
  pid: number;
  ppid: number;
  comm: string;
}

function processes(): HostProcess[] {
  const all: HostProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      all.push({ pid: Number(entry), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), comm });
    } catch {
      // exited while we looked
    }
  }
  return all;
}

/** Host processes below `root` (sandboxes this process started and everything in them). */
function descendantsOf(root: number): HostProcess[] {
  const all = processes();
  const found: HostProcess[] = [];
  for (let queue = [root]; queue.length > 0;) {
    const parent = queue.shift();
    for (const p of all.filter((x) => x.ppid === parent)) {
      found.push(p);
      queue.push(p.pid);
    }
  }
  return found;
}

/** The bwraps (one per sandbox) this process started: children of its spawner (executor/spawner.ts), a perl child of `root`. */
function sandboxesOf(root: number): HostProcess[] {
  const below = descendantsOf(root);
  const spawners = new Set(below.filter((p) => p.comm === 'perl' && p.ppid === root).map((p) => p.pid));
  return below.filter((p) => p.comm === 'bwrap' && spawners.has(p.ppid));
}

/** The shims waiting in (or running) sandboxes below `root`: perl started by a bwrap. */
const shimsOf = (root: number) => {
  const below = descendantsOf(root);
  return below.filter((p) => p.comm === 'perl' && below.some((b) => b.pid === p.ppid && b.comm === 'bwrap'));
};

async function runIn(sandbox: Sandbox, script: string, env: Record<string, string> = {}) {
  const proc = sandbox.start({ argv: BASH, env: { PATH: TASK_PATH, ...env }, script });
  const io = collect(proc);
  const exit = await proc.exited;
  await sandbox.dispose();
  return { exit, out: io.out(), err: io.err(), pid: proc.pid };
}

test('a pooled sandbox shows its task nothing of the task before: files, processes, environment, secrets; each ran as its own uid', async (t) => {
  if (!usable(t)) return;
  const executor = new BubblewrapExecutor({ pool: { max: 2 } });
  try {
    const secret = `s3cret-${process.pid}-${Date.now()}`;
    const first = await executor.create('first', LIMITS);
    const a = await runIn(
      first,
      `echo one > /work/a.txt; echo two > /tmp/b.txt; (setsid sleep 1000 </dev/null >/dev/null 2>&1 &); echo "$FIRST_SECRET" > /work/s; id -u`,
      { FIRST_SECRET: secret },
    );
    assert.equal(a.exit.code, 0, a.err);
    await until('the pool holds a sandbox', () => (executor.poolStats?.waiting ?? 0) > 0);
    const hitsBefore = executor.poolStats?.hits ?? 0;
    const second = await executor.create('second', LIMITS);
    assert.equal(executor.poolStats?.hits, hitsBefore + 1, 'the second task got a pooled sandbox');
    const b = await runIn(
      second,
      'ls -A /work /tmp; ps -e -o comm= | sort | tr "\\n" " "; echo; env | grep -c FIRST_SECRET; grep -rsl s3cret- /proc/[0-9]*/environ /work /tmp | wc -l; id -u',
    );
    assert.equal(b.exit.code, 0, b.err);
    const [tmpHeader, blank, workHeader, procs, envHits, found, uid] = b.out.trim().split('\n');
    assert.deepEqual([tmpHeader, blank, workHeader], ['/tmp:', '', '/work:'], `empty /tmp and /work:\n${b.out}`);
    assert.doesNotMatch(procs ?? '', /sleep/, "the first task's daemon is not there");
    assert.equal(envHits, '0', "the first task's secret is not in the environment");
    assert.equal(found, '0', "nor in any process's environment or file");
    assert.notEqual(uid, a.out.trim(), 'a different uid');
  } finally {
    await executor.close();
  }
});

test('a pooled sandbox runs one task only: a second start is refused, and the pool never hands it out again', async (t) => {
  if (!usable(t)) return;
  const executor = new BubblewrapExecutor({ pool: { max: 1 } });
  try {
    const bwraps = new Set<number>();
    for (let i = 0; i < 6; i++) {
      if (i > 0) await until('the pool holds a sandbox', () => (executor.poolStats?.waiting ?? 0) > 0);
      const sandbox = await executor.create(`t${i}`, LIMITS);
      const proc = sandbox.start({ argv: ['true'], env: { PATH: TASK_PATH }, script: '' });
      assert.throws(() => sandbox.start({ argv: ['true'], env: { PATH: TASK_PATH }, script: '' }), /runs one task once/);
      assert.equal((await proc.exited).code, 0);
      await sandbox.dispose();
      assert.throws(() => sandbox.start({ argv: ['true'], env: { PATH: TASK_PATH }, script: '' }), /runs one task once/);
      assert.ok(!bwraps.has(proc.pid), `sandbox ${proc.pid} served a task before`);
      bwraps.add(proc.pid);
    }
    assert.equal(executor.poolStats?.hits, 5, 'every task after the first had a pooled sandbox');
  } finally {
    await executor.close();
  }
});

test('no secret is in a waiting sandbox: its processes have an empty environment, and its shim already runs as the task uid without capabilities', async (t) => {
  if (!usable(t)) return;
  const executor = new BubblewrapExecutor({ pool: { max: 1 } });
  try {
    await runIn(await executor.create('demand', LIMITS), 'true');
    await until('the pool holds a sandbox', () => (executor.poolStats?.waiting ?? 0) > 0);
    // bwrap, its pid 1 and the shim, nothing of a task (the disposed task's sandbox may take a moment to go).
    // The sandboxes' processes only: the test runner's own helpers (tsx's esbuild) are children too.
    const inSandboxes = () => sandboxesOf(process.pid).flatMap((b) => [b, ...descendantsOf(b.pid)]);
    const comms = () =>
      inSandboxes()
        .map((p) => p.comm)
        .sort()
        .join(' ');
    await until(
      () => `only the waiting sandbox is there (${comms()})`,
      () => comms() === 'bwrap bwrap perl',
    );
    const waiting = inSandboxes();
    // bwrap sets PWD for what it starts (--chdir); the shim clears it for the task.
    for (const p of waiting) assert.match(readFileSync(`/proc/${p.pid}/environ`, 'utf8'), /^(PWD=\/work\0)?$/, `${p.comm} ${p.pid} has an empty environment`);
    // bwrap and its pid 1 stay root; the shim dropped to the task's uid before it said "ready",
    // so no root process of the sandbox ever reads a hand-over.
    const status = (pid: number) => readFileSync(`/proc/${pid}/status`, 'utf8');
    const uids = (pid: number) => /^Uid:\t(.*)$/m.exec(status(pid))?.[1]?.split('\t');
    const [shim, ...roots] = [...waiting].sort((a, b) => (a.comm === 'perl' ? -1 : b.comm === 'perl' ? 1 : 0));
    assert.ok(shim && shim.comm === 'perl', comms());
    for (const p of roots) assert.deepEqual(uids(p.pid), ['0', '0', '0', '0'], `${p.comm} ${p.pid} is root`);
    const taskUid = uids(shim.pid)?.[0] ?? '0';
    assert.ok(Number(taskUid) >= 0x7000_0000, `the shim runs as a task uid, not ${taskUid}`);
    assert.deepEqual(uids(shim.pid), [taskUid, taskUid, taskUid, taskUid], 'real, effective, saved and file uid');
    assert.match(status(shim.pid), /^NoNewPrivs:\t1$/m);
    for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
      assert.match(status(shim.pid), new RegExp(`^${cap}:\\t0+$`, 'm'), `${cap} of the waiting shim is empty`);
  } finally {
    await executor.close();
  }
});

test('a sandbox that waits too long is destroyed with its cgroup, replaced only if a task came meanwhile; without tasks the pool empties', async (t) => {
  if (!usable(t)) return;
  const executor = new BubblewrapExecutor({ pool: { max: 2, maxWaitMs: 1_500, idleMs: 10_000 } });
  try {
    const before = new Set(cgroupsOf(ownerTag()));
    const fresh = () => cgroupsOf(ownerTag()).filter((c) => !before.has(c));
    // Two at once: the pool then keeps two.
    const [a, b] = [await executor.create('one', LIMITS), await executor.create('two', LIMITS)];
    await Promise.all([runIn(a, 'true'), runIn(b, 'true')]);
    await until('two sandboxes waiting', () => executor.poolStats?.ready === 2);
    const firstTwo = sandboxesOf(process.pid).map((p) => p.pid);
    const firstCgroups = fresh();
    // One task takes one of them; the other waits on, with a task having come meanwhile.
    const used = await runIn(await executor.create('three', LIMITS), 'true');
    const [other] = firstTwo.filter((pid) => pid !== used.pid);
    assert.ok(other !== undefined && firstTwo.includes(used.pid), 'the task had a pooled sandbox');
    await until('the other one is recycled', () => !existsSync(`/proc/${other}`));
    await until('and replaced: two wait again', () => sandboxesOf(process.pid).length === 2 && !sandboxesOf(process.pid).some((p) => p.pid === other));
    // Now no task comes: each expires unused, is not replaced, and the pool empties.
    await until('no sandbox once none is used', () => sandboxesOf(process.pid).length === 0 && executor.poolStats?.launching === 0, 15_000);
    await sleep(2_000);
    assert.deepEqual(sandboxesOf(process.pid), [], 'none started after');
    for (const dir of firstCgroups) assert.equal(existsSync(dir), false, `${dir} was removed with its sandbox`);
    assert.deepEqual(fresh(), [], 'no cgroup left');
  } finally {
    await executor.close();
  }
});

test("kill -9 of an agent with pooled sandboxes: they die with it, and the next agent's start sweeps their cgroups; no folder is left", async (t) => {
  if (!usable(t)) return;
  const tmp = mkdtempSync(join(tmpdir(), 'ferry-pool-kill-'));
  const source = fileURLToPath(new URL('../src/executor/bubblewrap.ts', import.meta.url));
  const cgroupSource = fileURLToPath(new URL('../src/executor/cgroup.ts', import.meta.url));
  // An "agent": an executor with a pool, one task run for demand, then waiting with two sandboxes pooled.
  const code = `
    import { BubblewrapExecutor } from ${JSON.stringify(source)};
    import { ownerTag } from ${JSON.stringify(cgroupSource)};
    const ex = new BubblewrapExecutor({ pool: { max: 2 } });
    const limits = ${JSON.stringify(LIMITS)};
    const [a, b] = [await ex.create('a', limits), await ex.create('b', limits)];
    const [pa, pb] = [a.start({ argv: ['true'], env: {}, script: '' }), b.start({ argv: ['true'], env: {}, script: '' })];
    await Promise.all([pa.exited, pb.exited]); await a.dispose(); await b.dispose();
    while (ex.poolStats.waiting < 2) await new Promise((r) => setTimeout(r, 20));
    console.log(ownerTag());
    setInterval(() => {}, 1 << 30);`;
  const agent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TMPDIR: tmp },
  });
  try {
    const [line] = (await once(agent.stdout, 'data')) as [Buffer];
    const tag = line.toString().trim();
    const pid = agent.pid ?? -1;
    await until('both pooled shims are up', () => shimsOf(pid).length === 2);
    // The sandboxes and the spawner that started them; not tsx's esbuild.
    const pooled = descendantsOf(pid).filter((p) => p.comm === 'bwrap' || p.comm === 'perl');
    assert.ok(
      pooled.some((p) => p.comm === 'perl' && p.ppid === pid),
      'the spawner is among them',
    );
    const cgroups = cgroupsOf(tag);
    assert.ok(cgroups.length >= 2, `the pooled sandboxes have cgroups: ${cgroups.join(', ')}`);
    agent.kill('SIGKILL');
    await once(agent, 'exit');
    await until(
      'the spawner and every pooled sandbox process died with the agent (PR_SET_PDEATHSIG, --die-with-parent)',
      () => pooled.every((p) => !existsSync(`/proc/${p.pid}`)),
      10_000,
    );
    // The restart: what `ferry agent start` does before its first task.
    const restarted = await selectExecutor('sandbox');
    assert.deepEqual(cgroupsOf(tag), [], "the dead agent's cgroups are swept");
    await restarted.close?.();
    // tsx (the test's loader, not the agent) keeps its compile cache there.
    assert.deepEqual(
      readdirSync(tmp).filter((e) => !e.startsWith('tsx-')),
      [],
      'no folder or file left in its TMPDIR',
    );
  } finally {
    agent.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("the start-up sweep leaves a live agent's cgroups alone", async (t) => {
  if (!usable(t)) return;
  const executor = new BubblewrapExecutor({ pool: { max: 1 } });
  try {
    await runIn(await executor.create('demand', LIMITS), 'true');
    await until('the pool holds a sandbox', () => (executor.poolStats?.waiting ?? 0) > 0);
    const mine = cgroupsOf(ownerTag());
    assert.ok(mine.length > 0);
    await BubblewrapExecutor.sweep();
    for (const dir of mine) assert.ok(existsSync(dir), `${dir} of a live agent stays`);
    const sandbox = await executor.create('after-sweep', LIMITS);
    const r = await runIn(sandbox, 'echo fine');
    assert.equal(r.out, 'fine\n', 'the pooled sandbox still works');
  } finally {
    await executor.close();
  }
});

test('limits hold in a pooled sandbox: the memory limit kills and is reported as such, the process limit stops a fork bomb, network none has only loopback', async (t) => {
  if (!usable(t)) return;
  const limits: SandboxLimits = { maxProcesses: 32, memoryBytes: 64 << 20, network: 'none' };
  const executor = new BubblewrapExecutor({ pool: { max: 1 } });
  /** A sandbox for `limits` that the pool had ready. */
  const pooled = async () => {
    await until('the pool holds a ready sandbox', () => (executor.poolStats?.ready ?? 0) > 0);
    const hits = executor.poolStats?.hits ?? 0;
    const sandbox = await executor.create('limits', limits);
    assert.equal(executor.poolStats?.hits, hits + 1, 'a pooled sandbox');
    return sandbox;
  };
  try {
    await runIn(await executor.create('demand', limits), 'true');
    const mem = await pooled();
    const proc = mem.start({ argv: BASH, env: { PATH: TASK_PATH }, script: 'perl -e \'$x = "a" x (256 << 20); print "survived\\n"\'' });
    const io = collect(proc);
    const exit = await proc.exited;
    const oom = await mem.outOfMemory?.();
    await mem.dispose();
    assert.doesNotMatch(io.out(), /survived/);
    assert.equal(exit.code, 137, `OOM-killed: ${io.err()}`);
    assert.equal(oom, true, 'reported as out of memory');

    const bombBox = await pooled();
    const bomb = bombBox.start({
      argv: ['sh', '{script}'],
      env: { PATH: TASK_PATH },
      script: '( i=0; while [ $i -lt 10000 ]; do sleep 30 & i=$((i+1)); done ) 2>/dev/null\necho bomb-stopped\nexec sleep 30\n',
    });
    try {
      await collect(bomb).waitFor('bomb-stopped');
      // The task's processes: everything under bwrap but its pid 1.
      const taskProcs = descendantsOf(bomb.pid).length - 1;
      assert.ok(taskProcs <= limits.maxProcesses && taskProcs >= limits.maxProcesses - 4, `${taskProcs} task processes`);
      assert.equal(await bomb.terminate(2_000), 'sigterm');
    } finally {
      await bombBox.dispose();
    }

    const net = await runIn(await pooled(), 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "');
    assert.equal(net.out.trim(), 'lo', 'only loopback');
  } finally {
    await executor.close();
  }
});
