/**
 * What bubblewrap is told for one sandbox, and the chain of programs that runs inside it:
 *
 *   bwrap --args 3 …        root, fresh namespaces, mounts; waits on --block-fd until the agent
 *    │                      has put it in the task's cgroup, then loads the seccomp filter
 *    └ perl -e SHIM         root, an empty environment: makes /work, /tmp and /ferry/files the
 *       │                   task's, creates /ferry/script (root's, read-only) and keeps it open,
 *       │                   empties the bounding set, drops to the task's uid and gid (no
 *       │                   capabilities left), checks all of that in /proc/self/status, closes
 *       │                   every other inherited descriptor; then says "ready" and waits for the
 *       │                   hand-over (script, argv, environment, files) on a pipe; writes the
 *       │                   script and files, execs
 *       └ command           the task's uid, exactly the task's environment
 *
 * So a sandbox is made in two steps: `sandboxInvocation` starts it up to the waiting shim (the
 * pool does this ahead of time, with no task), and `handOver` is what one task gives it. Nothing
 * of a task reaches a root process: the shim has dropped to the task's uid before it reads the
 * hand-over (the drop does not depend on the task, so it is done while the sandbox waits, off
 * the dispatch path), and the task's environment is set only for the exec (the dynamic loader
 * honours LD_AUDIT, GLIBC_TUNABLES, GCONV_PATH and friends for root as for anyone, and secrets
 * are variables with names users choose).
 *
 * Nothing of the agent's folders reaches the sandbox. The sandbox's /etc/passwd and /etc/group
 * are copied by bwrap from pipes (`--file FD`) into its own tmpfs, the script and files are
 * written there by the shim from the hand-over pipe; /work and /tmp are tmpfs too. So
 * /proc/self/mountinfo lists only the system folders and anonymous tmpfs, and nothing of the
 * task lives on the host's disk, even for a moment.
 */
import { lstat, readlink } from 'node:fs/promises';
import { spawner, type PipeDirection, type Spawned } from './spawner.js';
import type { RunSpec, SandboxLimits } from './types.js';

export interface SandboxTools {
  bwrap: string;
  perl: string;
  flock: string;
  prlimit: string | undefined;
}

interface TaskIdentity {
  uid: number;
  gid: number;
}

const SCRIPT_PATH = '/ferry/script';
/** Where a RunSpec's files appear inside the sandbox. */
const FILES_PATH = '/ferry/files';
/** bwrap's own options arrive on fd 3; then its --info-fd, --block-fd, the shim's hand-over and "ready" pipes, and the pipe inputs. */
const ARGS_FD = 3;
export const INFO_FD = 4;
export const BLOCK_FD = 5;
export const HANDOVER_FD = 6;
export const READY_FD = 7;
const FIRST_INPUT_FD = 8;

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

/** The system calls the shim makes by number (perl-base has no wrappers for them), per architecture. */
export interface Syscalls {
  prctl: number;
  setgroups: number;
  setresgid: number;
  setresuid: number;
  capset: number;
  /** For the spawner (spawner.ts), which waits for its children's exits on a signalfd. */
  signalfd4: number;
}
/** x86_64's own table, and the generic table (include/uapi/asm-generic/unistd.h) of arm64, riscv64 and loong64. */
const GENERIC_SYSCALLS: Syscalls = { prctl: 167, setgroups: 159, setresgid: 149, setresuid: 147, capset: 91, signalfd4: 74 };
const SYSCALLS: Partial<Record<NodeJS.Architecture, Syscalls>> = {
  x64: { prctl: 157, setgroups: 116, setresgid: 119, setresuid: 117, capset: 126, signalfd4: 289 },
  arm64: GENERIC_SYSCALLS,
  riscv64: GENERIC_SYSCALLS,
  loong64: GENERIC_SYSCALLS,
};

/** The shim's system call numbers on this architecture, or undefined where the sandbox does not know them. */
export function shimSyscalls(arch: NodeJS.Architecture = process.arch): Syscalls | undefined {
  return SYSCALLS[arch];
}

