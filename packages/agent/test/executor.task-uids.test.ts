/**
 * Each sandbox runs as a uid of its own: kernel state keyed by uid (inotify instances, the
 * keyring, process counts) is not shared between tasks, a uid is handed out again only once no
 * process has it, and agents on one host never share one. Needs root (and bwrap for the
 * sandboxed tests).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TASK_UIDS, TaskUidBlock, TaskUidsUnavailableError } from '../src/executor/task-uids.js';
import { startTask, usable } from './helpers/sandbox-run.js';

const FLOCK = '/usr/bin/flock';
const SETPRIV = '/usr/bin/setpriv';
const lockDir = mkdtempSync(join(tmpdir(), 'ferry-uid-locks-'));
after(() => rmSync(lockDir, { recursive: true, force: true }));
const hasPython = spawnSync('python3', ['-c', 'import ctypes']).status === 0;

function asRoot(t: TestContext): boolean {
  if (process.getuid?.() !== 0) t.skip('needs root (to run processes as other uids)');
  return process.getuid?.() === 0;
}

/** A host process running as `uid`, outside any sandbox: what a task's leftover would look like. */
async function processAs(uid: number): Promise<ChildProcess> {
  const child = spawn(SETPRIV, [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sh', '-c', 'echo up; exec sleep 600'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await once(child.stdout, 'data');
  return child;
}

test('concurrent tasks run as different uids from the task range, and their /work and /tmp are their own', async (t) => {
  if (!usable(t)) return;
  const tasks = await Promise.all(
    [1, 2, 3].map(() => startTask('echo "$(id -u) $(id -g) $(stat -c %u:%g /work) $(stat -c %u:%g /tmp) $(id -un)"; echo ready; exec sleep 600')),
  );
  try {
    await Promise.all(tasks.map((x) => x.io.waitFor('ready')));
    const seen = tasks.map((x) => x.io.out().split('\n')[0]?.split(' ') ?? []);
    const uids = seen.map(([uid]) => Number(uid));
    assert.equal(new Set(uids).size, 3, `three different uids: ${uids.join(', ')}`);
    for (const [uid, gid, work, tmp, name] of seen) {
      const n = Number(uid);
      assert.ok(n >= DEFAULT_TASK_UIDS.first && n < DEFAULT_TASK_UIDS.first + DEFAULT_TASK_UIDS.count, `${uid} is in the task range`);
      assert.deepEqual([gid, work, tmp, name], [uid, `${uid}:${uid}`, `${uid}:${uid}`, 'ferry']);
    }
  } finally {
    await Promise.all(tasks.map((x) => x.sandbox.dispose()));
  }
});

test("a task holding every inotify instance its uid may have does not stop a neighbour's inotify_init", async (t) => {
  if (!usable(t)) return;
  if (!hasPython) return t.skip('python3 is needed for inotify_init');
  const limit = Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
  const init = 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True)';
  const hog = await startTask(
    `${init}\nfds = []\nwhile len(fds) < 100000:\n    fd = libc.inotify_init()\n    if fd < 0: break\n    fds.append(fd)\nprint("holding", len(fds), os.strerror(ctypes.get_errno()), flush=True)\nimport time; time.sleep(600)`,
    ['python3', '{script}'],
  );
  try {
    await hog.io.waitFor(/holding \d+ .*\n/);
    assert.equal(hog.io.out(), `holding ${limit} Too many open files\n`, "the hog reached its uid's limit");
    const neighbour = await startTask(`${init}\nfd = libc.inotify_init()\nprint("inotify_init", "ok" if fd >= 0 else os.strerror(ctypes.get_errno()))`, [
      'python3',
      '{script}',
    ]);
    assert.deepEqual(await neighbour.proc.exited, { code: 0, signal: null });
    await neighbour.sandbox.dispose();
    assert.equal(neighbour.io.out(), 'inotify_init ok\n', neighbour.io.err());
  } finally {
    await hog.sandbox.dispose();
  }
});

test('a uid whose processes outlive their sandbox is handed out again only once they are gone', async (t) => {
  if (!asRoot(t)) return;
  const block = await TaskUidBlock.claim({ first: 0x7002_0000, count: 2 }, FLOCK, lockDir);
  const first = block.lease();
  const second = block.lease();
  const leftover = await processAs(first);
  block.release(first, false); // the sandbox could not prove its task gone
  block.release(second, true);
  assert.equal(block.drainingCount, 1);
  assert.equal(block.lease(), second, 'only the uid without processes comes back');
  assert.throws(() => block.lease(), TaskUidsUnavailableError, 'the other still has a process');
  leftover.kill('SIGKILL');
  await once(leftover, 'exit');
  assert.equal(block.lease(), first, 'free again once its last process ended');
  assert.equal(block.drainingCount, 0);
});

test("agents on one host hold different uid blocks, and a dead agent's block is free again", async (t) => {
  if (!asRoot(t)) return;
  const range = { first: 0x7003_0000, count: 2048 }; // two blocks of 1024
  const source = fileURLToPath(new URL('../src/executor/task-uids.ts', import.meta.url));
  const code = `import { TaskUidBlock } from ${JSON.stringify(source)}; const b = await TaskUidBlock.claim(${JSON.stringify(range)}, '${FLOCK}', ${JSON.stringify(lockDir)}); console.log(b.first); setInterval(() => {}, 1 << 30);`;
  const other = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(other.stdout, 'data')) as [Buffer];
    const theirs = Number(line.toString().trim());
    const ours = await TaskUidBlock.claim(range, FLOCK, lockDir);
    assert.notEqual(ours.first, theirs);
    assert.deepEqual([ours.first, theirs].sort(), [range.first, range.first + 1024]);
    await assert.rejects(TaskUidBlock.claim(range, FLOCK, lockDir), /all 2 task uid blocks .* are held by other agents/);
    other.kill('SIGKILL'); // a crash: the kernel drops its lock
    await once(other, 'exit');
    assert.equal((await TaskUidBlock.claim(range, FLOCK, lockDir)).first, theirs);
  } finally {
    other.kill('SIGKILL');
  }
});

test('a task uid range that would include nobody or an existing account is refused', async () => {
  await assert.rejects(TaskUidBlock.claim({ first: 65000, count: 1024 }, FLOCK, lockDir), /includes 65534 \(nobody\)/);
  const account = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find(([, , id]) => Number(id) >= 1000 && Number(id) < 65534);
  if (account) await assert.rejects(TaskUidBlock.claim({ first: Number(account[2]), count: 1 }, FLOCK, lockDir), /holds existing accounts/);
});
