/**
 * Per-task cgroups for the sandbox executor: a process-count and a memory ceiling, and a way to
 * kill whatever the task left behind. Prefers cgroup v2 (one hierarchy holding both controllers)
 * and falls back to the v1 `pids` and `memory` hierarchies, each used only if it is writable.
 *
 * Task cgroups nest under the agent's own cgroup (`<agent cgroup>/ferry/<name>`), not under the
 * root, so tasks stay inside whatever budget the agent itself was given.
 */
import { readFileSync } from 'node:fs';
import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { SandboxLimits } from './types.js';

export interface TaskCgroup {
  readonly version: 1 | 2;
  /** Which limits this host let us enforce; the caller falls back for the rest. */
  readonly enforces: { pids: boolean; memory: boolean };
  /** The `cgroup.procs` files a process writes its pid into to join (one per hierarchy). */
  readonly procsFiles: readonly string[];
  /** Moves these processes (bwrap, before it forks anything of the task) into the cgroup. */
  join(pids: readonly number[]): Promise<void>;
  pids(): Promise<number[]>;
  /** How many processes the kernel's OOM killer killed in this cgroup (0 without a memory controller). Read before destroy(). */
  oomKills(): Promise<number>;
  /** SIGKILLs every member until none is left, then removes the cgroup folders. Idempotent. */
  destroy(): Promise<void>;
}

/** bwrap runs as two processes of its own (the monitor and the namespace's pid 1) in the cgroup. */
const BWRAP_PROCESSES = 2;
const PARENT = 'ferry';
const BOUNDED_TRIES = 200;

interface Mount {
  dir: string;
  type: string;
  options: string[];
}
interface Slot {
  dir: string;
  controller: 'pids' | 'memory' | 'both';
}

/** /proc/self/mounts escapes spaces and friends as octal (`\040`). */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

async function mounts(): Promise<Mount[]> {
  const text = await readFile('/proc/self/mounts', 'utf8');
  return text
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f.length >= 4)
    .map((f) => ({ dir: unescape(f[1] ?? ''), type: f[2] ?? '', options: (f[3] ?? '').split(',') }));
}

/** The agent's own cgroup path per v1 controller, and under '' for the v2 hierarchy. */
async function ownPaths(): Promise<Map<string, string>> {
  const text = await readFile('/proc/self/cgroup', 'utf8');
  const paths = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const controller of (m[1] ?? '').split(',')) paths.set(controller, m[2] ?? '/');
  }
  return paths;
}

async function tryWrite(file: string, value: string): Promise<boolean> {
  return writeFile(file, value).then(
    () => true,
    () => false,
  );
}

/** mkdir -p, retried because another task's destroy() may rmdir the shared parent in between. */
async function makeDir(dir: string): Promise<boolean> {
  for (let i = 0; i < 3; i++)
    if (
      await mkdir(dir, { recursive: true }).then(
        () => true,
        () => false,
      )
    )
      return true;
  return false;
}

async function removeDir(dir: string): Promise<void> {
  for (let i = 0; i < BOUNDED_TRIES; i++) {
    const err = await rmdir(dir).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    if (!err || err.code === 'ENOENT') return;
    if (err.code !== 'EBUSY') throw err;
    await delay(10); // members still exiting; v1 has no event to wait on
  }
}

async function setUpV2(base: string, name: string, limits: SandboxLimits): Promise<Slot[]> {
  const available = await readFile(join(base, 'cgroup.controllers'), 'utf8').catch(() => '');
  if (!/\bpids\b/.test(available) || !/\bmemory\b/.test(available)) return [];
  // Fails (EBUSY) when the agent's cgroup holds processes and is not the root: v2's
  // no-internal-processes rule. The agent then needs a delegated sub-cgroup (see report).
  if (!(await tryWrite(join(base, 'cgroup.subtree_control'), '+pids +memory'))) return [];
  const parent = join(base, PARENT);
  if (!(await makeDir(parent)) || !(await tryWrite(join(parent, 'cgroup.subtree_control'), '+pids +memory'))) return [];
  const dir = join(parent, name);
  if (!(await makeDir(dir))) return [];
  const ok =
    (await tryWrite(join(dir, 'pids.max'), String(limits.maxProcesses + BWRAP_PROCESSES))) &&
    (await tryWrite(join(dir, 'memory.max'), String(limits.memoryBytes)));
  if (!ok) {
    await removeDir(dir);
    return [];
  }
  await tryWrite(join(dir, 'memory.swap.max'), '0'); // optional: absent without swap accounting
  return [{ dir, controller: 'both' }];
}

