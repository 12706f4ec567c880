/**
 * Watching one sandboxed task from the host: its exit, and the signal ladder. bwrap stays pid 1
 * of the task's PID namespace; every task process is a host descendant of the bwrap we started
 * (orphans reparent to that pid 1), and the task's cgroup, when there is one, holds them all.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { spawnSandbox, type Invocation } from './bubblewrap-command.js';
import type { TaskCgroup } from './cgroup.js';
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

export interface Watched {
  proc: RunningProcess;
  /** SIGKILLs the wrapper, bwrap and every task process it can find. */
  kill(): Promise<void>;
}

/** `wrapper` runs first (joining cgroups, prlimit) and execs bwrap's command line. */
export function watchSandbox(wrapper: readonly string[], invocation: Invocation, cgroup: TaskCgroup | undefined): Watched {
  const child = spawnSandbox([...wrapper, ...invocation.argv], invocation.inputs, invocation.stdin);
  const { pid, stdout, stderr } = child;
  if (pid === undefined || !stdout || !stderr) throw new Error(`could not start ${invocation.argv[0] ?? 'bwrap'}`);
  const sent = new Set<NodeJS.Signals>();
  let done = false;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('error', () => resolve({ code: 127, signal: null }));
    child.once('exit', (code, sig) => resolve(exitInfo(code, sig, sent)));
  }).finally(() => (done = true));
  const kill = async () => {
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
      await kill();
      await exited;
      return 'sigkill';
    },
  };
  return { proc, kill };
}
