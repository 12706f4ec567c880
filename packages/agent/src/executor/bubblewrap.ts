/**
 * The `sandbox` executor: each task runs under bubblewrap in fresh PID, IPC, UTS, cgroup and
 * mount namespaces (plus network: empty for 'none', filtered for 'public'), as a uid and gid of its own
 * (task-uids.ts) with no capabilities, no_new_privs and a seccomp filter (seccomp/), seeing only
 * the system folders (read-only), an allow-list of /etc, its own tmpfs /work and /tmp, and its
 * script. bwrap stays pid 1 of the namespace, so when the task's main process exits the kernel
 * kills everything it started, daemons included. What runs inside, and why in that order, is in
 * bubblewrap-command.ts.
 *
 * Privilege model: bwrap runs as root WITHOUT a user namespace, and the shim that starts the
 * task (bubblewrap-command.ts) drops to the task's uid in its own process before it waits for
 * the task (so a pooled sandbox waits unprivileged): no `setpriv` exec. (bwrap's `--uid`/`--gid` need `--unshare-user`, and as root
 * that maps the task to host root, which could then read root-owned files such as /etc/shadow
 * and would share one host uid between all tasks; bwrap cannot map a task to a host uid of our
 * choosing. A user namespace per task would also need the kernel to allow unprivileged ones,
 * which the seccomp filter forbids inside tasks. `--cap-drop ALL` would leave the shim no
 * CAP_SETUID to drop with.) So the agent must run as root.
 *
 * Lifecycle of a sandbox: create (lease a uid, make the cgroup, launch bwrap up to the shim
 * waiting for its task, or take such a sandbox from the pool, sandbox-pool.ts) → start (hand
 * the task over) → end (kill what is left, empty the cgroup, release the uid: what the final
 * status waits for; the pool then refills) → dispose (remove the emptied cgroup's folders and a
 * public network: after the final status, off its path; an agent killed in between leaves only
 * what its successor's start-up sweep removes).
 * The uid goes back to the block at once only when the emptied cgroup proves the task has no
 * process left; otherwise it waits until /proc shows none (task-uids.ts). No folder of the task
 * exists on the host.
 *
 * Limits: a per-task cgroup enforces maxProcesses and memoryBytes (see cgroup.ts). Without a
 * writable pids controller, maxProcesses falls back to RLIMIT_NPROC, which counts the processes
 * of the task's uid, so it is per task as well; without a memory controller, memory is not
 * limited.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { handOver, sandboxInvocation } from './bubblewrap-command.js';
import { hostInfo, seccompWarning, type Host } from './bubblewrap-host.js';
import { launchSandbox, type Launched } from './bubblewrap-process.js';
import { createTaskCgroup, ownerTag, removeCgroupParents, sweepStaleCgroups, type TaskCgroup } from './cgroup.js';
import { DEFAULT_POOL_TIMING, SandboxPool, type PoolOptions, type PoolStats } from './sandbox-pool.js';
import { PublicNetworks, type PublicNetwork } from './network-public.js';
import { DEFAULT_TASK_UIDS, taskUidBlock, type TaskUidBlock, type TaskUidRange } from './task-uids.js';
import type { Executor, RunSpec, RunningProcess, Sandbox, SandboxLimits } from './types.js';

export { bubblewrapProblem, hostProblem } from './bubblewrap-host.js';

const KILL_WAIT_MS = 5_000;
/** How long after a task's hand-over the pool refills: its shim and command start first (sandbox-pool.ts refillSoon). */
const REFILL_AFTER_START_MS = 15;

/** A task cgroup that caps processes where the last one did not, or the reverse: the sandbox is launched again with the right wrapper. */
class CgroupChanged extends Error {
  constructor() {
    super('the task cgroup changed what it limits');
  }
}

/** Who is told when a sandbox handed to a task starts and is destroyed (the pool, for its demand and refills). */
interface Claim {
  started(): void;
  done(): void;
}

class BubblewrapSandbox implements Sandbox {
  /** The task's working folder, as the task sees it: a tmpfs inside the sandbox, nothing on the host. */
  readonly workDir = '/work';
  private started = false;
  private claim: Claim | undefined;
  private ended: Promise<void> | undefined;
  private disposed: Promise<void> | undefined;
  /** bwrap has been reaped (its exit reported by the spawner). */
  private exited = false;

  constructor(
    private readonly launched: Launched,
    private readonly uids: TaskUidBlock,
    readonly uid: number,
    private readonly cgroup: TaskCgroup | undefined,
    private readonly network: PublicNetwork | undefined,
  ) {
    void launched.exited.then(() => (this.exited = true));
  }

  get ready(): Promise<boolean> {
    return this.launched.ready;
  }

  /** Handed to a task: `claim` hears of its start and its end. */
  claimed(claim: Claim): this {
    this.claim = claim;
    return this;
  }

  start(spec: RunSpec): RunningProcess {
    if (this.started || this.ended) throw new Error('a sandbox runs one task once');
    this.started = true;
    const proc = this.launched.start(handOver(spec), spec.stdin);
    this.claim?.started();
    return proc;
  }

