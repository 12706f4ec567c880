/**
 * A real `ferry agent start` with sandboxes started ahead of their tasks (the pool, on by
 * default), killed with SIGKILL and started again on its data folder: the pooled sandboxes die
 * with it (bwrap's --die-with-parent), the restarted agent removes their cgroups before its
 * first task, no folder is left, and tasks run as before. Needs root and bwrap.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFerryServer, tempDir, waitFor, type ServerHandle } from '../helpers/ferry.js';

const canSandbox = process.getuid?.() === 0 && spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-pid', 'true']).status === 0;

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
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      all.push({ pid: Number(entry), ppid: Number(rest[1]), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {
      // exited while we looked
    }
  }
  return all;
}

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

/** Task cgroups whose name marks them as the agent `pid`'s (`ferry-p<pid>s<start time>-…`), in every hierarchy of this process's cgroups. */
function cgroupsOfAgent(pid: number): string[] {
  const parents = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      const [, controllers = '', path = '/'] = l.split(':');
      if (controllers) return controllers.split(',').map((c) => join('/sys/fs/cgroup', c, path, 'ferry'));
      return [join('/sys/fs/cgroup/unified', path, 'ferry'), join('/sys/fs/cgroup', path, 'ferry')];
    });
  return parents.flatMap((dir) => (existsSync(dir) ? readdirSync(dir).filter((e) => e.startsWith(`ferry-p${pid}s`)) : []).map((e) => join(dir, e)));
}

describe('an agent with pooled sandboxes, killed with SIGKILL and restarted', { skip: canSandbox ? false : 'needs root and bwrap' }, () => {
  let server: ServerHandle;
  const dataDir = tempDir('pool-agent');
  const tmp = tempDir('pool-agent-tmp');

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
    assert.equal((await server.cli(['target', 'create', 'pooled', '--type', 'shell', '--agent', 'self-hosted'])).code, 0);
    mkdirSync(tmp, { recursive: true });
  });
  after(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('leaves no pooled sandbox, cgroup or folder behind once it has started again', { timeout: 120_000 }, async () => {
    const token = await server.joinToken(['--target', 'pooled']);
    const agent = await server.startAgent(token, { dataDir, concurrency: 2, env: { TMPDIR: tmp } });
    const pid = agent.child.pid ?? -1;
    // Two at once: the pool then keeps two sandboxes waiting.
    const runs = await Promise.all([server.cli(['run', 'pooled', '-c', 'echo one']), server.cli(['run', 'pooled', '-c', 'echo two'])]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const pooled = await waitFor(
      () => {
        const d = descendantsOf(pid);
        // The shims (perl under bwrap); the agent's spawner is a perl too, not under bwrap.
        const shims = d.filter((p) => p.comm === 'perl' && d.some((b) => b.pid === p.ppid && b.comm === 'bwrap'));
        return shims.length === 2 ? d : undefined;
      },
      30_000,
      'two pooled sandboxes waiting',
    );
    assert.ok(cgroupsOfAgent(pid).length >= 2, 'the pooled sandboxes have their cgroups');

    await agent.stop('SIGKILL');
    await waitFor(() => pooled.every((p) => !existsSync(`/proc/${p.pid}`)), 10_000, 'the pooled sandboxes to die with the agent');

    const again = await server.startAgent(token, { dataDir, concurrency: 2, env: { TMPDIR: tmp } });
    assert.deepEqual(cgroupsOfAgent(pid), [], "the restarted agent removed the killed one's cgroups before its first task");
    assert.deepEqual(readdirSync(tmp), [], 'no folder or file in the agent’s TMPDIR');
    const r = await server.cli(['run', 'pooled', '-c', 'echo after restart']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'after restart\n');
    await again.stop('SIGTERM');
    await waitFor(() => cgroupsOfAgent(again.child.pid ?? -1).length === 0, 10_000, 'a stopped agent to leave no cgroup');
  });
});
