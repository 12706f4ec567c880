/**
 * A fresh sandbox for every task, destroyed afterwards. The same behavioural tests run
 * through the real server, agent and CLI against both executors; where the `process` executor
 * has a documented gap, the test is skipped by name with the reason.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, startFerryServer, taskShow, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

type ExecutorName = 'sandbox' | 'process';

/** What the process executor does not do (README, "Sandbox"). */
const PROCESS_GAPS: Record<string, string> = {
  credential: "process executor gap: tasks run as the agent's user and can read its files",
  processes: 'process executor gap: no PID namespace, tasks see and may signal host processes',
  setsid: "process executor gap: a process that calls setsid leaves the task's process group and survives",
  forkbomb: 'process executor gap: no process limit; a fork bomb would exhaust the host',
  network: 'process executor gap: no network isolation',
  memory: 'process executor gap: no memory limit',
};

function gap(executor: ExecutorName, name: keyof typeof PROCESS_GAPS): { skip: string } | Record<string, never> {
  return executor === 'process' ? { skip: PROCESS_GAPS[name] ?? name } : {};
}

function pgrep(pattern: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Per-task folders of this suite's embedded agent (it keeps them under its data folder). */
function taskFolders(serverDataDir: string): string[] {
  const sandboxes = join(serverDataDir, 'hosted-agent', 'sandboxes');
  return (existsSync(sandboxes) ? readdirSync(sandboxes) : []).filter((f) => f.startsWith('ferry-t_'));
}

/**
 * Task processes below `ancestor` (this suite's agent): every process not running as root, as each
 * sandboxed task runs as a uid of its own, except a pooled sandbox's shim still waiting for its
 * task (it drops to the task's uid before it waits; its command line is the shim's perl). Other
 * test files run their own sandboxed tasks at the same time, so a machine-wide count would not be
 * about this agent.
 */
function taskProcesses(ancestor: number): string[] {
  const parent = new Map<number, number>();
  const owner = new Map<number, number>();
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      parent.set(Number(p), Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0));
      owner.set(Number(p), Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1));
    } catch {
      // gone meanwhile
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parent.get(pid), hops = 0; p !== undefined && p > 1 && hops < 64; p = parent.get(p), hops++) if (p === ancestor) return true;
    return false;
  };
  const waitingShim = (pid: number): boolean => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('ferry: no hand-over on fd');
    } catch {
      return false;
    }
  };
  return [...owner].filter(([pid, u]) => u !== 0 && u !== -1 && below(pid) && !waitingShim(pid)).map(([pid]) => String(pid));
}

function mountCount(): number {
  return readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').length;
}