/**
 * The first program in the sandbox, as root with an empty environment. Perl (perl-base is
 * Essential on Debian and Ubuntu) because it reads a pipe, writes files, makes the system calls
 * of the privilege drop and sets an exact environment without helpers, in one exec. It loads
 * no module. Every step that fails ends it before the task's command runs; the drop is checked
 * in /proc/self/status, so a wrong system call number cannot go unnoticed.
 *
 * All it does as root, the drop and its check come before "ready": after the hand-over it only
 * splits it (one unpack), writes the script into the descriptor it opened as root and files into
 * the task's /ferry/files, and execs. That part runs once per task on the dispatch path, with
 * cold caches, where every perl operation and system call costs microseconds (bench/README.md,
 * fourth wave). `sysopen` flags are numbers (no Fcntl): 0301 is O_WRONLY|O_CREAT|O_EXCL in the
 * generic table every architecture of SYSCALLS uses.
 */
const SHIM = String.raw`
my ($fd, $rfd, $uid, $gid, $prctl, $setgroups, $setresgid, $setresuid, $capset) = @ARGV;
chown $uid, $gid, "/work", "/tmp" or die "ferry: chown: $!\n";
mkdir "/ferry/files" or die "ferry: /ferry/files: $!\n"; chown $uid, $gid, "/ferry/files" or die "ferry: chown: $!\n"; chmod 0755, "/ferry/files";
sysopen(my $out, "/ferry/script", 0301, 0444) or die "ferry: /ferry/script: $!\n";
open(my $null, "<", "/dev/null") or die "ferry: /dev/null: $!\n";
syscall($prctl, 24, $_) for 0 .. 63;
my $g = pack("L", $gid); syscall($setgroups, 1, $g) == 0 or die "ferry: setgroups: $!\n";
opendir(my $dir, "/proc/self/fd") or die "ferry: /proc/self/fd: $!\n";
my @inherited = grep { /^\d+$/ && $_ > 2 && $_ != $fd && $_ != $rfd && $_ != fileno($out) && $_ != fileno($null) } readdir $dir; closedir $dir;
for my $n (@inherited) { for my $mode ("<&=", ">&=") { if (open(my $x, $mode, $n)) { close $x; last } } }
syscall($setresgid, $gid, $gid, $gid) == 0 or die "ferry: setresgid: $!\n";
syscall($setresuid, $uid, $uid, $uid) == 0 or die "ferry: setresuid: $!\n";
my ($hd, $dt) = (pack("LL", 0x20080522, 0), pack("L6", (0) x 6)); syscall($capset, $hd, $dt) == 0 or die "ferry: capset: $!\n";
open(my $st, "<", "/proc/self/status") or die "ferry: /proc/self/status: $!\n"; my $s = do { local $/; <$st> }; close $st;
die "ferry: the privilege drop did not take\n" unless $s =~ /^Uid:\t$uid\t$uid\t$uid\t$uid$/m && $s =~ /^Gid:\t$gid\t$gid\t$gid\t$gid$/m
  && $s =~ /^Groups:\t$gid ?$/m && $s =~ /^NoNewPrivs:\t1$/m && $s !~ /^Cap(Inh|Prm|Eff|Bnd|Amb):\t0*[1-9a-f]/m;
open(my $io, "<&=", $fd) or die "ferry: no hand-over on fd $fd: $!\n"; binmode $io;
open(my $ready, ">&=", $rfd) or die "ferry: no ready pipe on fd $rfd: $!\n"; syswrite($ready, "r"); close $ready;
my ($h, $want) = ("", 0);
until ($want && length $h >= $want) {
  my $n = sysread($io, $h, 65536, length $h);
  exit 125 unless $n;
  $want = 4 + unpack("N", $h) if !$want && length $h >= 4;
}
close $io;
my @f = unpack("x4 (N/a)*", $h);
die "ferry: bad hand-over\n" unless length $h == $want && length(pack("(N/a)*", @f)) == $want - 4;
sub take { my $k = shift; die "ferry: bad hand-over\n" if $k > @f; splice(@f, 0, $k) }
sub count { my ($c) = take(1); die "ferry: bad hand-over\n" unless $c =~ /^\d+$/; $c }
my @cmd = take(count()); my @env = take(count()); my ($script) = take(1);
my @files = map { [take(2)] } 1 .. count(); my ($stdin) = take(1);
die "ferry: bad hand-over\n" if @f;
die "ferry: no command\n" unless @cmd;
sub put { my ($o, $path, $data) = @_;
  for (my $at = 0; $at < length $data;) { my $n = syswrite($o, $data, length($data) - $at, $at); die "ferry: $path: $!\n" unless $n; $at += $n }
  close $o or die "ferry: $path: $!\n" }
put($out, "/ferry/script", $script);
for (@files) { die "ferry: bad file name\n" if $_->[0] =~ m{/|^\.\.?$}; my $path = "/ferry/files/$_->[0]";
  sysopen(my $o, $path, 0301, 0444) or die "ferry: $path: $!\n"; put($o, $path, $_->[1]) }
if ($stdin eq "null") { open(STDIN, "<&", $null) or die "ferry: /dev/null: $!\n" } close $null;
%ENV = (); for (@env) { my ($k, $v) = split /=/, $_, 2; $ENV{$k} = $v }
exec { $cmd[0] } @cmd; print STDERR "ferry: cannot run $cmd[0]: $!\n"; exit 127;
`;

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

