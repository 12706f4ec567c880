/**
 * The bench's figures for sandboxes started ahead of their tasks and for live output (issue 15),
 * kept out of run.mjs, which only calls these and records what they return.
 *
 *   warm_start_ms         a claimed task → its script's first command, in a pooled sandbox
 *   output_first_byte_ms  a task's first printed line → a reader that was already waiting has it
 *
 * Both compare bash's `$EPOCHREALTIME` (read when the command runs) with this process's clock on
 * the same real-time base (stats.mjs calibrateRealtime).
 */
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodeFrames } from '@ferry/protocol';
import { median, parseEpochRealtime, perfToRealMs, realNowMs, round, sleep, spread, summary } from './stats.mjs';

/** The task PATH the agent gives every task (packages/agent/src/executor/types.ts). */
const TASK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** The server's default limits for a shell target, as in the sandbox breakdown. */
const LIMITS = { network: 'none', maxProcesses: 512, memoryBytes: 2 * 1024 ** 3 };

/**
 * `runs` tasks one after another on an executor with a pool of one (`mod` is the built
 * bubblewrap.js), each taken once the pool holds a sandbox whose shim is waiting: from just
 * before `create` (the agent has the task; the server has confirmed its start) to the first
 * command of a real task's `bash --noprofile --norc script`. Also the same with no pool (cold).
 */
export async function warmStart(mod, runs) {
  const once = async (executor) => {
    const t0 = realNowMs();
    const sandbox = await executor.create('bench-warm', LIMITS);
    const taken = realNowMs() - t0;
    const proc = sandbox.start({ argv: ['bash', '--noprofile', '--norc', '{script}'], env: { PATH: TASK_PATH }, script: 'echo "$EPOCHREALTIME"\n' });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.resume();
    await proc.exited;
    await sandbox.dispose();
    const first = parseEpochRealtime(out);
    if (!Number.isFinite(first)) throw new Error(`the warm-start task printed ${JSON.stringify(out)}, not $EPOCHREALTIME`);
    return { ms: first - t0, taken };
  };
  const pooled = new mod.BubblewrapExecutor({ pool: { max: 1 } });
  const warm = [];
  const take = [];
  try {
    await once(pooled); // the first claim makes the demand; it starts cold
    for (let i = 0; i < runs + 2; i++) {
      const deadline = Date.now() + 10_000;
      while ((pooled.poolStats?.ready ?? 0) < 1) {
        if (Date.now() > deadline) throw new Error('the pool held no ready sandbox within 10 s');
        await sleep(5);
      }
      await sleep(20); // let the refill's own work settle, as between two tasks of an idle agent
      const r = await once(pooled);
      if (i < 2) continue; // warm-ups
      warm.push(r.ms);
      take.push(r.taken);
    }
  } finally {
    await pooled.close();
  }
  const cold = [];
  const plain = new mod.BubblewrapExecutor();
  for (let i = 0; i < Math.min(runs, 10); i++) cold.push((await once(plain)).ms);
  const floor = await hostExec(Math.min(runs, 20));
  return {
    value: median(warm),
    spread: spread(warm),
    details: {
      runs: warm.length,
      warm: summary(warm),
      pool_take_ms: summary(take),
      cold_same_task: summary(cold),
      host_exec_floor: floor.length > 0 ? summary(floor) : null,
    },
    note: `cold (no pool), same task: ${round(median(cold), 1)} ms; the same bash exec'd by perl on the host: ${floor.length > 0 ? `${round(median(floor), 2)} ms` : 'not measured'}`,
  };
}

/** The interpreter of the agent's sandbox shim and spawner, where perl-base puts it. */
const PERL = '/usr/bin/perl';
/** clock_gettime's number, for perl's `syscall` (Time::HiRes is not in perl-base). */
const CLOCK_GETTIME = { x64: 228, arm64: 113 }[arch()];

/**
 * The floor under a warm start: the same task's bash exec'd by perl on the host, outside any
 * sandbox, as the sandbox's shim execs it. Perl reads CLOCK_REALTIME and execs `bash --noprofile
 * --norc script`; each run is the script's `$EPOCHREALTIME` minus that: the exec (perl's own
 * teardown included) and bash's start-up, with no shim work, hand-over or wake-up before it.
 * Empty where the clock's system call number is not known.
 */
