/**
 * This host's floors for a sandboxed task: what the kernel and the programs of a sandbox cost on
 * their own, without the agent, the server or anything of Ferry's Node code. Each variant is a
 * `sh` loop that runs one command N times; the figures are per iteration: the machine's CPU
 * (every process and kernel thread, from /proc/stat) and the wall time.
 *
 * The sandbox variants run bubblewrap with the namespaces and system mounts the agent's executor
 * gives every task (its `systemMounts()`, the same namespace options, tmpfs /work and /tmp), but
 * without the seccomp filter, the pipes for /etc/passwd and /etc/group, the hand-over and the
 * cgroups: so they are lower bounds of what one fresh sandbox costs here. The cgroup join is
 * measured on its own (cgroup v1 `pids` and `memory`, where writable).
 *
 * From them come three ceilings for issue 15's goals, each a bound that no code in the agent or
 * the server can beat without removing one of the sandbox's guarantees:
 *   - tasks/s: CPUs × 1000 / (the sandbox chain's machine CPU + the cgroup join's), as if the agent,
 *     the server and HTTPS cost nothing;
 *   - a cold sandbox's overhead over plain `true`: the chain's wall time over `true`'s, plus the
 *     cgroup join's wall time;
 *   - a warm start: bash's exec and start-up alone (perl exec'ing bash, minus perl alone).
 */
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

/** The namespace options `namespaceArgs('none')` in packages/agent/src/executor/bubblewrap-command.ts gives bwrap. */
const NAMESPACES = [
  '--unshare-pid',
  '--unshare-ipc',
  '--unshare-uts',
  '--unshare-cgroup-try',
  '--unshare-net',
  '--hostname',
  'ferry',
  '--die-with-parent',
  '--new-session',
];
const TASK_FS = ['--perms', '0700', '--tmpfs', '/work', '--perms', '1777', '--tmpfs', '/tmp', '--chdir', '/work', '--clearenv'];
const BASH_TRUE = ['/bin/bash', '--noprofile', '--norc', '-c', 'true'];
/** Perl that execs its arguments, as the shim ends. */
const PERL_EXEC = (argv) => ['/usr/bin/perl', '-e', 'exec { $ARGV[0] } @ARGV or exit 127', '--', ...argv];

const quote = (s) => `'${String(s).replaceAll("'", `'\\''`)}'`;

/** Busy jiffies of the whole machine (user, nice, system, irq, softirq, steal). */
function machineBusyTicks() {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return user + nice + system + irq + softirq + steal;
}

/** Runs argv to its end; its stdout. */
function run(argv) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${argv.join(' ').slice(0, 120)}…: exit ${code}: ${err.slice(0, 300)}`))));
  });
}

