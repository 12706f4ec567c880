/**
 * What bubblewrap is told for one task, and the chain of programs that runs inside the sandbox:
 *
 *   bwrap --args 3 …        root, fresh namespaces; loads the seccomp filter, then execs
 *    └ sh -c 'chown …'      root, an empty environment: makes /work and /tmp the task's own
 *       └ setpriv …         drops to the task's uid and gid, no groups, no capabilities at all
 *          └ perl -e SHIM   the task's uid: reads the task's environment from a pipe, closes
 *             │             every other inherited descriptor, execs the command
 *             └ command     the task's uid, exactly the task's environment
 *
 * The environment reaches the task only after the privilege drop. Everything before it runs as
 * root, and the dynamic loader honours LD_AUDIT, GLIBC_TUNABLES, GCONV_PATH and friends for root
 * as for anyone; with the task's environment there (secrets are environment variables with names
 * users choose), root could be made to load a library the task supplied (its script, a file).
 *
 * Nothing of the agent's folders reaches the sandbox. The script, the runtime's files and the
 * sandbox's /etc/passwd and /etc/group are copied by bwrap from pipes (`--file FD`) into its own
 * tmpfs; /work and /tmp are tmpfs too. So /proc/self/mountinfo lists only the system folders and
 * anonymous tmpfs, and nothing of the task lives on the host's disk, even for a moment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { lstat, readlink } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { RunSpec, SandboxLimits } from './types.js';

export interface SandboxTools {
  bwrap: string;
  setpriv: string;
  chown: string;
  perl: string;
  sh: string;
  flock: string;
  prlimit: string | undefined;
}

interface TaskIdentity {
  uid: number;
  gid: number;
}

const SCRIPT_PATH = '/ferry/script';
/** Where a RunSpec's files appear inside the sandbox (a tmpfs of its own). */
const FILES_PATH = '/ferry/files';
/** bwrap's own options arrive on fd 3; every other input pipe follows it. */
const ARGS_FD = 3;

/** What of /etc a task gets: name resolution, TLS roots, linker and locale data, not the rest (agent configs, keys, the host's accounts). */
const ETC_ALLOWED = [
  'alternatives',
  'ca-certificates',
  'ca-certificates.conf',
  'crypto-policies',
  'debian_version',
  'gai.conf',
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
  'pki',
  'protocols',
  'resolv.conf',
  'services',
  'ssl',
  'timezone',
];

/** Runs as root before the drop, with an empty environment: only fixed words and the uid:gid. */
const PRELUDE = '"$1" "$2" /work /tmp && shift 2 && exec "$@"';

/**
 * Runs as the task. Perl (perl-base is Essential on Debian and Ubuntu) because it sets an exact
 * environment and closes descriptors without helpers; bash would add SHLVL, dash reads no NULs.
 */
const ENV_SHIM = [
  'my $fd = shift;',
  'open(my $in, "<&=", $fd) or die "ferry: no environment on fd $fd: $!\\n";',
  'local $/ = "\\0"; %ENV = ();',
  'while (my $kv = <$in>) { chomp $kv; my ($k, $v) = split /=/, $kv, 2; $ENV{$k} = $v; }',
  'close $in;',
  'opendir(my $dir, "/proc/self/fd") or die "ferry: /proc/self/fd: $!\\n";',
  'my @inherited = grep { /^\\d+$/ && $_ > 2 } readdir $dir; closedir $dir;',
  'for my $n (@inherited) { for my $mode ("<&=", ">&=") { if (open(my $h, $mode, $n)) { close $h; last; } } }',
  'exec { $ARGV[0] } @ARGV;',
  'print STDERR "ferry: cannot run $ARGV[0]: $!\\n"; exit 127;',
].join(' ');

