/**
 * The `sandbox` executor: each task runs under bubblewrap in fresh PID, IPC, UTS, cgroup and
 * mount namespaces (plus network when limits.network is 'none'), as uid/gid 65534 with no
 * capabilities and no_new_privs, seeing only the system folders (read-only), an allow-list of
 * /etc, its own /work and /tmp, and its script. bwrap stays pid 1 of the namespace, so when the
 * task's main process exits the kernel kills everything it started, daemons included.
 *
 * Privilege model: bwrap runs as root WITHOUT a user namespace and `setpriv` drops to 65534 just
 * before the task's command. (`--unshare-user --uid 65534` as root maps the task to host root,
 * which could then read root-owned files such as /etc/shadow.) So the agent must run as root.
 *
 * Limits: a per-task cgroup enforces maxProcesses and memoryBytes (see cgroup.ts). Without a
 * writable pids controller, maxProcesses falls back to RLIMIT_NPROC, which counts every process
 * of uid 65534 on the host (shared by concurrent tasks); without a memory controller, memory is
 * not limited.
 */
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { access, chown, lstat, mkdir, mkdtemp, readlink, rm } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createTaskCgroup, type TaskCgroup } from './cgroup.js';
import { TASK_PATH, type Executor, type ExitInfo, type RunSpec, type RunningProcess, type Sandbox, type SandboxLimits } from './types.js';

const TASK_UID = 65534;
const TASK_GID = 65534;
const SCRIPT_PATH = '/ferry/script';
function tmpfs(path: string, bytes: number): string[] {
  return ['--perms', '1777', '--size', String(bytes), '--tmpfs', path];
}

/** Where a RunSpec's files appear inside the sandbox (a tmpfs of its own). */
const FILES_PATH = '/ferry/files';
/** What of /etc a task gets: name resolution, users, TLS roots, linker and locale data, not the rest (agent configs, keys). */
const ETC_ALLOWED = [
  'alternatives',
  'ca-certificates',
  'ca-certificates.conf',
  'crypto-policies',
  'debian_version',
  'gai.conf',
  'group',
  'host.conf',
  'hostname',
  'hosts',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'localtime',
  'mime.types',
  'nsswitch.conf',
  'os-release',
  'passwd',
  'pki',
  'protocols',
  'resolv.conf',
  'services',
  'ssl',
  'timezone',
];
/** The wrapper joins the task cgroups before exec'ing bwrap, so no process of the task runs outside them. */
const JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';

interface Tools {
  bwrap: string;
  setpriv: string;
  prlimit: string | undefined;
}
interface Host {
  tools: Tools;
  mounts: string[];
}

async function findTool(name: string): Promise<string | undefined> {
  for (const dir of TASK_PATH.split(':')) {
    const file = join(dir, name);
    if (
      await access(file).then(
        () => true,
        () => false,
      )
    )
      return file;
  }
  return undefined;
}

/** The host's top-level system folders as they are: merged-/usr symlinks stay symlinks. */
async function systemMounts(): Promise<string[]> {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const name of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const path = `/${name}`;
    const stat = await lstat(path).catch(() => undefined);
    if (stat?.isSymbolicLink()) args.push('--symlink', await readlink(path), path);
    else if (stat?.isDirectory()) args.push('--ro-bind', path, path);
  }
  // Explicit modes: bwrap as root makes the parents of its mount points 0700, closed to the task.
  args.push('--perms', '0755', '--dir', '/etc', '--perms', '0755', '--dir', '/ferry');
  for (const name of ETC_ALLOWED) args.push('--ro-bind-try', `/etc/${name}`, `/etc/${name}`);
  return [...args, '--proc', '/proc', '--dev', '/dev'];
}

function namespaceArgs(network: SandboxLimits['network']): string[] {
  const net = network === 'none' ? ['--unshare-net'] : [];
  return ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', ...net, '--hostname', 'ferry', '--die-with-parent', '--new-session'];
}

