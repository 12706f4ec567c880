/**
 * The agent's forker: one small long-lived process (perl, which the sandbox needs anyway) that
 * forks and execs bwrap for the agent, so the agent's own process (~100 MiB) is not forked for
 * every sandbox. A fork of the agent cost it ~3 ms of CPU per sandbox (copying its page tables,
 * then copy-on-write faults in the agent after every fork) and blocked its event loop 1–10 ms
 * while the child ran up to its exec; the helper's fork of a few MiB costs a fraction of that,
 * and outside the agent's event loop.
 *
 * How the agent gets the sandbox's pipes without Node's IPC channel: the helper makes plain pipes,
 * keeps the agent's ends open until told to close them, and says which descriptor numbers they
 * are and their inode numbers; the agent (root, the helper's parent) opens
 * `/proc/<helper>/fd/<n>`, which for a pipe is the same pipe, and checks the inode, so a pipe can
 * never be mistaken for another sandbox's.
 *
 * Lifetime: the helper dies with the agent however the agent ends (PR_SET_PDEATHSIG SIGKILL, set
 * before its first request and checked against a parent that died before that; and the end of its
 * request pipe), and bwrap's --die-with-parent then takes every sandbox with it, so `kill -9` of
 * the agent leaves no sandbox running. It runs as root with an empty environment and holds nothing
 * of any task: a task's script and secrets go from the agent straight into the sandbox's hand-over
 * pipe, never through the helper.
 *
 * Protocol. Agent → helper, on its stdin: `<length>:` then length-prefixed fields (as in
 * bubblewrap-command.ts's hand-over): `L`, an id, argv, and the bytes for the child's fds from 3 on
 * that the helper writes and closes (options and inputs); or `C` and an id (close your copies of
 * its pipes). Helper → agent, lines: `S <id> <pid> <fd>:<inode>…` (launched; the agent's ends in
 * order: stdin, stdout, stderr, then the `agentFds` of the request), `E <id> <reason>` (could not
 * launch), `X <id> <exit code> <signal>` (bwrap was reaped). The helper sleeps in select() on its
 * request pipe and a signalfd for SIGCHLD: no timer, no signal handler (and so no race between a
 * child's exit and the wait). Its children get the signal mask and SIGPIPE back as a process
 * normally starts with them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { Writable, type Readable } from 'node:stream';
import { borrowingReader } from './pipe-reader.js';

/** Which way a pipe given to the sandbox goes, from the sandbox's side. */
export type PipeDirection = 'in' | 'out';

export interface SpawnRequest {
  argv: readonly string[];
  /** Bytes the helper writes into fd 3, 4, … of the child and then closes (bwrap's options and inputs), keyed by fd. */
  inputs: ReadonlyMap<number, string | Uint8Array>;
  /** Pipes between the agent and the child beyond stdio, keyed by the child's fd: 'in' the child reads, 'out' it writes. */
  pipes: ReadonlyMap<number, PipeDirection>;
}

