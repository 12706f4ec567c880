/**
 * The bubblewrap executor against the real sandbox on this host: isolation, limits, the signal
 * ladder and clean destruction. Needs root and bwrap; every test says so when it cannot run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { BubblewrapExecutor, bubblewrapProblem } from '../src/executor/bubblewrap.js';
import { ownerTag } from '../src/executor/cgroup.js';
import { collect, ferryCgroupDirs, usable } from './helpers/sandbox-run.js';
import { measureOverhead } from '../../../bench/fixtures/sandbox-overhead.mjs';
import { TASK_PATH, type SandboxLimits } from '../src/executor/types.js';

const LIMITS: SandboxLimits = { maxProcesses: 64, memoryBytes: 256 << 20, network: 'none' };
const executor = new BubblewrapExecutor();
const marker = (name: string) => `ferrytest-${name}-${process.pid}-${Date.now()}`;

/** Runs one script to completion in a fresh sandbox and disposes of it. */
async function run(script: string, limits: SandboxLimits = LIMITS, argv = ['bash', '--noprofile', '--norc', '{script}'], taskId = 't') {
  const sandbox = await executor.create(taskId, limits);
  const proc = sandbox.start({ argv, env: { PATH: TASK_PATH, FERRY_TASK_ID: 't' }, script });
  const io = collect(proc);
  const exit = await proc.exited;
  await sandbox.dispose();
  return { exit, out: io.out(), err: io.err() };
}

/** Host pids whose command line contains `pattern` (pgrep -f), excluding pgrep itself. */
const hostPids = (pattern: string) => spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);

const readOr = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

/** The folder of the cgroup (v1 hierarchy of `controller`, else v2 with it enabled) that `pid` is in. */
function cgroupDirOf(pid: number, controller: string): string | undefined {
  const lines = readOr(`/proc/${pid}/cgroup`).split('\n');
  const v1 = lines.find((l) => l.split(':')[1]?.split(',').includes(controller))?.split(':')[2];
  if (v1) return join('/sys/fs/cgroup', controller, v1);
  const v2 = lines.find((l) => l.startsWith('0::'))?.slice(3) ?? '/';
  const mount = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((m) => readOr(join(m, 'cgroup.controllers')).includes(controller));
  return mount && join(mount, v2);
}

/** The task cgroup bwrap (`pid`) runs in; skips when the host has no such controller, fails when it has but the task is not in one. */
function taskCgroup(t: TestContext, pid: number, controller: string): string | undefined {
  const dir = cgroupDirOf(pid, controller);
  if (dir?.includes('/ferry/')) return dir;
  const own = cgroupDirOf(process.pid, controller);
  if (process.getuid?.() === 0 && own && existsSync(join(own, 'cgroup.procs')))
    assert.fail(`the host has a writable ${controller} cgroup but the task is in ${dir}`);
  t.skip(`no writable ${controller} cgroup on this host`);
  return undefined;
}

test('bubblewrap is usable on this host', async (t) => {
  if (usable(t)) assert.equal(await bubblewrapProblem(), undefined);
});

test('the task runs as a uid of its own without capabilities, with only its own environment and read-only system folders', async (t) => {
  if (!usable(t)) return;
  const env = await run('', LIMITS, ['/usr/bin/env']);
  assert.deepEqual(env.out.trim().split('\n').sort(), ['FERRY_TASK_ID=t', 'HOME=/work', `PATH=${TASK_PATH}`, 'PWD=/work', 'TMPDIR=/tmp']);
  const r = await run(
    'id -u; id -g; id -G; grep -E "^Cap(Prm|Eff|Bnd|Amb)" /proc/self/status | cut -f2 | sort -u; cat /etc/shadow || echo no-shadow; touch /usr/x /etc/x 2>/dev/null || echo ro-system; touch /work/ok && echo work-writable; pwd',
  );
  const [uid, gid, groups, ...rest] = r.out.trim().split('\n');
  assert.ok(Number(uid) >= 0x7000_0000 && Number(uid) < 0x7001_0000, `uid ${uid} is from the task range`);
  assert.deepEqual([gid, groups], [uid, uid], 'its own gid, no other groups');
  assert.deepEqual(rest, ['0000000000000000', 'no-shadow', 'ro-system', 'work-writable', '/work']);
  assert.deepEqual(r.exit, { code: 0, signal: null });
});