  async outOfMemory(): Promise<boolean> {
    return this.cgroup?.enforces.memory === true && (await this.cgroup.oomKills()) > 0;
  }

  /**
   * The task's processes all dead and its uid released: what the final status waits for, so a
   * finished task has nothing left running on this machine. Its public network (pasta, which
   * runs none of the task's code) and its emptied cgroup's folders go in dispose().
   */
  end(): Promise<void> {
    this.ended ??= this.killAll();
    return this.ended;
  }

  /**
   * end(), then what the task left that runs nothing of it removed: the emptied cgroup's folders,
   * a public network's namespace and pasta. The task runner calls this once the final status is
   * delivered (task-runner.ts), so neither the kernel's cgroup locks nor pasta's exit competes
   * with the status.
   */
  dispose(): Promise<void> {
    this.disposed ??= this.end().finally(() => Promise.all([this.cgroup?.destroy(), this.network?.dispose()]));
    return this.disposed;
  }

  private async killAll(): Promise<void> {
    let noneLeft = false;
    try {
      // Exited: bwrap is reaped, so only the cgroup's members are left to kill, which empty() does.
      if (!this.exited) await this.launched.kill();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.launched.exited, new Promise((r) => (timer = setTimeout(r, KILL_WAIT_MS)))]);
      clearTimeout(timer);
      noneLeft = (await this.onlyInitLeaving()) || (await this.cgroup?.empty()) === true;
    } finally {
      // Proof that nothing runs as the uid any more: no process of the sandbox is left in its
      // cgroup, which none can leave, and whose members alone could fork a new one (so its
      // removal can wait). A sandbox that never got a task needs it too: its shim waited as the
      // uid. Without a cgroup the uid drains until /proc shows none (task-uids.ts).
      const gone = noneLeft || (this.cgroup !== undefined && (await this.cgroup.pids()).length === 0);
      this.uids.release(this.uid, gone);
      // The pool's refill starts here, as it did before the removal moved after the status: a
      // refill begun at the removal (after the status's delivery, beside the next claim) or
      // after it (once the exiting init had left) measured no better, the latter lowered tasks/s
      // in 7 of 7 back-to-back pairs (bench/README.md).
      this.claim?.done();
    }
  }

  /**
   * Whether the cgroup holds nothing but bwrap's init on its way out (or nothing at all), once
   * bwrap has exited. bwrap's outer process exits as soon as the init reports the task's exit
   * code, while the init is still tearing the namespace down (its mounts wait for an RCU grace
   * period): measured, a quarter of trivial tasks under load found it still listed, for ~1.6 ms
   * at the median. Nothing of the task runs then: a task process would be listed too (none can
   * leave the cgroup), and the init (root, no task code) forks nothing once exiting. Its own
   * departure is left to dispose(), which waits for the cgroup to empty before removing it.
   */
  private async onlyInitLeaving(): Promise<boolean> {
    if (!this.exited || !this.cgroup) return false;
    const left = await this.cgroup.pids();
    return left.length === 0 || (left.length === 1 && left[0] === this.launched.initPid && exiting(this.launched.initPid));
  }
}

/** PF_EXITING in a process's flags (field 9 of /proc/<pid>/stat): it has begun to exit. */
const PF_EXITING = 0x4;

/** Whether `pid` has begun to exit; false when it cannot be read (a new process may have its pid). */
function exiting(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6]) & PF_EXITING) !== 0;
  } catch {
    return false;
  }
}

export interface BubblewrapOptions {
  /** false forces the rlimit fallback (for tests and for hosts where cgroups misbehave). */
  cgroups?: boolean;
  /** The host uids tasks run as (default DEFAULT_TASK_UIDS); agents on one host split it in blocks. */
  taskUids?: TaskUidRange;
  /** Where the block locks live (default /run/ferry/task-uids); every agent of a host must share it. */
  uidLockDir?: string;
  /** Resolvers for `network: public` tasks (default DEFAULT_PUBLIC_DNS). */
  publicDns?: readonly string[];
  /** Sandboxes started ahead of their tasks (sandbox-pool.ts): at most `max` waiting; absent or 0, none. */
  pool?: Partial<PoolOptions> & { max: number };
}

const poolKey = (l: SandboxLimits) => `${l.network}:${l.maxProcesses}:${l.memoryBytes}`;

export class BubblewrapExecutor implements Executor {
  readonly name = 'sandbox' as const;
  readonly warning = seccompWarning();
  private readonly networks: PublicNetworks;
  private readonly pool: SandboxPool<BubblewrapSandbox, SandboxLimits> | undefined;
  /** Whether this host's task cgroups cap processes (else RLIMIT_NPROC does): known after the first launch. */
  private cgroupCapsPids: boolean | undefined;

  constructor(private readonly options: BubblewrapOptions = {}) {
    this.networks = new PublicNetworks(options.publicDns ? { dns: options.publicDns } : {});
    const pool = options.pool;
    if (pool && pool.max > 0) this.pool = new SandboxPool((limits) => this.launch(limits), poolKey, { ...DEFAULT_POOL_TIMING, ...pool });
  }