function dropPrivileges(setpriv: string): string[] {
  return [setpriv, `--reuid=${TASK_UID}`, `--regid=${TASK_GID}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--'];
}

let hostCache: Promise<Host | string> | undefined;

async function inspectHost(): Promise<Host | string> {
  if (process.platform !== 'linux') return 'bubblewrap needs Linux';
  const [bwrap, setpriv, prlimit] = await Promise.all([findTool('bwrap'), findTool('setpriv'), findTool('prlimit')]);
  if (!bwrap) return 'bwrap is not installed';
  if (!setpriv) return 'setpriv (util-linux) is not installed';
  const mounts = await systemMounts();
  const args = [...namespaceArgs('none'), ...mounts, '--clearenv', '--', ...dropPrivileges(setpriv), '/usr/bin/true'];
  const stderr = await new Promise<string | undefined>((resolve) => {
    execFile(bwrap, args, { timeout: 10_000 }, (err, _out, errText) => resolve(err ? errText.trim() || err.message : undefined));
  });
  if (stderr !== undefined) return `bwrap cannot create the sandbox here (the agent must run as root): ${stderr}`;
  return { tools: { bwrap, setpriv, prlimit }, mounts };
}

/** undefined when the sandbox works on this host, else a short reason. Tried once, then cached. */
export async function bubblewrapProblem(): Promise<string | undefined> {
  const host = await hostInfo();
  return typeof host === 'string' ? host : undefined;
}

function hostInfo(): Promise<Host | string> {
  hostCache ??= inspectHost().catch((err: Error) => `bwrap cannot be checked here: ${err.message}`);
  return hostCache;
}

/** Host pids under `root` (not `root` itself), from /proc. Every task process is one: orphans reparent to bwrap, pid 1 inside. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  for (let queue = [root]; queue.length > 0 && found.length < 100_000;) {
    const next = children.get(queue.shift() ?? -1) ?? [];
    found.push(...next);
    queue.push(...next);
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** bwrap exits 128+N when the task died of signal N; only a signal we sent is reported as one, as a script may `exit 143` itself. */
function exitInfo(code: number | null, sig: NodeJS.Signals | null, sent: ReadonlySet<NodeJS.Signals>): ExitInfo {
  const name =
    code !== null && code > 128 ? (Object.entries(osConstants.signals).find(([, n]) => n === code - 128)?.[0] as NodeJS.Signals | undefined) : undefined;
  return name && sent.has(name) ? { code: null, signal: name } : { code, signal: sig };
}

interface Watched {
  proc: RunningProcess;
  kill(): Promise<void>;
}

function watch(argv: string[], args: string, cwd: string, cgroup: TaskCgroup | undefined, files: readonly string[] = []): Watched {
  const [cmd, ...rest] = argv;
  if (!cmd) throw new Error('empty command');
  // env {}: the task's environment travels in the args file, not through the wrapper.
  // Files (e.g. a kubeconfig) travel through pipes on fds 4, 5, …: bwrap copies them into the
  // sandbox's own tmpfs, so their contents never touch the host's disk.
  // bwrap's own options (with the task's environment, so its secrets) arrive on fd 3 through a
  // pipe as well: nothing of them is written to disk or shown on a command line.
  const child = spawn(cmd, rest, { cwd, env: {}, stdio: ['ignore', 'pipe', 'pipe', 'pipe', ...files.map(() => 'pipe' as const)], detached: true });
  [args, ...files].forEach((content, i) => {
    const pipe = child.stdio[3 + i] as import('node:stream').Writable | null;
    pipe?.on('error', () => undefined);
    pipe?.end(content);
  });
  const { pid, stdout, stderr } = child;
  if (pid === undefined || !stdout || !stderr) throw new Error(`could not start ${cmd}`);
  const sent = new Set<NodeJS.Signals>();
  let done = false;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('error', () => resolve({ code: 127, signal: null }));
    child.once('exit', (code, sig) => resolve(exitInfo(code, sig, sent)));
  }).finally(() => (done = true));
  const killAll = async () => {
    sent.add('SIGKILL');
    // Once bwrap is reaped its pid may be reused: only the cgroup's members are then surely ours.
    // pid 1 of the namespace (a child of bwrap) dying takes every task process with it.
    if (!done) for (const p of [-pid, pid, ...descendants(pid)]) signal(p, 'SIGKILL');
    for (const p of (await cgroup?.pids()) ?? []) signal(p, 'SIGKILL');
  };
  const proc: RunningProcess = {
    pid,
    stdout,
    stderr,
    exited,
    async terminate(graceMs) {
      if (done) return 'already-exited';
      // Not bwrap itself: it would die at once and --die-with-parent would SIGKILL the task with no grace.
      // The namespace's pid 1 ignores it (no handler), so the task's processes are the ones that get it.
      const targets = descendants(pid);
      // Only bwrap's pid 1, if that: still setting up, so there is no task to be graceful to.
      const settingUp = targets.length <= 1;
      if (!settingUp) sent.add('SIGTERM');
      if (!settingUp) for (const p of targets) signal(p, 'SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), settingUp ? 0 : graceMs).unref());
      if ((await Promise.race([exited, timer])) !== 'timeout') return 'sigterm';
      await killAll();
      await exited;
      return 'sigkill';
    },
  };
  return { proc, kill: killAll };
}

class BubblewrapSandbox implements Sandbox {
  readonly workDir: string;
  private running: Watched | undefined;
  private disposed: Promise<void> | undefined;

  constructor(
    private readonly root: string,
    private readonly limits: SandboxLimits,
    private readonly cgroup: TaskCgroup | undefined,
    private readonly host: Host,
  ) {
    this.workDir = join(root, 'work');
  }

  start(spec: RunSpec): RunningProcess {
    if (this.running || this.disposed) throw new Error('a sandbox runs one task once');
    const scriptFile = join(this.root, 'script');
    writeFileSync(scriptFile, spec.script, { mode: 0o444 });
    const files = Object.entries(spec.files ?? {});
    const env = Object.fromEntries(Object.entries({ ...spec.env, HOME: '/work', TMPDIR: '/tmp' }).map(([k, v]) => [k, v.replaceAll('{files}', FILES_PATH)]));
    const fileArgs =
      files.length === 0
        ? []
        : ['--perms', '0755', '--tmpfs', FILES_PATH, ...files.flatMap(([name], i) => ['--perms', '0444', '--file', String(4 + i), `${FILES_PATH}/${name}`])];
    const options = [
      ...namespaceArgs(this.limits.network),
      ...this.host.mounts,
      // /work and /tmp are tmpfs of the task's own: their pages count against its memory limit
      // and their size is capped, so a task cannot fill the host's disk (the host folder holds
      // only the script). World-writable is harmless: only the task's uid lives in here.
      ...tmpfs('/work', this.limits.memoryBytes),
      ...tmpfs('/tmp', this.limits.memoryBytes),
      '--ro-bind',
      scriptFile,
      SCRIPT_PATH,
      ...fileArgs,
      '--chdir',
      '/work',
      '--clearenv',
      ...Object.entries(env).flatMap(([k, v]) => ['--setenv', k, v]),
    ];
    // Options go through fd 3 (`--args 3`) so the environment never shows in the host's `ps`.
    const args = options.map((o) => `${o}\0`).join('');
    const command = spec.argv.map((a) => (a === '{script}' ? SCRIPT_PATH : a.replaceAll('{files}', FILES_PATH)));
    this.running = watch(
      [...this.limiter(), this.host.tools.bwrap, '--args', '3', ...dropPrivileges(this.host.tools.setpriv), ...command],
      args,
      this.root,
      this.cgroup,
      files.map(([, c]) => c),
    );
    return this.running.proc;
  }

  private limiter(): string[] {
    const joinCgroups = this.cgroup ? ['/bin/sh', '-c', JOIN_CGROUPS, 'ferry-join', String(this.cgroup.procsFiles.length), ...this.cgroup.procsFiles] : [];
    const { prlimit } = this.host.tools;
    const nproc = !this.cgroup?.enforces.pids && prlimit ? [prlimit, `--nproc=${this.limits.maxProcesses}`, '--'] : [];
    return [...joinCgroups, ...nproc];
  }

  dispose(): Promise<void> {
    this.disposed ??= this.destroy();
    return this.disposed;
  }

  private async destroy(): Promise<void> {
    if (this.running) {
      await this.running.kill();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.running.proc.exited, new Promise((r) => (timer = setTimeout(r, 5_000)))]);
      clearTimeout(timer);
    }
    await this.cgroup?.destroy();
    await rm(this.root, { recursive: true, force: true, maxRetries: 3 });
  }
}

export class BubblewrapExecutor implements Executor {
  readonly name = 'sandbox' as const;
  readonly warning = undefined;

  /** `cgroups: false` forces the rlimit fallback (for tests and for hosts where cgroups misbehave). */
  /** `rootDir`: where per-task folders go (the agent uses its data folder, so it can sweep them after a crash). */
  constructor(private readonly options: { cgroups?: boolean; rootDir?: string } = {}) {}

  async create(taskId: string, limits: SandboxLimits): Promise<Sandbox> {
    const host = await hostInfo();
    if (typeof host === 'string') throw new Error(host);
    const root = await mkdtemp(join(this.options.rootDir ?? tmpdir(), `ferry-${taskId.replace(/[^\w.-]/g, '_').slice(0, 64)}-`));
    try {
      for (const dir of ['work', 'tmp']) {
        await mkdir(join(root, dir), { mode: 0o700 });
        await chown(join(root, dir), TASK_UID, TASK_GID);
      }
      const cgroup = this.options.cgroups === false ? undefined : await createTaskCgroup(basename(root), limits);
      return new BubblewrapSandbox(root, limits, cgroup, host);
    } catch (err) {
      await rm(root, { recursive: true, force: true });
      throw err;
    }
  }
}
