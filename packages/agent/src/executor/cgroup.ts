/**
 * Per-task cgroups for the sandbox executor: a process-count and a memory ceiling, and a way to
 * kill whatever the task left behind. Prefers cgroup v2 (one hierarchy holding both controllers)
 * and falls back to the v1 `pids` and `memory` hierarchies, each used only if it is writable.
 *
 * Task cgroups nest under the agent's own cgroup (`<agent cgroup>/ferry/<name>`), not under the
 * root, so tasks stay inside whatever budget the agent itself was given.
 *
 * Per task, the small cgroupfs operations (writing a limit, reading `cgroup.procs`) are
 * synchronous: they touch kernel memory only and take microseconds, while each async one cost a
 * thread-pool round trip (three for a writeFile, five for a readFile) and woke two threads. The
 * task folder's mkdir and rmdir (which take cgroup_mutex, contended by every agent of the host),
 * the join (a write to `cgroup.procs`, which on cgroup v1 waits for an RCU grace period) and the
 * waits between kill rounds stay off the event loop.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, write, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir } from 'node:fs/promises';
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
  /** SIGKILLs every member until none is left (or tries run out); true when it is empty. Idempotent. */
  empty(): Promise<boolean>;
  /** empty(), then removes the cgroup folders. Idempotent. */
  destroy(): Promise<void>;
}

/** bwrap runs as two processes of its own (the monitor and the namespace's pid 1) in the cgroup. */
const BWRAP_PROCESSES = 2;
const PARENT = 'ferry';
const BOUNDED_TRIES = 200;
/** How many of empty()'s first re-looks come 1 ms apart (then 5 ms). */
const QUICK_LOOKS = 10;

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

/**
 * The cgroup mounts and this process's place in each hierarchy, read once per process: neither
 * changes while the agent runs, and /proc/self/mounts is re-parsed for nothing on every task
 * otherwise. (A failed read is cached too: the host has no usable cgroups then.)
 */
let discovered: Promise<{ all: Mount[]; own: Map<string, string> }> | undefined;
function discover(): Promise<{ all: Mount[]; own: Map<string, string> }> {
  discovered ??= Promise.all([mounts().catch(() => []), ownPaths().catch(() => new Map<string, string>())]).then(([all, own]) => ({ all, own }));
  return discovered;
}

/**
 * The `ferry` parents this process has already set up (made, and on v2 given the controllers):
 * a task's cgroup then costs one mkdir. A parent another agent's start-up sweep removed meanwhile
 * (it removes empty ones) makes that mkdir fail, and the parent is set up again.
 */
const readyParents = new Set<string>();

/** `<parent>/<name>`, setting the parent up (`prepare`) only the first time or when it has gone. */
async function makeTaskDir(parent: string, name: string, prepare: () => Promise<boolean>): Promise<string | undefined> {
  const dir = join(parent, name);
  // Off the event loop: making a cgroup takes cgroup_mutex, which every agent of the host contends for.
  if (
    readyParents.has(parent) &&
    (await mkdir(dir).then(
      () => true,
      () => false,
    ))
  )
    return dir;
  readyParents.delete(parent);
  if (!(await prepare()) || !(await makeDir(dir))) return undefined;
  readyParents.add(parent);
  return dir;
}

/** One write(2) on the thread pool: a join, which may wait for an RCU grace period. */
const writeOff = (fd: number, text: string) => new Promise<void>((resolve, reject) => write(fd, text, (err) => (err ? reject(err) : resolve())));

/** Whether `op` ran without throwing. */
function trySync(op: () => unknown): boolean {
  try {
    op();
    return true;
  } catch {
    return false;
  }
}

/** Sets a cgroup file (a limit, `+pids`, `cgroup.kill`): synchronous, see the header. */
async function tryWrite(file: string, value: string): Promise<boolean> {
  return Promise.resolve(trySync(() => writeFileSync(file, value)));
}