test('the task cannot read the agent data folder or other host folders', async (t) => {
  if (!usable(t)) return;
  const dataDir = '/tmp/ferry-test-agentdata';
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'agent.json'), '{"token":"s3cret-agent-token"}');
  await chmod(join(dataDir, 'agent.json'), 0o644); // readable by anyone: only the sandbox's view keeps it out
  try {
    const r = await run(`cat ${dataDir}/agent.json; ls -A /tmp; ls /root /home /var/lib /opt /sys/fs/cgroup; test -e /etc/shadow || echo no-etc-shadow`);
    assert.doesNotMatch(r.out, /s3cret/);
    assert.match(r.err, /agent\.json: No such file or directory/);
    assert.equal(r.out.trim(), 'no-etc-shadow');
    for (const path of ['/root', '/home', '/var/lib', '/opt', '/sys/fs/cgroup']) assert.match(r.err, new RegExp(`${path}': No such file`));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a later task sees nothing an earlier task wrote', async (t) => {
  if (!usable(t)) return;
  const first = await run('echo one > /work/a.txt; echo two > /tmp/b.txt; mkdir -p /work/d/e; cat /work/a.txt');
  assert.equal(first.out, 'one\n');
  const second = await run(`ls -A /work /tmp; cat /work/a.txt /tmp/b.txt 2>&1 | grep -c 'No such file'`);
  assert.equal(second.out, '/tmp:\n\n/work:\n2\n');
});

test('nothing of the host but the system folders is mounted in the sandbox: the script and files arrive by pipe, /work and /tmp are tmpfs', async (t) => {
  if (!usable(t)) return;
  const sandbox = await executor.create('mounts', LIMITS);
  const proc = sandbox.start({
    argv: ['bash', '{script}'],
    env: { PATH: TASK_PATH, KUBECONFIG: '{files}/kubeconfig' },
    script: 'cat /proc/self/mountinfo; echo "script: $0"; echo "config: $(cat "$KUBECONFIG")"',
    files: { kubeconfig: 'apiVersion: v1' },
  });
  const io = collect(proc);
  assert.deepEqual(await proc.exited, { code: 0, signal: null }, io.err());
  await sandbox.dispose();
  const lines = io.out().trim().split('\n');
  assert.deepEqual(lines.slice(-2), ['script: /ferry/script', 'config: apiVersion: v1']);
  // Field 4 of mountinfo is the mounted folder's path on its own filesystem: host paths show there.
  const roots = lines.slice(0, -2).map((l) => l.split(' ')[3] ?? '');
  const systemOnly = /^\/(newroot|usr(\/.*)?|etc\/[\w.-]+|(s?bin|lib\w*)(\/.*)?|null|zero|full|random|urandom|tty|irq|bus)?$/;
  assert.deepEqual(
    roots.filter((r) => !systemOnly.test(r)),
    [],
    `only system folders and anonymous tmpfs are mounted:\n${lines.join('\n')}`,
  );
});

test("the hand-over carries arguments, environment values, files and stdin byte for byte; the script is root's and read-only", async (t) => {
  if (!usable(t)) return;
  // Lengths count bytes, not characters: multi-byte text, "=", newlines, colons, empty values and files.
  const greeting = 'a=b\nc:d ✓';
  const script = [
    '# straße ✓',
    'printf "%s|" "$@"; echo',
    'printf "%s" "$GREETING" | od -An -tx1',
    'echo "empty=[$EMPTY]"',
    'cat "$CFG" "$(dirname "$CFG")/b.txt"',
    'cat',
    'stat -c "%U %a" /ferry/script',
  ].join('\n');
  const sandbox = await executor.create('handover', LIMITS);
  const proc = sandbox.start({
    argv: ['bash', '--noprofile', '--norc', '{script}'],
    args: ['one two', '', 'ünï:cödé', '{files}'],
    env: { PATH: TASK_PATH, GREETING: greeting, EMPTY: '', CFG: '{files}/a.conf' },
    script,
    files: { 'a.conf': 'key=välue\n', 'b.txt': '' },
    stdin: new TextEncoder().encode('from stdin ü\n'),
  });
  const io = collect(proc);
  assert.deepEqual(await proc.exited, { code: 0, signal: null }, io.err());
  await sandbox.dispose();
  // What `od -An -tx1` prints for the value's 11 bytes (one line: it puts 16 bytes on a line).
  const hex = `${[...Buffer.from(greeting)].map((b) => ` ${b.toString(16).padStart(2, '0')}`).join('')}\n`;
  assert.equal(io.out(), `one two||ünï:cödé|{files}|\n${hex}empty=[]\nkey=välue\nfrom stdin ü\nroot 444\n`);
  assert.equal(io.err(), '');
});

