/**
 * The `sandbox` executor: each task runs under bubblewrap in fresh PID, IPC, UTS, cgroup and
 * mount namespaces (plus network: empty for 'none', filtered for 'public'), as a uid and gid of its own
 * (task-uids.ts) with no capabilities, no_new_privs and a seccomp filter (seccomp/), seeing only
 * the system folders (read-only), an allow-list of /etc, its own tmpfs /work and /tmp, and its
 * script. bwrap stays pid 1 of the namespace, so when the task's main process exits the kernel
 * kills everything it started, daemons included. What runs inside, and why in that order, is in
 * bubblewrap-command.ts.
 *
 * Privilege model: bwrap runs as root WITHOUT a user namespace, and `setpriv` drops to the task's
 * uid just before the task's command. (`--unshare-user --uid N` as root maps the task to host
 * root, which could then read root-owned files such as /etc/shadow; and bwrap cannot map a task
 * to a host uid of our choosing. A user namespace per task would also need the kernel to allow
 * unprivileged ones, which the seccomp filter now forbids inside tasks.) So the agent must run as
 * root.
 *
 * Lifecycle of a sandbox: create (lease a uid, make the cgroup) → start (spawn bwrap) → dispose
 * (kill what is left, empty and remove the cgroup, release the uid). The uid goes back to the
 * pool at once only when the emptied cgroup proves the task has no process left; otherwise the
 * pool waits until /proc shows none (task-uids.ts). No folder of the task exists on the host.
 *
 * Limits: a per-task cgroup enforces maxProcesses and memoryBytes (see cgroup.ts). Without a
 * writable pids controller, maxProcesses falls back to RLIMIT_NPROC, which counts the processes
 * of the task's uid, so it is per task as well; without a memory controller, memory is not
 * limited.
 */
import { randomBytes } from 'node:crypto';
import { sandboxInvocation } from './bubblewrap-command.js';
import { hostInfo, seccompWarning, type Host } from './bubblewrap-host.js';
import { watchSandbox, type Watched } from './bubblewrap-process.js';
import { createTaskCgroup, type TaskCgroup } from './cgroup.js';
import { PublicNetworks, type PublicNetwork } from './network-public.js';
import { DEFAULT_TASK_UIDS, taskUidBlock, type TaskUidBlock, type TaskUidRange } from './task-uids.js';
import type { Executor, RunSpec, RunningProcess, Sandbox, SandboxLimits } from './types.js';

export { bubblewrapProblem, hostProblem } from './bubblewrap-host.js';

/** The wrapper joins the task cgroups before exec'ing bwrap, so no process of the task runs outside them. */
const JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';
const KILL_WAIT_MS = 5_000;

class BubblewrapSandbox implements Sandbox {
  /** The task's working folder, as the task sees it: a tmpfs inside the sandbox, nothing on the host. */
  readonly workDir = '/work';
  private running: Watched | undefined;
  private disposed: Promise<void> | undefined;

  constructor(
    private readonly host: Host,
    private readonly limits: SandboxLimits,
    private readonly uids: TaskUidBlock,
    readonly uid: number,
    private readonly cgroup: TaskCgroup | undefined,
    private readonly network: PublicNetwork | undefined,
  ) {}

  start(spec: RunSpec): RunningProcess {
    if (this.running || this.disposed) throw new Error('a sandbox runs one task once');
    const resolvConf = this.network ? { resolvConf: this.network.resolvConf } : {};
    const invocation = sandboxInvocation({ ...this.host, task: { uid: this.uid, gid: this.uid }, limits: this.limits, spec, ...resolvConf });
    this.running = watchSandbox(this.wrapper(), invocation, this.cgroup);
    return this.running.proc;
  }

  async outOfMemory(): Promise<boolean> {
    return this.cgroup?.enforces.memory === true && (await this.cgroup.oomKills()) > 0;
  }

  private wrapper(): string[] {
    const joinCgroups = this.cgroup ? ['/bin/sh', '-c', JOIN_CGROUPS, 'ferry-join', String(this.cgroup.procsFiles.length), ...this.cgroup.procsFiles] : [];
    const { prlimit } = this.host.tools;
    const nproc = !this.cgroup?.enforces.pids && prlimit ? [prlimit, `--nproc=${this.limits.maxProcesses}`, '--'] : [];
    const joinNetwork = this.network?.enter ?? [];
    return [...joinCgroups, ...nproc, ...joinNetwork];
  }

  dispose(): Promise<void> {
    this.disposed ??= this.destroy();
    return this.disposed;
  }

  private async destroy(): Promise<void> {
    try {
      if (this.running) {
        await this.running.kill();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.running.proc.exited, new Promise((r) => (timer = setTimeout(r, KILL_WAIT_MS)))]);
        clearTimeout(timer);
      }
      await this.cgroup?.destroy();
    } finally {
      // Proof that nothing of the task is left: it never started, or its cgroup is empty and gone.
      const gone = !this.running || (this.cgroup !== undefined && (await this.cgroup.pids()).length === 0);
      this.uids.release(this.uid, gone);
      await this.network?.dispose();
    }
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
}

export class BubblewrapExecutor implements Executor {
  readonly name = 'sandbox' as const;
  readonly warning = seccompWarning();
  private readonly networks: PublicNetworks;

  constructor(private readonly options: BubblewrapOptions = {}) {
    this.networks = new PublicNetworks(options.publicDns ? { dns: options.publicDns } : {});
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

  async create(taskId: string, limits: SandboxLimits): Promise<Sandbox> {
    const host = await hostInfo();
    if (typeof host === 'string') throw new Error(host);
    const uids = await taskUidBlock(this.options.taskUids ?? DEFAULT_TASK_UIDS, host.tools.flock, this.options.uidLockDir);
    const uid = uids.lease();
    let cgroup: TaskCgroup | undefined;
    try {
      const name = `ferry-${taskId.replace(/[^\w.-]/g, '_').slice(0, 64)}-${randomBytes(4).toString('hex')}`;
      cgroup = this.options.cgroups === false ? undefined : await createTaskCgroup(name, limits);
      const network = limits.network === 'public' ? await this.networks.create() : undefined;
      return new BubblewrapSandbox(host, limits, uids, uid, cgroup, network);
    } catch (err) {
      await cgroup?.destroy().catch(() => undefined);
      uids.release(uid, true); // nothing ran as it
      throw err;
    }
  }
}