/** A cgroup file's text, or '' when it cannot be read (the cgroup is gone). */
function readSync(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** mkdir -p, retried because another task's destroy() may rmdir the shared parent in between. */
async function makeDir(dir: string): Promise<boolean> {
  for (let i = 0; i < 3; i++) if (trySync(() => mkdirSync(dir, { recursive: true }))) return true;
  return Promise.resolve(false);
}

/** Off the event loop: removing a cgroup can wait in the kernel (cgroup_mutex, held by every agent of the host), and it runs beside the final status. */
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

/** A v2 cgroup's controllers, read once per folder: on a hybrid host whose v2 tree has none, every task would read it again to learn so. */
const controllers = new Map<string, Promise<string>>();
function controllersOf(base: string): Promise<string> {
  let found = controllers.get(base);
  if (!found) {
    found = readFile(join(base, 'cgroup.controllers'), 'utf8').catch(() => '');
    controllers.set(base, found);
  }
  return found;
}

async function setUpV2(base: string, name: string, limits: SandboxLimits): Promise<Slot[]> {
  const available = await controllersOf(base);
  if (!/\bpids\b/.test(available) || !/\bmemory\b/.test(available)) return [];
  // Fails (EBUSY) when the agent's cgroup holds processes and is not the root: v2's
  // no-internal-processes rule. The agent then needs a delegated sub-cgroup (see report).
  const parent = join(base, PARENT);
  const dir = await makeTaskDir(
    parent,
    name,
    async () =>
      (await tryWrite(join(base, 'cgroup.subtree_control'), '+pids +memory')) &&
      (await makeDir(parent)) &&
      (await tryWrite(join(parent, 'cgroup.subtree_control'), '+pids +memory')),
  );
  if (!dir) return [];
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
  const parent = join(base, PARENT);
  const dir = await makeTaskDir(parent, name, () => makeDir(parent));
  if (!dir) return [];
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
  private emptied: Promise<boolean> | undefined;
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

  /**
   * The hierarchies in parallel: on cgroup v1 the first move waits for an RCU grace period (the
   * kernel's global cgroup_threadgroup_rwsem, milliseconds under load), and moves made meanwhile
   * share that wait instead of each paying their own.
   */
  async join(pids: readonly number[]): Promise<void> {
    await Promise.all(
      this.procsFiles.map(async (file) => {
        // Opened here (instant); only the writes, which may wait for the grace period, go to the thread pool.
        const fd = openSync(file, 'w');
        try {
          for (const pid of pids) await writeOff(fd, String(pid));
        } finally {
          closeSync(fd);
        }
      }),
    );
  }

  async pids(): Promise<number[]> {
    const all = new Set<number>();
    for (const file of this.procsFiles) for (const line of readSync(file).split('\n')) if (line) all.add(Number(line));
    return Promise.resolve([...all]);
  }

  async oomKills(): Promise<number> {
    let kills = 0;
    for (const slot of this.slots) {
      if (slot.controller === 'pids') continue;
      // v2: memory.events; v1: memory.oom_control, whose oom_kill line Linux 4.13+ has.
      const file = join(slot.dir, this.version === 2 ? 'memory.events' : 'memory.oom_control');
      kills += Number(/^oom_kill (\d+)$/m.exec(readSync(file))?.[1] ?? 0);
    }
    return Promise.resolve(kills);
  }

  empty(): Promise<boolean> {
    this.emptied ??= this.killAll();
    return this.emptied;
  }

  destroy(): Promise<void> {
    this.destroyed ??= this.empty().then(async () => {
      // The shared `ferry` parent stays for the next task (removeCgroupParents, at the executor's close).
      for (const slot of this.slots) await removeDir(slot.dir);
    });
    return this.destroyed;
  }

  /**
   * Looks again after 1 ms a few times, then every 5 ms: what is still listed after a task's
   * exit or a kill is usually on its way out already (bwrap's init tearing the namespace down,
   * processes killed with it) and gone within a few milliseconds, which a first 5 ms wait added
   * whole to the task's end.
   */
  private async killAll(): Promise<boolean> {
    for (let i = 0; i < BOUNDED_TRIES; i++) {
      const pids = await this.pids();
      if (pids.length === 0) return true;
      // v2's cgroup.kill (Linux 5.14+) is atomic against forks; the v1 loop catches forks next round.
      const killFile = this.version === 2 ? join(this.slots[0]?.dir ?? '', 'cgroup.kill') : '';
      if (!(killFile && (await tryWrite(killFile, '1')))) for (const pid of pids) killPid(pid);
      await delay(i < QUICK_LOOKS ? 1 : 5);
    }
    return (await this.pids()).length === 0;
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
  const { all, own } = await discover();
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
    if (existsSync(base)) slots.push(...(await setUpV1(base, controller, name, limits)));
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
  if (pid === process.pid) return (ownTag ??= `p${pid}s${startTime(pid) ?? '0'}`); // read once: every launch names a cgroup
  return `p${pid}s${startTime(pid) ?? '0'}`;
}
let ownTag: string | undefined;

const OWNED = /^ferry-p(\d+)s(\d+)-[\w.-]+$/;

/** The `ferry` parents this process's task cgroups live in: v2 and the v1 pids and memory hierarchies. */
async function ferryParents(): Promise<string[]> {
  const { all, own } = await discover();
  const dirs: string[] = [];
  const v2 = all.find((m) => m.type === 'cgroup2');
  if (v2 && own.has('')) dirs.push(join(v2.dir, own.get('') ?? '/', PARENT));
  for (const controller of ['pids', 'memory']) {
    const mount = all.find((m) => m.type === 'cgroup' && m.options.includes(controller));
    if (mount && own.has(controller)) dirs.push(join(mount.dir, own.get(controller) ?? '/', PARENT));
  }
  return dirs;
}

/** Removes this process's `ferry` parents if no task cgroup is left in them (best effort: a live neighbour's keep them busy). */
export async function removeCgroupParents(): Promise<void> {
  for (const parent of await ferryParents()) {
    readyParents.delete(parent);
    await rmdir(parent).catch(() => undefined);
  }
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