async function setUpV1(base: string, controller: 'pids' | 'memory', name: string, limits: SandboxLimits): Promise<Slot[]> {
  const dir = join(base, PARENT, name);
  if (!(await makeDir(dir))) return [];
  const ok =
    controller === 'pids'
      ? await tryWrite(join(dir, 'pids.max'), String(limits.maxProcesses + BWRAP_PROCESSES))
      : await tryWrite(join(dir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
  if (!ok) {
    await removeDir(dir);
    return [];
  }
  // Optional: without it, a host with swap lets the task spill past the ceiling into swap.
  if (controller === 'memory') await tryWrite(join(dir, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
  return [{ dir, controller }];
}

class CgroupSet implements TaskCgroup {
  private destroyed: Promise<void> | undefined;
  constructor(
    readonly version: 1 | 2,
    private readonly slots: Slot[],
  ) {}

  get enforces() {
    const has = (c: 'pids' | 'memory') => this.slots.some((s) => s.controller === c || s.controller === 'both');
    return { pids: has('pids'), memory: has('memory') };
  }

  get procsFiles() {
    return this.slots.map((s) => join(s.dir, 'cgroup.procs'));
  }

  async join(pids: readonly number[]): Promise<void> {
    for (const file of this.procsFiles) for (const pid of pids) await writeFile(file, String(pid));
  }

  async pids(): Promise<number[]> {
    const all = new Set<number>();
    for (const file of this.procsFiles) {
      const text = await readFile(file, 'utf8').catch(() => '');
      for (const line of text.split('\n')) if (line) all.add(Number(line));
    }
    return [...all];
  }

  async oomKills(): Promise<number> {
    let kills = 0;
    for (const slot of this.slots) {
      if (slot.controller === 'pids') continue;
      // v2: memory.events; v1: memory.oom_control, whose oom_kill line Linux 4.13+ has.
      const file = join(slot.dir, this.version === 2 ? 'memory.events' : 'memory.oom_control');
      const text = await readFile(file, 'utf8').catch(() => '');
      kills += Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
    }
    return kills;
  }

  destroy(): Promise<void> {
    this.destroyed ??= this.killAndRemove();
    return this.destroyed;
  }

  private async killAndRemove(): Promise<void> {
    for (let i = 0; i < BOUNDED_TRIES; i++) {
      const pids = await this.pids();
      if (pids.length === 0) break;
      // v2's cgroup.kill (Linux 5.14+) is atomic against forks; the v1 loop catches forks next round.
      const killFile = this.version === 2 ? join(this.slots[0]?.dir ?? '', 'cgroup.kill') : '';
      if (!(killFile && (await tryWrite(killFile, '1')))) for (const pid of pids) killPid(pid);
      await delay(5);
    }
    for (const slot of this.slots) {
      await removeDir(slot.dir);
      // Best effort: the shared parent goes once no task uses it, so nothing is left behind.
      await rmdir(join(slot.dir, '..')).catch(() => undefined);
    }
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Makes `<agent cgroup>/ferry/<name>` with the limits set, or returns undefined when no cgroup
 * hierarchy on this host is writable (not root, read-only /sys/fs/cgroup, no controllers).
 */
export async function createTaskCgroup(name: string, limits: SandboxLimits): Promise<TaskCgroup | undefined> {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`unsafe cgroup name ${name}`);
  const [all, own] = await Promise.all([mounts().catch(() => []), ownPaths().catch(() => new Map<string, string>())]);
  const v2 = all.find((m) => m.type === 'cgroup2');
  if (v2 && own.has('')) {
    const slots = await setUpV2(join(v2.dir, own.get('') ?? '/'), name, limits);
    if (slots.length > 0) return new CgroupSet(2, slots);
  }
  const slots: Slot[] = [];
  for (const controller of ['pids', 'memory'] as const) {
    const mount = all.find((m) => m.type === 'cgroup' && m.options.includes(controller));
    if (!mount || !own.has(controller)) continue;
    const base = join(mount.dir, own.get(controller) ?? '/');
    if (
      await access(base).then(
        () => true,
        () => false,
      )
    )
      slots.push(...(await setUpV1(base, controller, name, limits)));
  }
  return slots.length > 0 ? new CgroupSet(1, slots) : undefined;
}

/** A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * This process's mark in the names of its task cgroups, `p<pid>s<start time>`: a later agent
 * tells a dead agent's cgroups (to sweep) from a live neighbour's (to leave alone), pids being reused.
 */
export function ownerTag(pid: number = process.pid): string {
  return `p${pid}s${startTime(pid) ?? '0'}`;
}

const OWNED = /^ferry-p(\d+)s(\d+)-[\w.-]+$/;

/** The `ferry` parents this process's task cgroups live in: v2 and the v1 pids and memory hierarchies. */
async function ferryParents(): Promise<string[]> {
  const [all, own] = await Promise.all([mounts().catch(() => []), ownPaths().catch(() => new Map<string, string>())]);
  const dirs: string[] = [];
  const v2 = all.find((m) => m.type === 'cgroup2');
  if (v2 && own.has('')) dirs.push(join(v2.dir, own.get('') ?? '/', PARENT));
  for (const controller of ['pids', 'memory']) {
    const mount = all.find((m) => m.type === 'cgroup' && m.options.includes(controller));
    if (mount && own.has(controller)) dirs.push(join(mount.dir, own.get(controller) ?? '/', PARENT));
  }
  return dirs;
}

/**
 * Removes the task cgroups of agents that are gone (killed with SIGKILL, a crash): their waiting
 * and running sandboxes died with them (bwrap's --die-with-parent), but the folders stay. Any
 * process still in one is killed first. Returns how many were removed. Run at agent start.
 */
export async function sweepStaleCgroups(): Promise<number> {
  let removed = 0;
  for (const parent of await ferryParents()) {
    const names = await readdir(parent).catch(() => [] as string[]);
    for (const name of names) {
      const m = OWNED.exec(name);
      if (!m || startTime(Number(m[1])) === m[2]) continue; // not ours to judge, or its agent lives
      const dir = join(parent, name);
      for (let i = 0; i < BOUNDED_TRIES; i++) {
        const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
        const pids = text.split('\n').filter(Boolean).map(Number);
        if (pids.length === 0) break;
        for (const pid of pids) killPid(pid);
        await delay(5);
      }
      await removeDir(dir).then(
        () => removed++,
        () => undefined,
      );
    }
    await rmdir(parent).catch(() => undefined); // best effort, as after a task
  }
  return removed;
}