/** Contents of the pipes bwrap reads (`--file`, `--seccomp`), by descriptor from FIRST_INPUT_FD on. */
class PipeInputs {
  readonly contents: (string | Uint8Array)[] = [];
  add(content: string | Uint8Array): string {
    this.contents.push(content);
    return String(FIRST_INPUT_FD + this.contents.length - 1);
  }
}

export interface Invocation {
  /** bwrap's command line: options come through fd 3, so no environment shows in the host's `ps`. */
  argv: string[];
  /** What starts the spawner (spawner.ts): perl, and the numbers of the system calls it makes. */
  spawner: { perl: string; prctl: number; signalfd4: number };
  /** bwrap's options, for fd 3. */
  options: string;
  /** inputs[i] is written to fd FIRST_INPUT_FD + i of bwrap. */
  inputs: (string | Uint8Array)[];
}

export interface InvocationPlan {
  tools: SandboxTools;
  mounts: readonly string[];
  seccomp: Uint8Array | undefined;
  syscalls: Syscalls;
  task: TaskIdentity;
  limits: SandboxLimits;
  /** `network: public`: the resolvers the task gets, as /etc/resolv.conf (mounted over the host's). */
  resolvConf?: string;
}

/** A sandbox up to the shim waiting for its hand-over: nothing of a task in it. */
export function sandboxInvocation({ tools, mounts, seccomp, syscalls, task, limits, resolvConf }: InvocationPlan): Invocation {
  const pipes = new PipeInputs();
  const { passwd, group } = accounts(task);
  const options = [
    ...namespaceArgs(limits.network),
    ...mounts,
    ...(resolvConf === undefined ? [] : ['--perms', '0444', '--ro-bind-data', pipes.add(resolvConf), '/etc/resolv.conf']),
    ...['--perms', '0444', '--file', pipes.add(passwd), '/etc/passwd', '--perms', '0444', '--file', pipes.add(group), '/etc/group'],
    // /work and /tmp are tmpfs of the task's own: their pages count against its memory limit and
    // their size is capped, so a task cannot fill the host's disk. The shim makes them the task's.
    ...['--perms', '0700', '--size', String(limits.memoryBytes), '--tmpfs', '/work'],
    ...['--perms', '1777', '--size', String(limits.memoryBytes), '--tmpfs', '/tmp'],
    ...(seccomp ? ['--seccomp', pipes.add(seccomp)] : []),
    ...['--chdir', '/work', '--clearenv'],
    // bwrap reports its pid 1 on INFO_FD, then waits on BLOCK_FD (after the mounts, before the
    // seccomp filter and the first fork) while the agent puts that pid in the task's cgroup.
    ...['--info-fd', String(INFO_FD), '--block-fd', String(BLOCK_FD)],
  ];
  const { prctl, setgroups, setresgid, setresuid, capset } = syscalls;
  const shim = [tools.perl, '-e', SHIM, '--', String(HANDOVER_FD), String(READY_FD), String(task.uid), String(task.gid)];
  return {
    argv: [tools.bwrap, '--args', String(ARGS_FD), ...shim, ...[prctl, setgroups, setresgid, setresuid, capset].map(String)],
    spawner: { perl: tools.perl, prctl, signalfd4: syscalls.signalfd4 },
    options: options.map((o) => `${o}\0`).join(''),
    inputs: pipes.contents,
  };
}

