/**
 * Can this host run the sandbox? Finds the tools, builds the system mounts once, picks this
 * architecture's seccomp program, and runs one real sandbox (the whole chain, filter included)
 * to prove it. Tried once per process, then cached.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { handOver, sandboxInvocation, shimSyscalls, systemMounts, type SandboxTools, type Syscalls } from './bubblewrap-command.js';
import { launchSandbox } from './bubblewrap-process.js';
import { SECCOMP_PROGRAMS } from './seccomp/programs.generated.js';
import { TASK_PATH } from './types.js';

export interface Host {
  tools: SandboxTools;
  mounts: string[];
  /** undefined on an architecture without a generated program (see seccompWarning). */
  seccomp: Uint8Array | undefined;
  /** The shim's system call numbers on this architecture. */
  syscalls: Syscalls;
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

/** The tools, or what is missing and which Debian package has it. */
async function findTools(): Promise<SandboxTools | string> {
  const needed = { bwrap: 'bubblewrap', flock: 'util-linux', perl: 'perl-base' } as const;
  const found: Partial<Record<keyof typeof needed, string>> = {};
  for (const [name, pkg] of Object.entries(needed) as [keyof typeof needed, string][]) {
    const path = await findTool(name);
    if (!path) return `${name} is not installed (Debian/Ubuntu package ${pkg})`;
    found[name] = path;
  }
  const { bwrap, flock, perl } = found as Record<keyof typeof needed, string>;
  return { bwrap, flock, perl, prlimit: await findTool('prlimit') };
}

/** Why isolation is weaker on this architecture, if it is: no generated seccomp program for it. */
export function seccompWarning(arch: NodeJS.Architecture = process.arch): string | undefined {
  if (SECCOMP_PROGRAMS[arch]) return undefined;
  return `executor "sandbox": no seccomp filter is built for ${arch} (only x64 and arm64), so tasks may make any system call their uid allows, user namespaces included`;
}

function seccompFor(arch: NodeJS.Architecture): Uint8Array | undefined {
  const program = SECCOMP_PROGRAMS[arch];
  return program ? Buffer.from(program, 'base64') : undefined;
}

/** Runs `true` in a sandbox built exactly as a task's is; resolves to bwrap's or the shim's complaint, or undefined. */
async function probe(host: Host): Promise<string | undefined> {
  const invocation = sandboxInvocation({ ...host, task: { uid: 65534, gid: 65534 }, limits: { maxProcesses: 16, memoryBytes: 16 << 20, network: 'none' } });
  let launched;
  try {
    launched = await launchSandbox([], invocation, undefined);
  } catch (err) {
    return (err as Error).message;
  }
  const proc = launched.start(handOver({ argv: ['true'], env: { PATH: TASK_PATH }, script: '' }), undefined);
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout.resume();
  const timer = setTimeout(() => void launched.kill(), 10_000);
  const exit = await proc.exited;
  clearTimeout(timer);
  return exit.code === 0 ? undefined : stderr.trim() || `exit ${exit.code ?? exit.signal}`;
}

/** The first thing that stops the sandbox on a host, before trying it: the platform, then who the agent runs as. */
export function hostProblem(
  platform: NodeJS.Platform = process.platform,
  uid: number | undefined = process.getuid?.(),
  arch: NodeJS.Architecture = process.arch,
): string | undefined {
  if (platform !== 'linux') return `the bubblewrap sandbox needs Linux, and this is ${platform}`;
  // bwrap runs as root without a user namespace (bubblewrap.ts): as any other user it fails with
  // a message about namespaces or capabilities that hides the real cause.
  if (uid !== 0) return `the bubblewrap sandbox needs root, and this agent runs as uid ${uid ?? '?'}; start it as root (sudo, or a service run as root)`;
  if (!shimSyscalls(arch)) return `the bubblewrap sandbox supports x64, arm64, riscv64 and loong64, and this is ${arch}`;
  return undefined;
}

async function inspectHost(): Promise<Host | string> {
  const first = hostProblem();
  if (first !== undefined) return first;
  const tools = await findTools();
  if (typeof tools === 'string') return tools;
  const syscalls = shimSyscalls();
  if (!syscalls) return `no system call numbers for ${process.arch}`;
  const host: Host = { tools, mounts: await systemMounts(), seccomp: seccompFor(process.arch), syscalls };
  const problem = await probe(host);
  if (problem !== undefined) return `bwrap could not create a test sandbox: ${problem}`;
  return host;
}

let hostCache: Promise<Host | string> | undefined;

export function hostInfo(): Promise<Host | string> {
  hostCache ??= inspectHost().catch((err: Error) => `bwrap cannot be checked here: ${err.message}`);
  return hostCache;
}

/** undefined when the sandbox works on this host, else a short reason. Tried once, then cached. */
export async function bubblewrapProblem(): Promise<string | undefined> {
  const host = await hostInfo();
  return typeof host === 'string' ? host : undefined;
}