/** What the child writes comes as borrowed 'data' chunks: valid while the handler runs (pipe-reader.ts). */
export interface Spawned {
  readonly pid: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** The agent's end of each of the request's `pipes`, by the child's fd. */
  readonly pipes: ReadonlyMap<number, Readable | Writable>;
  /** bwrap's exit as waitpid() saw it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The helper. Reads requests, forks, reports exits; see the header for the protocol. */
const HELPER = String.raw`
use strict; use POSIX (); use Fcntl ();
my ($prctl, $signalfd4, $agent) = @ARGV;
syscall($prctl, 1, 9) == 0 or die "ferry spawner: prctl: $!\n";
exit 0 if getppid() != $agent;
# Whatever the agent was given without close-on-exec (a launcher's descriptor) goes no further.
opendir(my $dir, "/proc/self/fd") or die "ferry spawner: /proc/self/fd: $!\n";
my @inherited = grep { /^\d+$/ && $_ > 2 } readdir $dir; closedir $dir;
for my $n (@inherited) { for my $mode ("<&=", ">&=") { if (open(my $x, $mode, $n)) { close $x; last } } }
$SIG{PIPE} = "IGNORE";
# Children's exits arrive on a signalfd: no handler, no race with select, no timer.
POSIX::sigprocmask(POSIX::SIG_BLOCK(), POSIX::SigSet->new(POSIX::SIGCHLD())) or die "ferry spawner: sigprocmask: $!\n";
my $mask = pack("Q", 1 << (POSIX::SIGCHLD() - 1));
my $sfd = syscall($signalfd4, -1, $mask, 8, 0x800 | 0x80000);
$sfd >= 0 or die "ferry spawner: signalfd: $!\n";
open(my $sigs, "<&=", $sfd) or die "ferry spawner: signalfd: $!\n";
my (%held, %idof, $buf);
binmode STDIN; binmode STDOUT;
sub answer { my $m = shift; my $w = syswrite(STDOUT, $m); exit 0 unless defined $w && $w == length $m }
sub fields { my ($s) = @_; my @f; my $p = 0;
  while ($p < length $s) { my $c = index($s, ":", $p); return unless $c > $p; my $n = substr($s, $p, $c - $p); return unless $n =~ /^\d+$/;
    push @f, substr($s, $c + 1, $n); $p = $c + 1 + $n; return if $p > length $s } @f }
sub launch {
  my ($id, $argc, @rest) = @_;
  my @argv = splice(@rest, 0, $argc);
  my ($nin, @r2) = @rest; my %in = splice(@r2, 0, 2 * $nin); my ($npipe, @r3) = @r2; my %dir = splice(@r3, 0, 2 * $npipe);
  my (%child, @mine);
  for my $t (0, 1, 2, sort { $a <=> $b } keys %dir) {
    my $d = $t == 0 ? "in" : $t < 3 ? "out" : $dir{$t};
    pipe(my $r, my $w) or return answer("E $id pipe: $!\n");
    if ($d eq "in") { $child{$t} = $r; push @mine, $w } else { $child{$t} = $w; push @mine, $r }
  }
  for my $t (keys %in) {
    pipe(my $r, my $w) or return answer("E $id pipe: $!\n");
    length($in{$t}) < 65536 or return answer("E $id input for fd $t too large\n");
    my $n = syswrite($w, $in{$t}); defined $n && $n == length $in{$t} or return answer("E $id write: $!\n");
    close $w; $child{$t} = $r;
  }
  my $pid = fork();
  return answer("E $id fork: $!\n") unless defined $pid;
  if ($pid == 0) {
    # What the helper changed for itself goes back to what a process normally starts with.
    $SIG{PIPE} = "DEFAULT"; POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new());
    POSIX::setsid();
    # Above every target number first, so no dup2 below overwrites a pipe still to be placed.
    my %high = map { ($_ => fcntl($child{$_}, Fcntl::F_DUPFD(), 100)) } keys %child;
    for my $t (keys %high) { defined $high{$t} && POSIX::dup2($high{$t}, $t) == $t or POSIX::_exit(126) }
    POSIX::close($_) for values %high;
    exec { $argv[0] } @argv; POSIX::_exit(127);
  }
  close $_ for values %child;
  $held{$id} = [@mine]; $idof{$pid} = $id;
  my @desc = map { fileno($_) . ":" . (stat($_))[1] } @mine;
  answer("S $id $pid @desc\n");
}
while (1) {
  my $rin = ""; vec($rin, 0, 1) = 1; vec($rin, $sfd, 1) = 1;
  my $n = select(my $rout = $rin, undef, undef, undef);
  next if $n < 0;
  if (vec($rout, $sfd, 1)) {
    1 while sysread($sigs, my $x, 4096);
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
      my $st = $?; my $id = delete $idof{$pid}; next unless defined $id;
      answer("X $id " . ($st & 127 ? "-" : $st >> 8) . " " . ($st & 127) . "\n");
    }
  }
  next unless vec($rout, 0, 1);
  my $got = sysread(STDIN, $buf, 65536, length($buf // ""));
  exit 0 unless $got;
  while ((my $c = index($buf, ":")) > 0) {
    my $len = substr($buf, 0, $c); die "ferry spawner: bad request\n" unless $len =~ /^\d+$/;
    last if length($buf) < $c + 1 + $len;
    my @f = fields(substr($buf, $c + 1, $len)); $buf = substr($buf, $c + 1 + $len);
    my $op = shift @f;
    if ($op eq "L") { launch(@f) } elsif ($op eq "C") { close $_ for @{ delete $held{$f[0]} // [] } } else { die "ferry spawner: bad request\n" }
  }
}
`;

const field = (value: string | Uint8Array): Buffer[] => {
  const bytes = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return [Buffer.from(`${bytes.length}:`), bytes];
};

function request(fields: (string | Uint8Array)[]): Buffer {
  const body = Buffer.concat(fields.flatMap(field));
  return Buffer.concat([Buffer.from(`${body.length}:`), body]);
}

/**
 * The agent's end of a pipe the sandbox reads: a stream, whose first bytes `writeFirst` can put
 * in the pipe by one system call. A stream's first write goes through its own machinery before
 * the system call (~0.05 ms of a cold event loop here), and the sandbox's shim waits for it.
 */
export class PipeWriter extends Socket {
  constructor(private readonly fd: number) {
    super({ fd, readable: false, writable: true });
  }

