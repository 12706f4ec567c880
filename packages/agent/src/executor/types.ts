/**
 * Executors make a fresh sandbox per task and destroy it afterwards: create → start → dispose.
 * A runtime (shell, later SQL and cloud clients) decides *what* runs; the executor decides
 * *where* and with what isolation.
 */
import type { Readable } from 'node:stream';

export interface RunSpec {
  /** argv; the literal `{script}` is replaced by the path of the script file inside the sandbox. */
  argv: string[];
  /** The whole environment of the task: nothing is inherited from the agent. */
  env: Record<string, string>;
  script: string;
  /** The user's arguments, appended to argv as they are (no `{script}`/`{files}` substitution). */
  args?: readonly string[];
  /** Bytes for the task's stdin, through a pipe; absent: stdin is /dev/null. */
  stdin?: Uint8Array;
  /**
   * Small files the task needs (a kubeconfig): name → content. They appear in a folder the task
   * alone can see; `{files}` in an environment value is replaced by that folder's path.
   */
  files?: Record<string, string>;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningProcess {
  readonly pid: number;
  /**
   * The task's output. A 'data' chunk may be borrowed (the sandbox executor reads every pipe
   * into one reused buffer: executor/pipe-reader.ts): it is valid while its handler runs, and
   * a consumer copies what it keeps past that.
   */
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly exited: Promise<ExitInfo>;
  /** The signal ladder: SIGTERM to the whole tree, `graceMs`, then SIGKILL. Says which ended it. */
  terminate(graceMs: number): Promise<'sigterm' | 'sigkill' | 'already-exited'>;
}

export interface Sandbox {
  /** The task's working folder as the task sees it (`/work` in the bubblewrap sandbox, which keeps nothing on the host; a host folder for the process executor). */
  readonly workDir: string;
  start(spec: RunSpec): RunningProcess;
  /** After the task exited, before dispose: whether the memory limit made the kernel kill one of its processes (false where memory is not limited). */
  outOfMemory?(): Promise<boolean>;
  /**
   * Kills anything left: once it resolves, no process of the task runs. What only removes state
   * that runs nothing of the task (an emptied cgroup's folder, a public network's pasta) is
   * dispose()'s, which the runner calls after the final status. Optional: without it, dispose()
   * does both. Safe to call twice.
   */
  end?(): Promise<void>;
  /** Kills anything left and removes every file the task made. Safe to call twice. */
  dispose(): Promise<void>;
}

/** Per-task limits the executor enforces as far as the host allows (see each driver's notes). */
export interface SandboxLimits {
  /** Most processes/threads the task may have at once (a fork bomb stops here). */
  maxProcesses: number;
  /** Memory ceiling for the whole task, in bytes. */
  memoryBytes: number;
  /**
   * `none`: a private network namespace with only loopback; `public`: the internet only (see
   * network-public.ts); `host`: the host's network.
   */
  network: 'none' | 'host' | 'public';
}

export interface Executor {
  readonly name: 'process' | 'sandbox';
  /** Human-readable caveat printed at agent start, when the isolation is weak. */
  readonly warning: string | undefined;
  create(taskId: string, limits: SandboxLimits): Promise<Sandbox>;
  /** The control plane's URLs, whose addresses `public` tasks may not reach (executors that give `public`). */
  setControlPlane?(urls: readonly string[]): void;
  /** Why this executor cannot give `network: public` here, or undefined when it can. */
  publicNetworkProblem?(): Promise<string | undefined>;
  /** Removes `public` namespaces left by agents of this host that were killed; how many. */
  sweepPublicNetworks?(): Promise<number>;
  /** Releases what the executor holds between tasks (the sandbox pool's waiting sandboxes). */
  close?(): Promise<void>;
}

export const TASK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