test('a hand-over larger than the pipe holds (a 1 MiB script, a 256 KiB file) arrives whole', async (t) => {
  if (!usable(t)) return;
  // The agent writes what the pipe takes at once and the rest through the stream (spawner.ts PipeWriter).
  const filler = `# ${'ferry '.repeat(60)}\n`.repeat(Math.ceil((1 << 20) / 363));
  const file = 'x'.repeat(256 << 10);
  const sandbox = await executor.create('big', LIMITS);
  const proc = sandbox.start({
    argv: ['bash', '--noprofile', '--norc', '{script}'],
    env: { PATH: TASK_PATH, DATA: '{files}/data' },
    script: `${filler}wc -c < /ferry/script; wc -c < "$DATA"\n`,
    files: { data: file },
  });
  const io = collect(proc);
  assert.deepEqual(await proc.exited, { code: 0, signal: null }, io.err());
  await sandbox.dispose();
  const script = `${filler}wc -c < /ferry/script; wc -c < "$DATA"\n`;
  assert.ok(script.length > 1 << 20);
  assert.deepEqual(io.out().trim().split('\n'), [String(script.length), String(file.length)]);
});

test('the task sees only its own processes and cannot signal the agent', async (t) => {
  if (!usable(t)) return;
  assert.ok(process.pid > 10, 'the agent pid must not collide with the few pids inside');
  const r = await run(
    `ls /proc | grep -c '^[0-9]'; ps -e -o pid= | wc -l; cat /proc/1/comm; kill -0 ${process.pid} 2>/dev/null && echo SIGNALLED || echo no-such-process`,
  );
  const [procEntries, psCount, init, kill] = r.out.trim().split('\n');
  assert.ok(Number(procEntries) <= 5, `only the sandbox's processes in /proc, saw ${procEntries}`);
  assert.ok(Number(psCount) <= 5, `ps shows only the sandbox, saw ${psCount}`);
  assert.equal(init, 'bwrap');
  assert.equal(kill, 'no-such-process');
});

