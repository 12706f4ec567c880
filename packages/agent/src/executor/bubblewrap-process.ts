/**
 * One sandbox from the host: launching it up to the waiting shim (bubblewrap-command.ts), handing
 * a task over, its exit, and the signal ladder. bwrap stays pid 1 of the task's PID namespace;
 * every task process is a host descendant of the bwrap we started (orphans reparent to that pid
 * 1), and the task's cgroup, when there is one, holds them all.
 *
 * Launch: the spawner starts bwrap (spawner.ts: the agent itself is not forked; the cgroup is
 * made meanwhile) → read its pid 1 from --info-fd → write bwrap and that pid into the task's
 * cgroup → release --block-fd. bwrap forks nothing before the release, so no process of the
 * sandbox ever runs outside the cgroup, and no `sh` has to join it for bwrap. The shim says it
 * waits for its task on a pipe of its own (READY_FD).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { BLOCK_FD, HANDOVER_FD, INFO_FD, READY_FD, spawnSandbox, type Invocation } from './bubblewrap-command.js';
import type { TaskCgroup } from './cgroup.js';
import { PipeWriter } from './spawner.js';
import type { ExitInfo, RunningProcess } from './types.js';

/** Host pids under `root` (not `root` itself), from /proc. */
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

/** Everything `stream` gives until it ends (bwrap's --info-fd: one small JSON document). */
function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (d: Buffer) => (text += d.toString()));
    stream.once('end', () => resolve(text));
    stream.once('close', () => resolve(text));
    stream.once('error', () => resolve(text));
  });
}

/**
 * bwrap's pid 1 from its --info-fd, as soon as the number is complete: bwrap writes that JSON
 * document a line at a time (the namespaces' ids follow the pid), and the cgroup join need not
 * wait for the rest. NaN when the stream ends without it. The rest is read and dropped.
 */
function childPidOf(info: Readable): Promise<number> {
  return new Promise((resolve) => {
    let text = '';
    const settle = (whole: boolean) => {
      const m = (whole ? /"child-pid":\s*(\d+)/ : /"child-pid":\s*(\d+)\D/).exec(text);
      if (m || whole) resolve(Number(m?.[1]));
    };
    info.on('data', (d: Buffer) => {
      text += d.toString();
      settle(false);
    });
    for (const event of ['end', 'close', 'error']) info.once(event, () => settle(true));
  });
}

/** Resolves once `stream` yields its first byte (the shim's "ready"), or with false when it ends first. */
function firstByte(stream: Readable): Promise<boolean> {
  return new Promise((resolve) => {
    stream.once('data', () => resolve(true));
    stream.once('end', () => resolve(false));
    stream.once('close', () => resolve(false));
    stream.once('error', () => resolve(false));
  });
}

/** A sandbox waiting for its task: bwrap's pid, and the shim's readiness. */
export interface Launched {
  readonly pid: number;
  /** The host pid of bwrap's init, pid 1 of the task's PID namespace (root; it runs no task code). */
  readonly initPid: number;
  /** True once the shim waits for its hand-over; false if the sandbox died first. */
  readonly ready: Promise<boolean>;
  readonly exited: Promise<ExitInfo>;
  /** Hands the task over and returns it running. Once only. */
  start(handOver: Buffer, stdin: Uint8Array | undefined): RunningProcess;
  /** SIGKILLs the wrapper, bwrap and every process of the sandbox it can find. */
  kill(): Promise<void>;
}

/** What bwrap said on stderr before it died (read only after a failed launch: until then stderr is the task's, untouched). */
function complaintOf(stderr: Readable): Promise<string> {
  const timer = new Promise<string>((r) => setTimeout(() => r(''), 1_000).unref());
  return Promise.race([readAll(stderr), timer]).then((t) => t.trim());
}

/**
 * Starts `wrapper` + bwrap up to the waiting shim, with bwrap and its pid 1 in `cgroupMade` before
 * anything runs in the sandbox. Rejects (with bwrap's complaint, or the cgroup's error) when the
 * sandbox cannot be made.
 */