/** The host's top-level system folders as they are (merged-/usr symlinks stay symlinks), the /etc allow-list, /proc and /dev. */
export async function systemMounts(): Promise<string[]> {
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

/** `public`: bwrap's wrapper joins a namespace made for it (network-public.ts), so no new one here. */
function namespaceArgs(network: SandboxLimits['network']): string[] {
  const net = network === 'none' ? ['--unshare-net'] : [];
  return ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', ...net, '--hostname', 'ferry', '--die-with-parent', '--new-session'];
}

/** The sandbox's accounts: root and nobody for the files that show them, and the task as `ferry`, home /work. */
function accounts({ uid, gid }: TaskIdentity): { passwd: string; group: string } {
  return {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nferry:x:${uid}:${gid}:Ferry task:/work:/bin/bash\n`,
    group: `root:x:0:\nnogroup:x:65534:\nferry:x:${gid}:\n`,
  };
}

/** Contents of the pipes the sandbox reads, by descriptor: fd 3 is bwrap's options, the rest follow. */
class PipeInputs {
  readonly contents: (string | Uint8Array)[] = [];
  add(content: string | Uint8Array): string {
    this.contents.push(content);
    return String(ARGS_FD + this.contents.length);
  }
}

export interface Invocation {
  /** bwrap's command line: options come through fd 3, so no environment shows in the host's `ps`. */
  argv: string[];
  /** inputs[i] is written to fd 3 + i of bwrap. */
  inputs: (string | Uint8Array)[];
  /** The task's stdin (fd 0, a pipe like the inputs, so no path of the agent's shows); absent: /dev/null. */
  stdin?: Uint8Array;
}

export interface InvocationPlan {
  tools: SandboxTools;
  mounts: readonly string[];
  seccomp: Uint8Array | undefined;
  task: TaskIdentity;
  limits: SandboxLimits;
  spec: RunSpec;
  /** `network: public`: the resolvers the task gets, as /etc/resolv.conf (mounted over the host's). */
  resolvConf?: string;
}

export function sandboxInvocation({ tools, mounts, seccomp, task, limits, spec, resolvConf }: InvocationPlan): Invocation {
  const pipes = new PipeInputs();
  const withFiles = (v: string) => v.replaceAll('{files}', FILES_PATH);
  const env = { ...spec.env, HOME: '/work', TMPDIR: '/tmp', PWD: '/work' };
  const envFd = pipes.add(
    Object.entries(env)
      .map(([k, v]) => `${k}=${withFiles(v)}\0`)
      .join(''),
  );
  const { passwd, group } = accounts(task);
  const files = Object.entries(spec.files ?? {});
  const options = [
    ...namespaceArgs(limits.network),
    ...mounts,
    ...(resolvConf === undefined ? [] : ['--perms', '0444', '--ro-bind-data', pipes.add(resolvConf), '/etc/resolv.conf']),
    ...['--perms', '0444', '--file', pipes.add(passwd), '/etc/passwd', '--perms', '0444', '--file', pipes.add(group), '/etc/group'],
    // /work and /tmp are tmpfs of the task's own: their pages count against its memory limit and
    // their size is capped, so a task cannot fill the host's disk. The prelude makes them the task's.
    ...['--perms', '0700', '--size', String(limits.memoryBytes), '--tmpfs', '/work'],
    ...['--perms', '1777', '--size', String(limits.memoryBytes), '--tmpfs', '/tmp'],
    ...['--perms', '0444', '--file', pipes.add(spec.script), SCRIPT_PATH],
    ...(files.length === 0 ? [] : ['--perms', '0755', '--tmpfs', FILES_PATH]),
    ...files.flatMap(([name, content]) => ['--perms', '0444', '--file', pipes.add(content), `${FILES_PATH}/${name}`]),
    ...(seccomp ? ['--seccomp', pipes.add(seccomp)] : []),
    ...['--chdir', '/work', '--clearenv'],
  ];
  const drop = [`--reuid=${task.uid}`, `--regid=${task.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];
  const command = [...spec.argv.map((a) => (a === '{script}' ? SCRIPT_PATH : withFiles(a))), ...(spec.args ?? [])];
  const chain = [
    tools.sh,
    '-c',
    PRELUDE,
    'ferry-prelude',
    tools.chown,
    `${task.uid}:${task.gid}`,
    tools.setpriv,
    ...drop,
    '--',
    tools.perl,
    '-e',
    ENV_SHIM,
    '--',
    envFd,
  ];
  return {
    argv: [tools.bwrap, '--args', String(ARGS_FD), ...chain, ...command],
    inputs: [options.map((o) => `${o}\0`).join(''), ...pipes.contents],
    ...(spec.stdin ? { stdin: spec.stdin } : {}),
  };
}

/**
 * Starts `argv` (a wrapper that ends in bwrap) with `inputs` on fds 3, 4, …: pipes, so nothing of
 * them touches the disk or a command line. env {}: the task's environment travels in a pipe too.
 */
export function spawnSandbox(argv: readonly string[], inputs: readonly (string | Uint8Array)[], stdin?: Uint8Array): ChildProcess {
  const [cmd, ...rest] = argv;
  if (!cmd) throw new Error('empty command');
  const child = spawn(cmd, rest, {
    cwd: '/',
    env: {},
    stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', ...inputs.map(() => 'pipe' as const)],
    detached: true,
  });
  if (stdin) {
    // A task that does not read its stdin, or exits first, closes the pipe: that is its business.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(stdin);
  }
  inputs.forEach((content, i) => {
    const pipe = child.stdio[ARGS_FD + i] as Writable | null;
    pipe?.on('error', () => undefined); // bwrap gone early: its exit says why
    pipe?.end(content);
  });
  return child;
}
