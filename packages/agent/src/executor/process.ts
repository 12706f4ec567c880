/**
 * The `process` executor: a plain child process in its own process group, in a fresh
 * temporary folder, with a clean environment. For hosts without bubblewrap (macOS, Windows,
 * minimal Linux). Weaker than the sandbox: the task runs as the agent's user, sees the host's
 * files, and a process that leaves its process group (setsid) can outlive the task.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Executor, ExitInfo, RunSpec, RunningProcess, Sandbox, SandboxLimits } from './types.js';

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function startInGroup(argv: readonly string[], env: Record<string, string>, cwd: string, stdin: Uint8Array | undefined): RunningProcess {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('empty command');
  const child = spawn(cmd, args, { cwd, env, stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
  if (stdin) {
    child.stdin?.on('error', () => undefined); // the task closed its stdin early: its business
    child.stdin?.end(stdin);
  }
  const { pid, stdout, stderr } = child;
  if (pid === undefined || !stdout || !stderr) throw new Error(`could not start ${cmd}`);
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('error', () => resolve({ code: 127, signal: null }));
    child.once('exit', (code, signal) => {
      // The task is its main process: whatever it left running in its group dies with it.
      killGroup(pid, 'SIGKILL');
      resolve({ code, signal });
    });
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    pid,
    stdout,
    stderr,
    exited,
    async terminate(graceMs) {
      if (done) return 'already-exited';
      killGroup(pid, 'SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([exited, timer])) !== 'timeout') return 'sigterm';
      killGroup(pid, 'SIGKILL');
      await exited;
      return 'sigkill';
    },
  };
}

class ProcessSandbox implements Sandbox {
  private started: RunningProcess | undefined;
  constructor(
    private readonly root: string,
    readonly workDir: string,
  ) {}

  start(spec: RunSpec): RunningProcess {
    const scriptFile = join(this.root, 'script');
    // Written synchronously before spawn so the file is complete when bash opens it.
    writeFileSync(scriptFile, spec.script, { mode: 0o600 });
    // Files live in the task's private folder (0700) and go with it; weaker than the sandbox's tmpfs.
    const filesDir = join(this.root, 'files');
    mkdirSync(filesDir, { mode: 0o700, recursive: true });
    for (const [name, content] of Object.entries(spec.files ?? {})) writeFileSync(join(filesDir, name), content, { mode: 0o600 });
    const argv = [...spec.argv.map((a) => (a === '{script}' ? scriptFile : a.replaceAll('{files}', filesDir))), ...(spec.args ?? [])];
    const env = Object.fromEntries(
      Object.entries({ ...spec.env, HOME: this.workDir, TMPDIR: join(this.root, 'tmp') }).map(([k, v]) => [k, v.replaceAll('{files}', filesDir)]),
    );
    this.started = startInGroup(argv, env, this.workDir, spec.stdin);
    return this.started;
  }

  async dispose(): Promise<void> {
    if (this.started) killGroup(this.started.pid, 'SIGKILL');
    await rm(this.root, { recursive: true, force: true, maxRetries: 3 });
  }
}

export class ProcessExecutor implements Executor {
  readonly name = 'process' as const;
  constructor(private readonly rootDir?: string) {}
  readonly warning =
    'executor "process": tasks run as the agent\'s user with no filesystem, process or network isolation; use --executor sandbox (bubblewrap) on Linux for real isolation';

  /**
   * Limits are not enforced by this driver (documented gap), but a task promised only public
   * endpoints is refused: it would get the host's whole network.
   */
  async create(taskId: string, limits: SandboxLimits): Promise<Sandbox> {
    const problem = await this.publicNetworkProblem();
    if (limits.network === 'public') throw new Error(`network "public" is not available on this agent: ${problem}`);
    const root = await mkdtemp(join(this.rootDir ?? tmpdir(), `ferry-${taskId}-`));
    const workDir = join(root, 'work');
    await mkdir(workDir, { mode: 0o700 });
    await mkdir(join(root, 'tmp'), { mode: 0o700 });
    await writeFile(join(root, 'script'), '', { mode: 0o600 });
    return new ProcessSandbox(root, workDir);
  }

  publicNetworkProblem(): Promise<string> {
    return Promise.resolve('the process executor has no network isolation; run the agent with --executor sandbox');
  }
}
