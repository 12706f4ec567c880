/**
 * Tasks on one host are kept apart in the kernel too, not only in the file system: each running
 * task has a uid of its own (so per-uid state such as inotify instances is not shared), tasks
 * cannot use the kernel keyring or make user namespaces (seccomp), and nothing inside a task
 * shows where its agent keeps its data. Through the real server, two real agents with the
 * sandbox executor, and the CLI.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';
import { startFerryServer, taskShow, tempDir, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

const PY_SYSCALLS = `
import ctypes, errno, platform
libc = ctypes.CDLL(None, use_errno=True)
NR = {'x86_64': dict(bpf=321, perf_event_open=298, io_uring_setup=425, userfaultfd=323, keyctl=250, add_key=248),
      'aarch64': dict(bpf=280, perf_event_open=241, io_uring_setup=425, userfaultfd=282, keyctl=219, add_key=217)}[platform.machine()]
L = ctypes.c_long
def call(name, *args):
    r = libc.syscall(L(NR[name]), *args)
    print(name, 'ok' if r != -1 else errno.errorcode[ctypes.get_errno()])
`;

describe('tasks on one host do not share kernel state', () => {
  let server: ServerHandle;
  const agentDir = tempDir('second-agent');
  /** Background tasks this suite started; cancelled after each test, whatever happened. */
  const detached: string[] = [];

  /** Starts `script` on `target` in the background; resolves with its id once its output contains `ready`. */
  async function startDetached(target: string, script: string, ready: RegExp): Promise<{ id: string; output: string }> {
    const r = await server.cli(['run', target, '--detach', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    detached.push(id);
    const output = await waitFor(
      async () => {
        const logs = (await server.cli(['task', 'logs', id])).stdout;
        if (ready.test(logs)) return logs;
        const { status } = await taskShow(server, id);
        assert.ok(status === 'queued' || status === 'running', `task on ${target} ended early (${status}): ${logs}`);
        return undefined;
      },
      30_000,
      `task on ${target} ready`,
    );
    return { id, output };
  }

  before(async () => {
    server = await startFerryServer({ env: { FERRY_EMBEDDED_AGENT_EXECUTOR: 'sandbox' } });
    await waitForAgents(server, 1);
    for (const [name, type, agent] of [
      ['red', 'shell', 'hosted'],
      ['blue', 'shell', 'hosted'],
      ['pyred', 'python', 'hosted'],
      ['pyblue', 'python', 'hosted'],
      ['green', 'shell', 'self-hosted'],
    ] as const) {
      const r = await server.cli(['target', 'create', name, '--type', type, '--agent', agent]);
      assert.equal(r.code, 0, r.stderr);
    }
    // A second agent on the same host, as a self-hosted agent next to the hosted one would be.
    await server.startAgent(await server.joinToken(['--target', 'green']), { dataDir: agentDir, name: 'green-agent', executor: 'sandbox' });
  });
  afterEach(async () => {
    await Promise.all(detached.splice(0).map((id) => server.cli(['task', 'cancel', id])));
  });
  after(async () => {
    await server?.stop();
    rmSync(agentDir, { recursive: true, force: true });
  });

  it("concurrently running tasks, on different targets and different agents' hosts, run as different uids", async () => {
    const running = await Promise.all(
      ['red', 'blue', 'green'].map((target) => startDetached(target, 'echo "uid $(id -u) work $(stat -c %u /work)"; exec sleep 300', /uid \d+/)),
    );
    const seen = running.map(({ output }) => /uid (\d+) work (\d+)/.exec(output)?.slice(1) ?? []);
    for (const [uid, workOwner] of seen) assert.equal(workOwner, uid, "each task's /work is its own");
    const uids = seen.map(([uid]) => uid);
    assert.equal(new Set(uids).size, 3, `three different uids: ${uids.join(', ')}`);
    assert.ok(!uids.includes('65534'), 'no task runs as nobody');
  });

  it('a task cannot put a key in the kernel keyring, nor read one, so no later task can find it', async () => {
    const script = `${PY_SYSCALLS}\ncall('add_key', b'user', b'ferry-shared', b'hello', L(5), L(-4))\ncall('keyctl', L(0), L(-4), L(0))`;
    const first = await server.cli(['run', 'pyred', '-c', script]);
    assert.equal(first.stdout, 'add_key EPERM\nkeyctl EPERM\n', first.stderr);
    const later = await server.cli(['run', 'pyblue', '-c', `${PY_SYSCALLS}\ncall('keyctl', L(10), L(-4), b'user', b'ferry-shared', L(0))`]);
    assert.equal(later.stdout, 'keyctl EPERM\n', later.stderr);
  });

  it("a task holding every inotify instance its uid may have does not stop another task's inotify_init", async () => {
    const limit = Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
    const hog = await startDetached(
      'pyred',
      [
        'import ctypes, os, time',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'fds = []',
        'while len(fds) < 100000:',
        '    fd = libc.inotify_init()',
        '    if fd < 0: break',
        '    fds.append(fd)',
        'print("holding", len(fds), os.strerror(ctypes.get_errno()), flush=True)',
        'time.sleep(300)',
      ].join('\n'),
      /holding/,
    );
    assert.match(hog.output, new RegExp(`holding ${limit} Too many open files`));
    const other = await server.cli([
      'run',
      'pyblue',
      '-c',
      'import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.inotify_init()\nprint("inotify_init", "ok" if fd >= 0 else os.strerror(ctypes.get_errno()))',
    ]);
    assert.equal(other.stdout, 'inotify_init ok\n', other.stderr);
  });

  it('user namespaces cannot be made in a task: unshare -U, unshare -r and unshare(CLONE_NEWUSER) say "Operation not permitted"', async () => {
    const r = await server.cli([
      'run',
      'red',
      '-c',
      [
        'unshare -U true; echo "unshare -U exit $?"',
        'unshare -r id -u; echo "unshare -r exit $?"',
        `python3 -c 'import ctypes, os; l = ctypes.CDLL(None, use_errno=True); print("unshare(CLONE_NEWUSER):", l.unshare(0x10000000), os.strerror(ctypes.get_errno()))'`,
      ].join('\n'),
    ]);
    assert.equal(r.stdout, 'unshare -U exit 1\nunshare -r exit 1\nunshare(CLONE_NEWUSER): -1 Operation not permitted\n', r.stderr);
    assert.equal(r.stderr.match(/unshare: unshare failed: Operation not permitted/g)?.length, 2, r.stderr);
  });

  it('a task runs under seccomp (Seccomp: 2): bpf, perf_event_open, io_uring_setup, userfaultfd and keyctl return EPERM', async () => {
    const status = await server.cli(['run', 'red', '-c', 'grep "^Seccomp:" /proc/self/status']);
    assert.equal(status.stdout, 'Seccomp:\t2\n', status.stderr);
    const params = 'params = (ctypes.c_uint8 * 120)()\nattr = (ctypes.c_uint8 * 128)()\nattr[4] = 128';
    const calls = [
      "call('bpf', L(0), None, L(0))",
      "call('perf_event_open', attr, L(0), L(-1), L(-1), L(0))",
      "call('io_uring_setup', L(1), params)",
      "call('userfaultfd', L(1))",
      "call('keyctl', L(0), L(-4), L(0))",
    ];
    const r = await server.cli(['run', 'pyblue', '-c', [PY_SYSCALLS, params, ...calls].join('\n')]);
    assert.equal(r.stdout, 'bpf EPERM\nperf_event_open EPERM\nio_uring_setup EPERM\nuserfaultfd EPERM\nkeyctl EPERM\n', r.stderr);
  });

  it("nothing inside a task shows the agent's data folder: not its mounts, environment or any command line", async () => {
    const script = [
      'cat /proc/self/mountinfo',
      'tr "\\0" "\\n" < /proc/self/environ',
      'for p in /proc/[0-9]*; do tr "\\0" " " < "$p/cmdline" 2>/dev/null; echo; done',
      'ls -la /proc/self/fd /ferry',
      'pwd',
    ].join('\n');
    for (const [target, dataDir] of [
      ['red', server.dataDir],
      ['green', agentDir],
    ] as const) {
      const r = await server.cli(['run', target, '-c', script]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\/newroot \/ /, 'the mount table was read');
      for (const needle of [dataDir, 'hosted-agent', 'sandboxes', 'ferry-t_'])
        assert.ok(!r.stdout.includes(needle), `"${needle}" shows inside a task on ${target}:\n${r.stdout}`);
    }
  });
});
