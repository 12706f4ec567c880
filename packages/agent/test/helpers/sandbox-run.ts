/**
 * Running scripts in real bubblewrap sandboxes from tests: skip only when the host cannot
 * sandbox at all, collect output, wait for a line without sleeping.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { BubblewrapExecutor, bubblewrapProblem } from '../../src/executor/bubblewrap.js';
import { TASK_PATH, type RunningProcess, type Sandbox, type SandboxLimits } from '../../src/executor/types.js';

const LIMITS: SandboxLimits = { maxProcesses: 64, memoryBytes: 256 << 20, network: 'none' };
const executor = new BubblewrapExecutor();
const problem = await bubblewrapProblem();

/** Independent of the executor's own probe: can this host make namespaces with bwrap at all, as root? */
const hostCanSandbox = process.getuid?.() === 0 && spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-pid', '--unshare-net', 'true']).status === 0;

/** Skips only when the host cannot sandbox; an executor that fails on a capable host is a failure. */
export function usable(t: TestContext): boolean {
  if (problem && hostCanSandbox) assert.fail(`this host can run bwrap, yet the executor reports: ${problem}`);
  if (problem) t.skip(`bubblewrap unusable on this host: ${problem}`);
  return !problem;
}

interface Collected {
  out(): string;
  err(): string;
  /** Resolves once stdout contains `text`; rejects after `ms` with what was seen. */
  waitFor(text: string | RegExp, ms?: number): Promise<void>;
}

export function collect(proc: RunningProcess): Collected {
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const changed = () => waiters.forEach((w) => w());
  proc.stdout.on('data', (d: Buffer) => ((out += d.toString()), changed()));
  proc.stderr.on('data', (d: Buffer) => ((err += d.toString()), changed()));
  const waitFor = (text: string | RegExp, ms = 20_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${String(text)} within ${ms}ms; stdout: ${out} stderr: ${err}`)), ms);
      const check = () => {
        if (typeof text === 'string' ? !out.includes(text) : !text.test(out)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  return { out: () => out, err: () => err, waitFor };
}

export interface Started {
  sandbox: Sandbox;
  proc: RunningProcess;
  io: Collected;
}

/** Starts `script` with `argv` in a fresh sandbox; the caller disposes of it. */
export async function startTask(script: string, argv = ['bash', '--noprofile', '--norc', '{script}'], limits = LIMITS): Promise<Started> {
  const sandbox = await executor.create('t', limits);
  const proc = sandbox.start({ argv, env: { PATH: TASK_PATH, FERRY_TASK_ID: 't' }, script });
  return { sandbox, proc, io: collect(proc) };
}

/** Runs `script` to completion in a fresh sandbox and disposes of it. */
export async function runTask(script: string, argv?: string[], limits?: SandboxLimits) {
  const { sandbox, proc, io } = await startTask(script, argv, limits);
  const exit = await proc.exited;
  await sandbox.dispose();
  return { exit, out: io.out(), err: io.err() };
}

/** Every `ferry` cgroup parent the tasks of this process may use (v1 per controller, v2 hybrid or unified). */
export function ferryCgroupDirs(): string[] {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean);
  return lines.flatMap((l) => {
    const [, controllers = '', path = '/'] = l.split(':');
    if (controllers) return controllers.split(',').map((c) => join('/sys/fs/cgroup', c, path, 'ferry'));
    return [join('/sys/fs/cgroup/unified', path, 'ferry'), join('/sys/fs/cgroup', path, 'ferry')];
  });
}

/** Task cgroups of the process with this owner tag, over every hierarchy. */
export const cgroupsOf = (tag: string): string[] =>
  ferryCgroupDirs().flatMap((dir) => (existsSync(dir) ? readdirSync(dir).filter((e) => e.startsWith(`ferry-${tag}-`)) : []).map((e) => join(dir, e)));