/**
 * Fields, each behind its length in bytes (32 bits, big-endian: the shim splits the whole
 * hand-over with one `unpack("(N/a)*")`), gathered first and copied once into a buffer of the
 * hand-over's size. Both ends run once per task on the dispatch path, so by code neither V8 nor
 * perl has warm: one allocation here and one unpack there, not an operation per field.
 */
class Fields {
  private readonly parts: (string | Uint8Array)[] = [];
  private readonly sizes: number[] = [];
  private size = 0;

  add(value: string | Uint8Array): this {
    const bytes = typeof value === 'string' ? Buffer.byteLength(value) : value.byteLength;
    if (bytes > 0xffffffff) throw new Error('a hand-over field is larger than 4 GiB');
    this.parts.push(value);
    this.sizes.push(bytes);
    this.size += 4 + bytes;
    return this;
  }

  list(values: readonly (string | Uint8Array)[]): this {
    this.add(String(values.length));
    for (const v of values) this.add(v);
    return this;
  }

  /**
   * The whole hand-over behind its own length, so the shim starts the task as soon as the last
   * byte arrives instead of waiting for the end of the pipe (which the agent closes after the write).
   */
  framed(): Buffer {
    if (this.size > 0xffffffff) throw new Error('the hand-over is larger than 4 GiB');
    const out = Buffer.allocUnsafe(4 + this.size);
    let at = out.writeUInt32BE(this.size, 0);
    this.parts.forEach((part, i) => {
      at = out.writeUInt32BE(this.sizes[i] ?? 0, at);
      if (typeof part === 'string') at += out.write(part, at, 'utf8');
      else {
        out.set(part, at);
        at += part.byteLength;
      }
    });
    return out;
  }
}

/** What one task hands a waiting sandbox, through its hand-over pipe (one write): length-prefixed fields the shim reads. */
export function handOver(spec: RunSpec): Buffer {
  const withFiles = (v: string) => v.replaceAll('{files}', FILES_PATH);
  const command = [...spec.argv.map((a) => (a === '{script}' ? SCRIPT_PATH : withFiles(a))), ...(spec.args ?? [])];
  const env = { ...spec.env, HOME: '/work', TMPDIR: '/tmp', PWD: '/work' };
  const files = Object.entries(spec.files ?? {});
  for (const [name] of files) if (name.includes('/') || name === '.' || name === '..' || name === '') throw new Error(`bad task file name ${name}`);
  const fields = new Fields()
    .list(command)
    .list(Object.entries(env).map(([k, v]) => `${k}=${withFiles(v)}`))
    .add(spec.script)
    .add(String(files.length));
  for (const [name, content] of files) fields.add(name).add(content);
  return fields.add(spec.stdin ? 'pipe' : 'null').framed();
}

/** The sandbox's pipes with the agent beyond stdio, by bwrap's fd, as the sandbox sees them ('in': it reads). */
const SANDBOX_PIPES: ReadonlyMap<number, PipeDirection> = new Map([
  [INFO_FD, 'out'],
  [BLOCK_FD, 'in'],
  [HANDOVER_FD, 'in'],
  [READY_FD, 'out'],
]);

/**
 * Starts `argv` (bwrap, perhaps behind prlimit) through the spawner (spawner.ts: no fork of the
 * agent), with its options on fd 3 and `inputs` from FIRST_INPUT_FD on: pipes the spawner fills
 * and closes, so nothing of them touches the disk or a command line. env {}, its own session.
 * stdin and the hand-over are the caller's to write.
 */
export function spawnSandbox(invocation: Invocation, wrapper: readonly string[] = []): Promise<Spawned> {
  const argv = [...wrapper, ...invocation.argv];
  if (argv.length === 0) throw new Error('empty command');
  const inputs = new Map<number, string | Uint8Array>([[ARGS_FD, invocation.options]]);
  invocation.inputs.forEach((content, i) => inputs.set(FIRST_INPUT_FD + i, content));
  const { perl, prctl, signalfd4 } = invocation.spawner;
  return spawner(perl, prctl, signalfd4).launch({ argv, inputs, pipes: SANDBOX_PIPES });
}