/** A cgroup v1 `cpuacct` group the loops run in: it counts every process of theirs, also those reparented to init (bwrap's pid 1 is). */
function cpuacctGroup() {
  const base = '/sys/fs/cgroup/cpuacct';
  if (!existsSync(join(base, 'cpuacct.usage'))) return undefined;
  const dir = join(base, `ferry-floor-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Runs `body` (a line of sh, `$i` is the iteration) `iterations` times in one `sh` loop; ms per
 * iteration. `cpu_ms` is the CPU of the loop's processes (a cgroup v1 `cpuacct` group holds the
 * loop and so everything it starts; null without one), which other programs on the machine do not
 * disturb. `machine_cpu_ms` is the whole machine's, kernel threads included, counted until
 * 200 ms after the loop (a network namespace is torn down by a kernel worker after its last
 * process exits): it includes whatever else runs, so it means something only on a quiet machine.
 */
async function loop(dir, name, body, iterations, clkTck, acct) {
  const script = join(dir, `${name}.sh`);
  const enter = acct ? `echo $$ > '${acct}/cgroup.procs'\n` : '';
  writeFileSync(script, `set -e\n${enter}i=0\nwhile [ $i -lt ${iterations} ]; do\n${body} >/dev/null\ni=$((i+1))\ndone\n`);
  const usage = () => (acct ? Number(readFileSync(join(acct, 'cpuacct.usage'), 'utf8')) / 1e6 : NaN);
  const acct0 = usage();
  const ticks0 = machineBusyTicks();
  const t0 = performance.now();
  await run(['/bin/sh', script]);
  const wallMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 200));
  const machineMs = ((machineBusyTicks() - ticks0) * 1000) / clkTck;
  const cpuMs = usage() - acct0;
  return { wall_ms: wallMs / iterations, cpu_ms: acct ? cpuMs / iterations : null, machine_cpu_ms: machineMs / iterations };
}

/** The v1 hierarchies the executor uses, where this process may make groups. */
function writableV1(controller) {
  const dir = `/sys/fs/cgroup/${controller}`;
  return existsSync(join(dir, 'cgroup.procs')) ? dir : undefined;
}

/**
 * @param {{ iterations: number, clkTck?: number }} options
 */
export async function measureFloors({ iterations, clkTck = 100 }) {
  const { systemMounts } = await import(pathToFileURL(join(import.meta.dirname, '../packages/agent/dist/executor/bubblewrap-command.js')).href);
  const bwrap = ['bwrap', ...NAMESPACES, ...(await systemMounts()), ...TASK_FS];
  const dir = mkdtempSync(join(tmpdir(), 'ferry-floors-'));
  const cgroups = ['pids', 'memory'].map(writableV1).filter(Boolean);
  const groupDirs = cgroups.map((c) => join(c, `ferry-floor-${process.pid}`));
  const acct = cpuacctGroup();
  try {
    const variants = {
      true: ['/bin/true'],
      bash: BASH_TRUE,
      perl: ['/usr/bin/perl', '-e', '1'],
      perl_exec_bash: PERL_EXEC(BASH_TRUE),
      bwrap_true: [...bwrap, '/bin/true'],
      bwrap_perl_true: [...bwrap, ...PERL_EXEC(['/bin/true'])],
      bwrap_perl_bash: [...bwrap, ...PERL_EXEC(BASH_TRUE)],
    };
    // Warm-up: page cache, the first namespace of a kind.
    for (const [name, argv] of Object.entries(variants)) await loop(dir, `warm-${name}`, argv.map(quote).join(' '), 5, clkTck, acct);
    const results = {};
    // Two passes, alternated, so a burst of other work does not land on one variant only; the lower of the two is kept.
    for (let pass = 0; pass < 2; pass++) {
      for (const [name, argv] of Object.entries(variants)) {
        const r = await loop(dir, name, argv.map(quote).join(' '), iterations, clkTck, acct);
        const prev = results[name];
        results[name] = prev ? Object.fromEntries(Object.keys(r).map((k) => [k, Math.min(prev[k], r[k])])) : r;
      }
    }
    let join_ = null;
    if (cgroups.length > 0) {
      // A group per iteration, made, joined by a short-lived shell that then execs `true`, and removed, as the executor does per task; against the same without the join.
      const mk = groupDirs.map((g) => `mkdir ${quote(g)}/$i`).join('; ');
      const rm = groupDirs.map((g) => `rmdir ${quote(g)}/$i`).join('; ');
      const enter = groupDirs.map((g) => `echo $$ > ${quote(g)}/$i/cgroup.procs`).join('; ');
      for (const g of groupDirs) await run(['/bin/mkdir', '-p', g]);
      const joined = await loop(
        dir,
        'cgroup_join',
        `${mk}; /bin/sh -c ${quote(`${enter.replaceAll('$i', '"$1"')}; exec /bin/true`)} sh $i; ${rm}`,
        iterations,
        clkTck,
        acct,
      );
      const plain = await loop(dir, 'cgroup_nojoin', `${mk}; /bin/sh -c 'exec /bin/true'; ${rm}`, iterations, clkTck, acct);
      join_ = {
        hierarchies: cgroups.map((c) => c.split('/').pop()),
        wall_ms: joined.wall_ms - plain.wall_ms,
        cpu_ms: joined.cpu_ms - plain.cpu_ms,
        machine_cpu_ms: joined.machine_cpu_ms - plain.machine_cpu_ms,
      };
    }
    const cores = cpus().length;
    const chain = results.bwrap_perl_bash;
    // The processes' own CPU, not the machine's: a lower bound that other programs cannot inflate.
    const cpuPerTask = (chain.cpu_ms ?? chain.machine_cpu_ms) + Math.max(0, join_?.cpu_ms ?? join_?.machine_cpu_ms ?? 0);
    return {
      iterations,
      cores,
      per_iteration: results,
      cgroup_join: join_,
      ceilings: {
        tasks_per_s: (cores * 1000) / cpuPerTask,
        sandbox_overhead_ms: results.bwrap_perl_true.wall_ms - results.true.wall_ms + Math.max(0, join_?.wall_ms ?? 0),
        warm_start_ms: results.perl_exec_bash.wall_ms - results.perl.wall_ms,
      },
    };
  } finally {
    for (const g of [...groupDirs, ...(acct ? [acct] : [])]) await run(['/bin/rmdir', g]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const iterations = Number(process.argv[2] ?? 200);
  process.stdout.write(`${JSON.stringify(await measureFloors({ iterations }), null, 2)}\n`);
}