  /**
   * Writes what the pipe takes now (it is non-blocking; all of it unless it is larger than the
   * pipe's free room) straight to the descriptor, then the rest, if any, through the stream, and
   * ends it. Only before any other write, so the bytes keep their order.
   */
  writeFirst(bytes: Buffer): void {
    let sent = 0;
    try {
      sent = writeSync(this.fd, bytes);
    } catch {
      // EAGAIN: the stream waits for room; EPIPE (the sandbox is gone): the stream reports it.
    }
    if (sent < bytes.length) this.end(bytes.subarray(sent));
    else this.end();
  }
}

/** Discards what is written: a write end whose reader (the sandbox) was already gone when opened, as writing to a dead pipe would. */
const sink = (): Writable => new Writable({ write: (_chunk, _enc, done) => done() });

/** Opens the agent's end of a helper's pipe through /proc, checked to be the pipe the helper named. */
function adopt(helper: number, fd: number, inode: string, direction: 'read' | 'write'): Readable | Writable {
  let own: number;
  try {
    // Non-blocking: opening a pipe's read end would otherwise wait for a writer.
    own = openSync(`/proc/${helper}/fd/${fd}`, (direction === 'read' ? constants.O_RDONLY : constants.O_WRONLY) | constants.O_NONBLOCK);
  } catch (err) {
    // ENXIO: a write end with no reader left, the sandbox died already.
    if (direction === 'write' && (err as NodeJS.ErrnoException).code === 'ENXIO') return sink();
    throw err;
  }
  const stat = fstatSync(own, { bigint: true });
  if (!stat.isFIFO() || String(stat.ino) !== inode) {
    closeSync(own);
    throw new Error(`the spawner's fd ${fd} is not the pipe it named`);
  }
  // What the sandbox writes is read into one reused buffer: its 'data' chunks are borrowed (pipe-reader.ts).
  if (direction === 'read') return borrowingReader(own);
  const socket = new PipeWriter(own);
  // A pipe has no shutdown(2): once everything is written, the end must be closed for the reader to see EOF.
  socket.once('finish', () => socket.destroy());
  return socket;
}

const signalName = (n: number): NodeJS.Signals | null =>
  (Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] as NodeJS.Signals | undefined) ?? null;

interface Waiting {
  request: SpawnRequest;
  resolve: (s: Spawned) => void;
  reject: (e: Error) => void;
}

/** The helper process and the launches it has under way; one per agent process (spawner()). */
class Spawner {
  private readonly child: ChildProcess;
  private readonly waiting = new Map<string, Waiting>();
  private readonly running = new Map<string, (exit: { code: number | null; signal: NodeJS.Signals | null }) => void>();
  private nextId = 1;
  private lines = '';
  private dead: Error | undefined;