for (const executor of ['sandbox', 'process'] as const) {
  describe(`task isolation with the ${executor} executor`, () => {
    let server: ServerHandle;
    let agentPid = 0;

    before(async () => {
      server = await startFerryServer({ env: { FERRY_EMBEDDED_AGENT_EXECUTOR: executor, FERRY_GRACE_SECONDS: '2', FERRY_ALLOW_HOST_NETWORK: 'true' } });
      await waitForAgents(server, 1);
      const create = async (...args: string[]): Promise<void> => {
        const r = await server.cli(['target', 'create', ...args]);
        assert.equal(r.code, 0, r.stderr);
      };
      await create('box', '--type', 'shell');
      await create('net', '--type', 'shell', '--network', 'host');
      await create('bomb', '--type', 'shell', '--max-processes', '64', '--timeout', '6s');
      await create('small', '--type', 'shell', '--max-output', '64KiB');
      await create('mem', '--type', 'shell', '--memory', '64MiB');
      agentPid = Number(
        execFileSync('pgrep', ['-P', String(server.proc.child.pid)], { encoding: 'utf8' })
          .trim()
          .split('\n')[0],
      );
      assert.ok(agentPid > 0, 'found the embedded agent');
      assert.match(server.proc.stderr, new RegExp(`"executor":"${executor}"`));
    });
    after(async () => server?.stop());

    it("a task cannot read the agent's credential or the server's keys", gap(executor, 'credential'), async () => {
      const files = [join(server.dataDir, 'hosted-agent', 'agent.json'), join(server.dataDir, 'ca-key.pem'), join(server.dataDir, 'admin-token')];
      for (const f of files) assert.ok(existsSync(f), f);
      const r = await server.cli(['run', 'box', '-c', files.map((f) => `cat ${f} 2>/dev/null || echo "no ${f}"`).join('; ')]);
      assert.equal(r.stdout, files.map((f) => `no ${f}\n`).join(''));
      assert.ok(!r.stdout.includes('ferry_a_') && !r.stdout.includes('PRIVATE KEY'));
    });

    it('a task cannot see files a previous task wrote', async () => {
      const first = await server.cli([
        'run',
        'box',
        '-c',
        'echo one > "$HOME/left-home"; echo two > "$TMPDIR/left-tmp"; ls -A "$HOME" "$TMPDIR" | grep -c left',
      ]);
      assert.equal(first.stdout, '2\n');
      const second = await server.cli(['run', 'box', '-c', 'ls -A "$HOME" "$TMPDIR" | grep -c left || true']);
      assert.equal(second.stdout, '0\n');
    });

    it("a task cannot see or signal the agent or other tasks' processes", gap(executor, 'processes'), async () => {
      const marker = `ferry-other-${executor}-${Date.now()}`;
      const other = await server.cli(['run', 'box', '--detach', '-c', `echo up; exec -a ${marker} sleep 300`]);
      const otherId = other.stdout.trim();
      await waitFor(async () => (await server.cli(['task', 'logs', otherId])).stdout.includes('up'), 15_000, 'other task running');
      try {
        const r = await server.cli([
          'run',
          'box',
          '-c',
          `ps -eo args | grep -v grep | grep -c -e ${marker} -e "agent start" || true; kill -0 ${agentPid} 2>/dev/null && echo can-signal || echo cannot-signal`,
        ]);
        assert.equal(r.stdout, '0\ncannot-signal\n');
        const seen = await server.cli(['run', 'box', '-c', 'ls /proc | grep -c "^[0-9]"']);
        assert.ok(Number(seen.stdout) <= 6, `only the task's own processes are visible (saw ${seen.stdout.trim()})`);
      } finally {
        await server.cli(['task', 'cancel', otherId]);
      }
    });

    it('setsid and double-forked daemons are gone when the task ends', async (t) => {
      const daemon = `ferry-daemon-${executor}-${Date.now()}`;
      const orphan = `ferry-orphan-${executor}-${Date.now()}`;
      const script = [
        `(bash -c 'exec -a ${orphan} sleep 1000' </dev/null >/dev/null 2>&1 &)`,
        executor === 'sandbox' ? `setsid bash -c 'exec -a ${daemon} sleep 1000' </dev/null >/dev/null 2>&1 &` : 'true',
        'echo spawned',
      ].join('\n');
      const r = await server.cli(['run', 'box', '-c', script]);
      assert.equal(r.stdout, 'spawned\n');
      await waitFor(() => pgrep(orphan).length === 0, 10_000, 'double-forked process gone');
      if (executor === 'process') t.diagnostic(PROCESS_GAPS.setsid ?? '');
      else await waitFor(() => pgrep(daemon).length === 0, 10_000, 'setsid daemon gone');
    });

    it('a fork bomb ends at its limit while the agent keeps serving the next task', gap(executor, 'forkbomb'), async () => {
      const run = server.spawnCli(['run', 'bomb', '-c', 'echo lit; bomb() { bomb | bomb; }; bomb']);
      await waitFor(() => run.stdout.includes('lit'), 15_000, 'bomb started');
      let peak = 0;
      while (run.child.exitCode === null) {
        peak = Math.max(peak, taskProcesses(agentPid).length);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.notEqual(await run.exited, 0);
      assert.match(run.stderr, /task t_\w+ (timed out after|failed with exit code|was killed)/);
      assert.ok(peak > 20, `the bomb did fork (peak ${peak})`);
      assert.ok(peak <= 64 + 2, `the bomb stayed within its limit of 64 processes (peak ${peak})`);
      const next = await server.cli(['run', 'box', '-c', 'echo still-serving']);
      assert.equal(next.code, 0);
      assert.equal(next.stdout, 'still-serving\n');
      await waitFor(() => taskProcesses(agentPid).length === 0, 15_000, 'no sandboxed processes left');
    });

    it('a task over its memory limit is killed', gap(executor, 'memory'), async () => {
      const r = await server.cli(['run', 'mem', '-c', 'perl -e \'$x = "a" x (256*1024*1024); print "survived\\n"\'']);
      assert.equal(r.code, 137, r.stderr);
      assert.ok(!r.stdout.includes('survived'));
    });

    it('a task over its timeout ends as timed_out', async () => {
      const r = await server.cli(['run', 'box', '--timeout', '1s', '-c', 'echo started; sleep 60']);
      assert.equal(r.code, 124);
      assert.equal(r.stdout, 'started\n');
    });

    it('a cancelled task that traps SIGTERM is killed with SIGKILL after the grace period', async () => {
      const r = await server.cli(['run', 'box', '--detach', '-c', 'trap "echo got-TERM" TERM; echo ready; while true; do sleep 0.1; done']);
      const id = r.stdout.trim();
      await waitFor(async () => (await server.cli(['task', 'logs', id])).stdout.includes('ready'), 15_000, 'ready');
      await server.cli(['task', 'cancel', id]);
      const done = await waitFor(
        async () => {
          const s = await taskShow(server, id);
          return s.status === 'cancelled' ? s : undefined;
        },
        20_000,
        'cancelled',
      );
      assert.match(done.reason ?? '', /killed with SIGKILL after the 2 s grace period/);
      assert.match((await server.cli(['task', 'logs', id])).stdout, /got-TERM/);
    });

    it('network none cannot reach a loopback service; network host can', gap(executor, 'network'), async () => {
      // The probe closes at once: the greeting may meet a reset socket, which is no failure here.
      const listener: Server = createServer((s) => s.on('error', () => undefined).end('hello\n'));
      await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
      const port = (listener.address() as { port: number }).port;
      const probe = `(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && echo connected || echo unreachable`;
      try {
        assert.equal((await server.cli(['run', 'box', '-c', probe])).stdout, 'unreachable\n');
        assert.equal((await server.cli(['run', 'net', '-c', probe])).stdout, 'connected\n');
      } finally {
        listener.close();
      }
    });

    it('output over the limit is cut at the limit with a visible notice; the task continues', async () => {
      const r = await server.cli(['run', 'small', '-c', 'head -c 300000 /dev/zero | tr "\\0" a; echo after-limit >&2; echo done > "$HOME/x"; exit 0']);
      assert.equal(r.code, 0);
      assert.equal(r.stdoutBytes.length, 65536);
      assert.match(r.stderr, /output truncated at 64 KiB/);
      assert.ok(!r.stderr.includes('after-limit'));
    });

    it('300 tasks in a row leave no processes, folders or mounts behind', async () => {
      const mountsBefore = mountCount();
      const foldersBefore = taskFolders(server.dataDir).length;
      assert.ok(existsSync(join(server.dataDir, 'hosted-agent', 'sandboxes')), 'the agent keeps task folders in its data folder');
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) {
        const res = await api(server, 'POST', '/v1/tasks', {
          body: JSON.stringify({ target: 'box', script: `echo task ${i} > "$HOME/f"; (sleep 100 &) ; true` }),
        });
        assert.equal(res.status, 201);
        ids.push(String(res.json.id));
      }
      await waitFor(
        async () => {
          const res = await api(server, 'GET', '/v1/tasks?target=box&limit=1000');
          const tasks = (res.json.tasks as { id: string; status: string }[]).filter((x) => ids.includes(x.id));
          return tasks.length === 300 && tasks.every((x) => x.status === 'succeeded');
        },
        240_000,
        '300 tasks',
      );
      await waitFor(() => taskFolders(server.dataDir).length <= foldersBefore, 10_000, 'task folders removed');
      assert.equal(mountCount(), mountsBefore);
      if (executor === 'sandbox') await waitFor(() => taskProcesses(agentPid).length === 0, 10_000, 'no sandboxed processes');
    });
  });
}