test('setsid and double-forked daemons die when the task ends', async (t) => {
  if (!usable(t)) return;
  const m = marker('daemon');
  const sandbox = await executor.create('daemon', LIMITS);
  const proc = sandbox.start({
    argv: ['bash', '{script}'],
    env: { PATH: TASK_PATH },
    script: `
setsid bash -c 'exec -a ${m}-setsid sleep 1000' </dev/null >/dev/null 2>&1 &
( ( exec -a ${m}-orphan sleep 1000 </dev/null >/dev/null 2>&1 & ) & )
for i in $(seq 1 200); do [ "$(pgrep -fc '${m}-')" = 2 ] && break; sleep 0.05; done
echo "running: $(pgrep -fc '${m}-') orphan-parent: $(ps -o ppid= -p "$(pgrep -f '${m}-orphan')" | tr -d ' ')"`,
  });
  const io = collect(proc);
  try {
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    await io.waitFor(/orphan-parent: \d*\n/, 5_000); // the exit can be seen before the last output is read
    assert.equal(io.out().trim(), 'running: 2 orphan-parent: 1', io.err());
    // Before dispose: the PID namespace, not the cgroup clean-up, ended them with the main process.
    // bwrap reports the exit as soon as its pid 1 has it, and the kernel then tears the namespace
    // down, so the daemons may take a moment to go; they never outlive it.
    for (let i = 0; i < 100 && hostPids(m).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(hostPids(m), [], 'no daemon outlives the main process');
  } finally {
    await sandbox.dispose();
  }
});

for (const cgroups of [true, false]) {
  test(`a fork bomb stops at maxProcesses (${cgroups ? 'cgroup pids.max' : 'RLIMIT_NPROC fallback'}) and the host can still spawn`, async (t) => {
    if (!usable(t)) return;
    const limits = { ...LIMITS, maxProcesses: 32 };
    const sandbox = await new BubblewrapExecutor({ cgroups }).create('bomb', limits);
    const script = 'echo "uid $(id -u)"\n( i=0; while [ $i -lt 10000 ]; do sleep 30 & i=$((i+1)); done ) 2>/dev/null\necho bomb-stopped\nexec sleep 30\n';
    const proc = sandbox.start({ argv: ['sh', '{script}'], env: { PATH: TASK_PATH }, script });
    const io = collect(proc);
    try {
      await io.waitFor('bomb-stopped');
      const pidsDir = cgroups ? taskCgroup(t, proc.pid, 'pids') : undefined;
      // With a cgroup, count its members (less bwrap's two); without, RLIMIT_NPROC counts the processes of the task's own uid.
      const uid = /^uid (\d+)$/m.exec(io.out())?.[1] ?? 'none';
      const taskProcs = pidsDir
        ? readFileSync(join(pidsDir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).length - 2
        : Number(spawnSync('pgrep', ['-c', '-U', uid], { encoding: 'utf8' }).stdout);
      assert.ok(taskProcs <= limits.maxProcesses && taskProcs >= limits.maxProcesses - 4, `${taskProcs} task processes`);
      assert.equal(spawnSync('true').status, 0, 'the host can still start processes');
      assert.equal(await proc.terminate(2_000), 'sigterm');
    } finally {
      await sandbox.dispose();
    }
  });
}

test('a task over its memory limit is killed', async (t) => {
  if (!usable(t)) return;
  const sandbox = await executor.create('mem', { ...LIMITS, memoryBytes: 64 << 20 });
  const proc = sandbox.start({
    argv: ['bash', '{script}'],
    env: { PATH: TASK_PATH },
    script: 'echo started\nperl -e \'$x = "a" x (256 << 20); print "survived\\n"\'',
  });
  const io = collect(proc);
  try {
    await io.waitFor('started');
    if (!taskCgroup(t, proc.pid, 'memory')) return;
    const exit = await proc.exited;
    assert.doesNotMatch(io.out(), /survived/);
    assert.equal(exit.code, 137, 'perl was OOM-killed (128 + SIGKILL)');
  } finally {
    await sandbox.dispose();
  }
});

test('terminate: SIGTERM ends a normal task; a task that ignores it gets SIGKILL after the grace period', async (t) => {
  if (!usable(t)) return;
  for (const [script, expected, signal] of [
    ['echo ready; sleep 1000', 'sigterm', 'SIGTERM'],
    ["trap '' TERM; echo ready; while :; do sleep 1; done", 'sigkill', 'SIGKILL'],
  ] as const) {
    const sandbox = await executor.create('term', LIMITS);
    const proc = sandbox.start({ argv: ['bash', '{script}'], env: { PATH: TASK_PATH }, script });
    try {
      await collect(proc).waitFor('ready');
      const t0 = Date.now();
      assert.equal(await proc.terminate(500), expected);
      if (expected === 'sigkill') assert.ok(Date.now() - t0 >= 450, 'waited the grace period first');
      assert.deepEqual(await proc.exited, { code: null, signal });
      assert.equal(await proc.terminate(500), 'already-exited');
    } finally {
      await sandbox.dispose();
      await sandbox.dispose(); // safe twice
    }
  }
});

test('end() leaves no process of the task (what the final status waits for); dispose() then removes its emptied cgroup', async (t) => {
  if (!usable(t)) return;
  const m = marker('end');
  const sandbox = await executor.create('end', LIMITS);
  try {
    const proc = sandbox.start({
      argv: ['bash', '{script}'],
      env: { PATH: TASK_PATH },
      script: `(exec -a ${m} sleep 1000 </dev/null >/dev/null 2>&1 &)
for i in $(seq 1 200); do pgrep -f '${m}' >/dev/null && break; sleep 0.02; done
echo up
sleep 0.5
`,
    });
    const io = collect(proc);
    await io.waitFor('up');
    const [daemon] = hostPids(m);
    assert.ok(daemon !== undefined, 'the daemon runs');
    const dir = taskCgroup(t, Number(daemon), 'pids');
    await proc.exited;
    assert.equal(typeof sandbox.end, 'function', 'the sandbox can end its task apart from removing it');
    await sandbox.end?.();
    assert.deepEqual(hostPids(m), [], 'no task process is left once end() resolves');
    if (dir) assert.equal(readFileSync(join(dir, 'cgroup.procs'), 'utf8'), '', 'its cgroup is empty');
    await sandbox.dispose();
    if (dir) assert.equal(existsSync(dir), false, `${dir} is removed by dispose()`);
  } finally {
    await sandbox.dispose();
  }
});

test("a task's cgroup is made again where another agent's start-up sweep removed the shared parent", async (t) => {
  if (!usable(t)) return;
  const first = await executor.create('parent-1', LIMITS);
  const p1 = first.start({ argv: ['true'], env: { PATH: TASK_PATH }, script: '' });
  const dir = taskCgroup(t, p1.pid, 'pids');
  await p1.exited;
  await first.dispose();
  if (!dir) return;
  // What sweepStaleCgroups does in another agent starting up: the empty `ferry` parent goes.
  const parent = join(dir, '..');
  spawnSync('rmdir', [parent]);
  if (existsSync(parent)) return t.skip(`${parent} holds another process's task cgroups`);
  const r = await run('echo again');
  assert.equal(r.out, 'again\n', r.err);
});

test('terminate right after start ends the task at once; dispose without start removes everything', async (t) => {
  if (!usable(t)) return;
  const sandbox = await executor.create('early', LIMITS);
  const proc = sandbox.start({ argv: ['sleep', '1000'], env: { PATH: TASK_PATH }, script: '' });
  const t0 = Date.now();
  assert.match(await proc.terminate(10_000), /^sig(term|kill)$/);
  assert.ok(Date.now() - t0 < 5_000, 'no full grace period for a task still being set up');
  assert.notEqual((await proc.exited).code, 0);
  await sandbox.dispose();
  const unused = await executor.create('unused', LIMITS);
  await unused.dispose();
  await unused.dispose(); // safe twice
});

test('network none cannot reach a loopback port on the host; network host can', async (t) => {
  if (!usable(t)) return;
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const probe = `echo > /dev/tcp/127.0.0.1/${port} 2>/dev/null && echo connected || echo refused; ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '`;
  try {
    const none = await run(probe, { ...LIMITS, network: 'none' });
    assert.equal(none.out.trim(), 'refused\nlo', 'only loopback exists');
    assert.equal(connections, 0);
    const host = await run(probe, { ...LIMITS, network: 'host' });
    assert.match(host.out, /^connected\n/);
    assert.equal(connections, 1);
  } finally {
    server.close();
  }
});

test('50 tasks in a row leave no processes, folders or cgroups behind', { timeout: 120_000 }, async (t) => {
  if (!usable(t)) return;
  const m = marker('fifty');
  const taskId = `fifty-${process.pid}`;
  for (let i = 0; i < 50; i++) {
    const r = await run(`(exec -a ${m} sleep 1000 </dev/null >/dev/null 2>&1 &); echo $i > /work/f; echo ok`, LIMITS, undefined, taskId);
    assert.equal(r.out, 'ok\n', r.err);
  }
  // Task folders would carry the task id; task cgroups carry this process's owner tag (cgroup.ts).
  const ours = (dir: string, prefix: string) => (existsSync(dir) ? readdirSync(dir).filter((e) => e.startsWith(prefix)) : []);
  assert.deepEqual(hostPids(m), [], 'no task process survives');
  const children = spawnSync('ps', ['--ppid', String(process.pid), '-o', 'args='], { encoding: 'utf8' }).stdout;
  assert.doesNotMatch(children, /bwrap/, `no bwrap (child of this process) is left: ${children}`);
  assert.deepEqual(ours('/tmp', `ferry-${taskId}-`), [], 'no task folder left in /tmp');
  for (const dir of ferryCgroupDirs()) assert.deepEqual(ours(dir, `ferry-${ownerTag()}-`), [], `no task cgroup left in ${dir}`);
});

test('overhead of the sandbox over a plain spawn (benchmark, reported)', { timeout: 120_000 }, async (t) => {
  if (!usable(t)) return;
  const { plainMs, sandboxMs, extraMs } = await measureOverhead(executor, 50);
  console.log(
    `# sandboxed true: median ${sandboxMs.toFixed(1)} ms (create→exit→dispose); plain spawn: ${plainMs.toFixed(1)} ms; extra ${extraMs.toFixed(1)} ms`,
  );
  assert.ok(extraMs < 1_000, 'the sandbox adds well under a second per task');
});