  constructor(perl: string, prctl: number, signalfd4: number) {
    this.child = spawn(perl, ['-e', HELPER, '--', String(prctl), String(signalfd4), String(process.pid)], {
      cwd: '/',
      env: {},
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const { stdin, stdout, stderr } = this.child;
    let complaint = '';
    stderr?.on('data', (d: Buffer) => (complaint = (complaint + d.toString()).slice(-2_000)));
    stdin?.on('error', () => undefined); // its exit says why
    stdout?.on('data', (d: Buffer) => this.onData(d));
    this.child.once('error', (err) => this.fail(err));
    this.child.once('exit', (code, signal) => this.fail(new Error(`the sandbox spawner exited (${signal ?? code}): ${complaint.trim()}`)));
    // An agent with nothing under way may exit with it running: it ends when its request pipe closes.
    this.child.unref();
    for (const s of [stdin, stdout, stderr]) (s as unknown as Socket | null)?.unref();
  }

  /** Keeps the agent's event loop alive while an answer or an exit is awaited, and only then. */
  private refWhileBusy(): void {
    const stdout = this.child.stdout as unknown as Socket | null;
    if (this.waiting.size + this.running.size > 0) stdout?.ref();
    else stdout?.unref();
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  launch(req: SpawnRequest): Promise<Spawned> {
    if (this.dead) return Promise.reject(this.dead);
    const id = String(this.nextId++);
    const inputs = [...req.inputs].flatMap(([fd, bytes]) => [String(fd), bytes]);
    const pipes = [...req.pipes].flatMap(([fd, dir]) => [String(fd), dir]);
    const fields = ['L', id, String(req.argv.length), ...req.argv, String(req.inputs.size), ...inputs, String(req.pipes.size), ...pipes];
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { request: req, resolve, reject });
      this.refWhileBusy();
      this.child.stdin?.write(request(fields));
    });
  }

  /** Stops the helper: every sandbox it launched dies with it (--die-with-parent). */
  close(): void {
    this.child.stdin?.end();
  }

  private onData(d: Buffer): void {
    this.lines += d.toString();
    for (let nl = this.lines.indexOf('\n'); nl >= 0; nl = this.lines.indexOf('\n')) {
      const line = this.lines.slice(0, nl);
      this.lines = this.lines.slice(nl + 1);
      this.onLine(line.split(' '));
    }
  }

  private onLine([kind, id = '', ...rest]: string[]): void {
    if (kind === 'X') {
      const [code, sig] = rest;
      this.running.get(id)?.({ code: code === '-' ? null : Number(code), signal: Number(sig) > 0 ? signalName(Number(sig)) : null });
      this.running.delete(id);
      this.refWhileBusy();
      return;
    }
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    if (!w) return;
    if (kind === 'E') return w.reject(new Error(`could not start ${w.request.argv[0] ?? 'bwrap'}: ${rest.join(' ')}`));
    let exitSeen!: (exit: { code: number | null; signal: NodeJS.Signals | null }) => void;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => (exitSeen = r));
    this.running.set(id, exitSeen);
    try {
      w.resolve(this.adoptAll(Number(rest[0]), rest.slice(1), w.request, exited));
    } catch (err) {
      w.reject(err as Error);
    } finally {
      this.child.stdin?.write(request(['C', id]));
      this.refWhileBusy();
    }
  }

  private adoptAll(pid: number, described: string[], req: SpawnRequest, exited: Spawned['exited']): Spawned {
    const fds = [0, 1, 2, ...[...req.pipes.keys()].sort((a, b) => a - b)];
    const helper = this.child.pid ?? 0;
    const opened = new Map<number, Readable | Writable>();
    try {
      fds.forEach((fd, i) => {
        const [n, inode] = (described[i] ?? '').split(':');
        const sandboxReads = fd === 0 || (fd > 2 && req.pipes.get(fd) === 'in');
        opened.set(fd, adopt(helper, Number(n), inode ?? '', sandboxReads ? 'write' : 'read'));
      });
    } catch (err) {
      for (const s of opened.values()) s.destroy();
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
      throw err;
    }
    const pipes = new Map([...opened].filter(([fd]) => fd > 2));
    return { pid, stdin: opened.get(0) as Writable, stdout: opened.get(1) as Readable, stderr: opened.get(2) as Readable, pipes, exited };
  }

  private fail(err: Error): void {
    this.dead ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    // Its sandboxes died with it (--die-with-parent); their exit is reported as a kill.
    for (const seen of this.running.values()) seen({ code: null, signal: 'SIGKILL' });
    this.running.clear();
  }
}

let current: Spawner | undefined;

/** This process's spawner, started on first use and again if it died. */
export function spawner(perl: string, prctl: number, signalfd4: number): { launch(req: SpawnRequest): Promise<Spawned> } {
  if (!current?.alive) current = new Spawner(perl, prctl, signalfd4);
  return current;
}