async function hostExec(runs) {
  if (CLOCK_GETTIME === undefined) return [];
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-exec-'));
  const script = join(dir, 'script');
  writeFileSync(script, 'echo "$EPOCHREALTIME"\n');
  const perl = String.raw`my $t = "\0" x 16; syscall(${CLOCK_GETTIME}, 0, $t) == 0 or die "clock_gettime: $!\n"; my ($s, $ns) = unpack("q2", $t);
syswrite(STDOUT, sprintf("%d.%06d\n", $s, $ns / 1000)); exec { "bash" } "bash", "--noprofile", "--norc", $ARGV[0]; die "bash: $!\n"`;
  const xs = [];
  try {
    for (let i = 0; i < runs + 2; i++) {
      const out = await new Promise((resolve, reject) => {
        const child = spawn(PERL, ['-e', perl, script], { env: { PATH: TASK_PATH }, stdio: ['ignore', 'pipe', 'inherit'] });
        let text = '';
        child.stdout.on('data', (d) => (text += d));
        child.once('error', reject);
        child.once('close', () => resolve(text));
      });
      const [stamp, first] = out.trim().split('\n').map(parseEpochRealtime);
      if (i >= 2 && Number.isFinite(stamp) && Number.isFinite(first)) xs.push(first - stamp);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return xs;
}

/** Reads a task's output from offset 0 with long polls until stdout holds a whole first line; returns when it arrived and the line. */
async function firstLine(api, taskId) {
  let offset = 0;
  let text = '';
  for (;;) {
    const res = await api.request('GET', `/v1/tasks/${taskId}/output?offset=${offset}&waitSeconds=30`, { timeoutMs: 40_000 });
    if (res.status >= 400) throw new Error(`read output of ${taskId}: HTTP ${res.status}`);
    for (const f of decodeFrames(res.body)) if (f.stream === 1) text += Buffer.from(f.data).toString('utf8');
    if (text.includes('\n')) return { arrived: perfToRealMs(res.t), line: text.slice(0, text.indexOf('\n')) };
    if (res.headers['ferry-output-complete'] === 'true') throw new Error(`task ${taskId} ended without printing a line`);
    offset = Number(res.headers['ferry-next-offset']);
  }
}

/**
 * `runs` tasks, each `echo "$EPOCHREALTIME"; sleep 1` (the task goes on, so nothing at its end
 * flushes the line), each followed from offset 0 by a reader that starts right after the POST:
 * the figure is when that reader has the line minus when the task printed it.
 */
export async function outputFirstByte(api, target, runs) {
  const xs = [];
  for (let i = 0; i < runs; i++) {
    const { json } = await api.json('POST', '/v1/tasks', { target, script: 'echo "$EPOCHREALTIME"\nsleep 1\n' });
    const t0 = performance.now();
    const { arrived, line } = await firstLine(api, json.id);
    const printed = parseEpochRealtime(line);
    if (!Number.isFinite(printed)) throw new Error(`task ${json.id} printed ${JSON.stringify(line)}, not $EPOCHREALTIME`);
    xs.push(arrived - printed);
    // Let it end before the next, so one task's output path is measured at a time.
    while (performance.now() - t0 < 1_500) await sleep(50);
  }
  return { value: median(xs), spread: spread(xs), details: summary(xs) };
}

/**
 * The agents' sandbox spawners (packages/agent/src/executor/spawner.ts: a perl child of the agent
 * that forks bwrap for it), as `{ name: '<agent>_spawner', pid }` for the CPU accounting: their own
 * CPU, and that of the bwraps they reaped, are the agent's sandboxes' and would otherwise go
 * unattributed. An agent that has not made a sandbox yet has none.
 */
export function spawners(agents) {
  const found = [];
  for (const [name, agent] of agents) {
    if (!agent) continue;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
        if (ppid === String(agent.pid) && stat.includes(' (perl) ')) found.push({ name: `${name}_spawner`, pid: Number(entry) });
      } catch {
        // gone
      }
    }
  }
  return found;
}