  setControlPlane(urls: readonly string[]): void {
    this.networks.setControlPlane(urls);
  }

  publicNetworkProblem(): Promise<string | undefined> {
    return this.networks.problem();
  }

  /** Namespaces (and their pasta) left by agents of this host that were killed; how many were removed. */
  sweepPublicNetworks(): Promise<number> {
    return this.networks.sweep();
  }

  /**
   * Removes what agents killed on this host left behind: their task cgroups (their sandboxes
   * died with them, bwrap having --die-with-parent). Called once at agent start.
   */
  static sweep(): Promise<number> {
    return sweepStaleCgroups();
  }

  async create(_taskId: string, limits: SandboxLimits): Promise<Sandbox> {
    const pool = this.pool;
    if (!pool) return this.launch(limits);
    let sandbox = await pool.take(limits);
    if (!sandbox) {
      try {
        sandbox = await this.launch(limits);
      } catch (err) {
        pool.done(limits);
        throw err;
      }
    }
    return sandbox.claimed({
      started: () => pool.refillSoon(REFILL_AFTER_START_MS),
      done: () => {
        pool.done(limits);
        pool.refillSoon();
      },
    });
  }

  /** The pool's counters, for tests and the bench (undefined without a pool). */
  get poolStats(): PoolStats | undefined {
    return this.pool?.stats;
  }

  /**
   * Destroys the waiting sandboxes; sandboxes handed to tasks are their runners' to dispose.
   * Then the shared `ferry` cgroup parents go if no task of this agent (or a neighbour's) is in them.
   */
  async close(): Promise<void> {
    await this.pool?.close();
    await removeCgroupParents();
  }

  /** A new sandbox, up to the shim waiting for its task: a uid leased, its cgroup made and joined. */
  private async launch(limits: SandboxLimits, retried = false): Promise<BubblewrapSandbox> {
    const host = await hostInfo();
    if (typeof host === 'string') throw new Error(host);
    const uids = await taskUidBlock(this.options.taskUids ?? DEFAULT_TASK_UIDS, host.tools.flock, this.options.uidLockDir);
    const uid = uids.lease();
    let cgroup: TaskCgroup | undefined;
    let network: PublicNetwork | undefined;
    // Named for this agent, not a task: a pooled sandbox has no task yet, and a later agent
    // sweeps the cgroups of a dead one by this name (cgroup.ts).
    const name = `ferry-${ownerTag()}-${randomBytes(6).toString('hex')}`;
    const made = this.options.cgroups === false ? Promise.resolve(undefined) : createTaskCgroup(name, limits);
    const settled = made.then(
      (c) => (cgroup = c),
      () => undefined,
    );
    try {
      // bwrap starts while its cgroup is made (it waits on --block-fd until it is joined). Its
      // wrapper depends on whether the cgroup caps processes: the first launch waits to know,
      // later ones assume what the last cgroup did and are redone if this one differs.
      this.cgroupCapsPids ??= (await made)?.enforces.pids ?? false;
      const capsPids = this.cgroupCapsPids;
      // A public sandbox's namespace, filter and pasta are made here, before any task (and so
      // any secret) is handed over; a pooled one keeps them while it waits.
      network = limits.network === 'public' ? await this.networks.create() : undefined;
      const resolvConf = network ? { resolvConf: network.resolvConf } : {};
      const invocation = sandboxInvocation({ ...host, task: { uid, gid: uid }, limits, ...resolvConf });
      const joinable = made.then((c) => {
        if ((c?.enforces.pids ?? false) === capsPids) return c;
        this.cgroupCapsPids = c?.enforces.pids ?? false;
        throw new CgroupChanged();
      });
      joinable.catch(() => undefined); // seen by launchSandbox, unless bwrap failed first
      const launched = await launchSandbox(this.wrapper(host, limits, capsPids, network), invocation, joinable);
      await settled;
      return new BubblewrapSandbox(launched, uids, uid, cgroup, network);
    } catch (err) {
      await settled;
      await cgroup?.destroy().catch(() => undefined);
      await network?.dispose().catch(() => undefined);
      uids.release(uid, true); // nothing ran as it: the shim, which drops to it, starts only once bwrap is released
      if (err instanceof CgroupChanged && !retried) return this.launch(limits, true);
      throw err;
    }
  }

  /** Without a pids cgroup, RLIMIT_NPROC (counted per uid, so per task) caps the processes instead. */
  private wrapper(host: Host, limits: SandboxLimits, cgroupCapsPids: boolean, network: PublicNetwork | undefined): string[] {
    const { prlimit } = host.tools;
    const nproc = !cgroupCapsPids && prlimit ? [prlimit, `--nproc=${limits.maxProcesses}`, '--'] : [];
    // Both exec (no fork), so the pid bwrap reports on --info-fd is still the sandbox's.
    return [...nproc, ...(network?.enter ?? [])];
  }
}