export async function launchSandbox(
  wrapper: readonly string[],
  invocation: Invocation,
  cgroupMade: TaskCgroup | undefined | Promise<TaskCgroup | undefined>,
): Promise<Launched> {
  // The cgroup may still be being made: bwrap starts meanwhile, and waits on --block-fd until it is joined.
  let cgroup: TaskCgroup | undefined;
  const child = await spawnSandbox(invocation, wrapper);
  const { pid, stdin, stdout, stderr } = child;
  const [info, block, handover, readyPipe] = [INFO_FD, BLOCK_FD, HANDOVER_FD, READY_FD].map((fd) => child.pipes.get(fd));
  if (!info || !block || !handover || !readyPipe) {
    signal(-pid, 'SIGKILL');
    throw new Error(`could not start ${invocation.argv[0] ?? 'bwrap'}`);
  }
  for (const pipe of [stdin, block, handover]) pipe.on('error', () => undefined); // the sandbox gone early: its exit says why
  const sent = new Set<NodeJS.Signals>();
  let done = false;
  const exited = child.exited.then(({ code, signal: sig }) => exitInfo(code, sig, sent)).finally(() => (done = true));
  let started = false;
  const kill = async () => {
    sent.add('SIGKILL');
    // Once bwrap is reaped its pid may be reused: only the cgroup's members are then surely ours.
    // pid 1 of the namespace (a child of bwrap) dying takes every task process with it. Before a
    // hand-over nothing can have left bwrap's process group, so no /proc scan (recycling is cheap).
    if (!done) for (const p of [-pid, pid, ...(started ? descendants(pid) : [])]) signal(p, 'SIGKILL');
    for (const p of (await cgroup?.pids()) ?? []) signal(p, 'SIGKILL');
  };
  const childPid = await childPidOf(info as Readable);
  if (!Number.isInteger(childPid) || childPid <= 0) {
    await kill();
    await exited;
    throw new Error(`bwrap could not create the sandbox: ${(await complaintOf(stderr)) || 'no child pid on --info-fd'}`);
  }
  try {
    cgroup = await cgroupMade;
    await cgroup?.join([pid, childPid]);
  } catch (err) {
    await kill();
    throw err;
  }
  (block as Writable).end('1');
  const ready = firstByte(readyPipe as Readable);
  return {
    pid,
    initPid: childPid,
    ready,
    exited,
    kill,
    start(bytes, input) {
      if (started) throw new Error('a sandbox runs one task once');
      started = true;
      // The shim waits for these bytes: written by a system call now, not a stream's later turn.
      if (handover instanceof PipeWriter) handover.writeFirst(bytes);
      else (handover as Writable).end(bytes);
      stdin.end(input);
      return runningProcess(pid, stdout, stderr, exited, sent, () => done, kill);
    },
  };
}

function runningProcess(
  pid: number,
  stdout: Readable,
  stderr: Readable,
  exited: Promise<ExitInfo>,
  sent: Set<NodeJS.Signals>,
  done: () => boolean,
  kill: () => Promise<void>,
): RunningProcess {
  return {
    pid,
    stdout,
    stderr,
    exited,
    async terminate(graceMs) {
      if (done()) return 'already-exited';
      // Not bwrap itself: it would die at once and --die-with-parent would SIGKILL the task with no grace.
      // The namespace's pid 1 ignores it (no handler), so the task's processes are the ones that get it.
      const targets = descendants(pid);
      // Only bwrap's pid 1, if that: still setting up, so there is no task to be graceful to.
      const settingUp = targets.length <= 1;
      if (!settingUp) sent.add('SIGTERM');
      if (!settingUp) for (const p of targets) signal(p, 'SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), settingUp ? 0 : graceMs).unref());
      if ((await Promise.race([exited, timer])) !== 'timeout') return 'sigterm';
      await kill();
      await exited;
      return 'sigkill';
    },
  };
}
