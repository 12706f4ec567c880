#!/usr/bin/env node
/**
 * Ferry benchmarks (issue 7). Runs the real `ferry server` and `ferry agent start` processes on
 * 127.0.0.1 with the bubblewrap sandbox, prints a table and writes bench/results.json.
 *
 *   npm run bench                 full run (several minutes)
 *   npm run bench -- --quick      smaller counts, under 2 minutes
 *   npm run bench -- --smoke      tiny counts, every phase: proves the bench still runs (the test
 *                                 suite runs this; its figures mean nothing)
 *   npm run bench -- --out FILE   write the JSON elsewhere
 *
 * Needs `npx tsc --build` first, Linux, root and bwrap (the sandbox executor's own needs).
 * How every figure is measured: bench/README.md.
 */
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { clearTimeout, setTimeout } from 'node:timers';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  AGENT_LAUNCH,
  Api,
  CLI,
  Cleanup,
  ROOT,
  benchRoot,
  cpuNs,
  cpuTicks,
  createTarget,
  followOutputToEnd,
  foreignFerryProcesses,
  readOutputToEnd,
  rssMb,
  setSecrets,
  startAgent,
  startServer,
  targetKey,
  withCpuAccounting,
} from './harness.mjs';
import { manyAgents } from './many-agents.mjs';
import { MASKER_KEYS, MASKER_PATH, measureMasker } from './masker.mjs';
import { backlogDeliveryMs, lostAgentDetectMs } from './faults.mjs';
import { sampleSecrets } from './fixtures/masker-fixtures.mjs';
import { measureOverhead } from './fixtures/sandbox-overhead.mjs';
import { measurePublicNetwork } from './fixtures/network-public.mjs';
import { measureFloors } from './floors.mjs';
import { outputFirstByte, spawners, warmStart } from './sandbox-pool.mjs';
import { clusterCpuTicks, startPostgres, startReplicas } from './postgres.mjs';
import {
  calibrateRealtime,
  median,
  parseEpochRealtime,
  percentile,
  perfToRealMs,
  pool,
  realNowMs,
  round,
  roundSizes,
  sleep,
  spread,
  summary,
} from './stats.mjs';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write('usage: npm run bench [-- --quick | --smoke] [-- --out FILE]\n');
  process.exit(0);
}
const SMOKE = argv.includes('--smoke');
const QUICK = argv.includes('--quick') || SMOKE;
const MODE = SMOKE ? 'smoke' : QUICK ? 'quick' : 'full';
const outIndex = argv.indexOf('--out');
const OUT = outIndex >= 0 && argv[outIndex + 1] ? argv[outIndex + 1] : join(ROOT, 'bench', 'results.json');

/** Every count and duration of the run, in one place. */
const PLAN = SMOKE
  ? {
      spawnRuns: 5,
      floorIterations: 5,
      rttRuns: 5,
      overheadBatches: 1,
      overheadRuns: 2,
      dispatchRounds: 1,
      dispatchTasks: 4,
      roundtripTasks: 3,
      throughputRuns: 1,
      throughputTasks: 8,
      outputRuns: 1,
      outputMiB: 2,
      idleSeconds: 2,
      idleSubSeconds: 1,
      simAgents: 10,
      simRounds: 1,
      simTasks: 6,
      rssSamples: 1,
      faultRuns: 1,
      cliRuns: 2,
      pgDispatchRounds: 1,
      pgDispatchTasks: 4,
      pgThroughputRuns: 1,
      pgThroughputTasks: 8,
      pgOutputRuns: 1,
      pgOutputMiB: 2,
      pgReplicaRuns: 1,
      pgReplicaTasks: 9,
      deadlineMs: 7 * 60_000,
    }
  : QUICK
    ? {
        spawnRuns: 200,
        floorIterations: 100,
        rttRuns: 300,
        overheadBatches: 3,
        overheadRuns: 10,
        dispatchRounds: 3,
        dispatchTasks: 150,
        roundtripTasks: 60,
        throughputRuns: 3,
        throughputTasks: 100,
        outputRuns: 3,
        outputMiB: 50,
        idleSeconds: 10,
        idleSubSeconds: 2,
        simAgents: 200,
        simRounds: 3,
        simTasks: 120,
        rssSamples: 3,
        faultRuns: 1,
        cliRuns: 10,
        pgDispatchRounds: 2,
        pgDispatchTasks: 100,
        pgThroughputRuns: 2,
        pgThroughputTasks: 100,
        pgOutputRuns: 2,
        pgOutputMiB: 50,
        pgReplicaRuns: 2,
        pgReplicaTasks: 150,
        deadlineMs: 6 * 60_000,
      }
    : {
        spawnRuns: 500,
        floorIterations: 300,
        rttRuns: 1000,
        overheadBatches: 5,
        overheadRuns: 20,
        dispatchRounds: 5,
        dispatchTasks: 500,
        roundtripTasks: 200,
        throughputRuns: 3,
        throughputTasks: 500,
        outputRuns: 3,
        outputMiB: 200,
        idleSeconds: 30,
        idleSubSeconds: 5,
        simAgents: 10_000,
        simRounds: 3,
        simTasks: 300,
        rssSamples: 5,
        faultRuns: 3,
        cliRuns: 20,
        pgDispatchRounds: 5,
        pgDispatchTasks: 500,
        pgThroughputRuns: 3,
        pgThroughputTasks: 500,
        pgOutputRuns: 3,
        pgOutputMiB: 200,
        pgReplicaRuns: 3,
        pgReplicaTasks: 600,
        deadlineMs: 30 * 60_000,
      };

/** Result keys in the order of the table; `goal` is [op, value]. */
const FIGURES = [
  { key: 'spawn_floor_ms', label: 'spawn + reap `true` (floor)', unit: 'ms', compare: 'floor for any task start' },
  { key: 'https_rtt_ms', label: 'HTTPS round trip, kept alive (floor)', unit: 'ms', compare: 'floor for every API step' },
  { key: 'sandbox_overhead_ms', label: 'sandbox overhead over plain `true`', unit: 'ms', goal: ['<=', 3], compare: 'cold (no pool); vs spawn floor' },
  { key: 'warm_start_ms', label: 'claimed task → first command, pooled sandbox', unit: 'ms', goal: ['<=', 1] },
  { key: 'public_network_extra_ms', label: '`--network public` task over `none`', unit: 'ms', compare: 'namespace + filter + pasta' },
  { key: 'dispatch_p50_ms', label: 'dispatch ack → process start, p50', unit: 'ms', goal: ['<=', 3], compare: '≥ RTT + sandbox setup' },
  { key: 'dispatch_p95_ms', label: 'dispatch ack → process start, p95', unit: 'ms' },
  { key: 'dispatch_p99_ms', label: 'dispatch ack → process start, p99', unit: 'ms', goal: ['<=', 10] },
  { key: 'roundtrip_p50_ms', label: 'create `true` → final status read, p50', unit: 'ms', goal: ['<=', 8], compare: '≥ ~4 RTT + sandboxed `true`' },
  { key: 'tasks_per_s', label: 'trivial tasks/s, 2 agents × 4', unit: '/s', goal: ['>=', 200], compare: '≤ 8 / (sandboxed `true` time)' },
  { key: 'output_first_byte_ms', label: "task's first line → a waiting reader has it", unit: 'ms', goal: ['<=', 20] },
  { key: 'output_mb_per_s', label: 'task stdout → stored on server', unit: 'MiB/s', goal: ['>=', 200] },
  { key: 'output_live_reader_mb_per_s', label: 'the same, read to the end by a live follower', unit: 'MiB/s', compare: 'goal ≥ 0.9 × output_mb_per_s' },
  { key: 'masked_output_ratio', label: 'masked / unmasked output rate', unit: '', compare: '1 = masking costs nothing' },
  { key: 'masker_mb_per_s_0_secrets', label: 'masker, 0 secrets', unit: 'MiB/s' },
  { key: 'masker_mb_per_s_10_secrets', label: 'masker, 10 secrets', unit: 'MiB/s', compare: 'vs output_mb_per_s' },
  { key: 'masker_mb_per_s_100_secrets', label: 'masker, 100 secrets', unit: 'MiB/s' },
  { key: 'agent_idle_rss_mb', label: 'idle agent RSS', unit: 'MiB', goal: ['<=', 60] },
  { key: 'agent_idle_cpu_pct', label: 'idle agent CPU', unit: '%', goal: ['<=', 0.1] },
  { key: 'server_rss_mb_10000_agents', label: 'server RSS, agents long-polling', unit: 'MiB', goal: ['<=', 1000] },
  { key: 'dispatch_p99_ms_10000_agents', label: 'dispatch p99 from POST sent, agents long-polling', unit: 'ms', goal: ['<=', 50] },
  {
    key: 'lost_agent_detect_ms',
    label: 'kill -9 agent → task lost (default lease)',
    unit: 'ms',
    goal: ['<=', 60_000],
    compare: 'lease 15 s + sweep ≤ 1 s; peers: 4 min to 1 h',
  },
  { key: 'cli_start_ms', label: '`ferry --help`, process start to exit', unit: 'ms', goal: ['<=', 100], compare: 'vs `node -e 0`' },
  { key: 'cli_list_ms', label: '`ferry task list` against a local server', unit: 'ms', goal: ['<=', 150], compare: 'vs cli_start_ms + HTTPS' },
  { key: 'backlog_20mb_delivery_ms', label: '20 MiB spooled backlog delivered after a server restart', unit: 'ms', compare: 'vs output_mb_per_s' },
  // The PostgreSQL section (bench/postgres.mjs): the same measurements on a server whose store is PostgreSQL 15.
  { key: 'pg_dispatch_p50_ms', label: 'PostgreSQL: dispatch ack → process start, p50', unit: 'ms', goal: ['<=', 5], compare: 'vs dispatch_p50_ms (SQLite)' },
  { key: 'pg_dispatch_p99_ms', label: 'PostgreSQL: dispatch ack → process start, p99', unit: 'ms', goal: ['<=', 20], compare: 'vs dispatch_p99_ms (SQLite)' },
  // Its goal is set once the SQLite figure of the same run is known: ≥ 0.8 × tasks_per_s.
  { key: 'pg_tasks_per_s', label: 'PostgreSQL: trivial tasks/s, 2 agents × 4', unit: '/s', compare: 'goal ≥ 0.8 × tasks_per_s' },
  { key: 'pg_output_mb_per_s', label: 'PostgreSQL: task stdout → stored on server', unit: 'MiB/s', goal: ['>=', 150], compare: 'vs output_mb_per_s (SQLite)' },
  {
    key: 'pg_replicas_tasks_per_s',
    label: 'PostgreSQL, 3 replicas: tasks/s, submitted round-robin',
    unit: '/s',
    compare: 'vs pg_tasks_per_s (one server)',
  },
];

const values = Object.fromEntries(FIGURES.map((f) => [f.key, null]));
const spreads = {};
const notes = {};
const details = {};
const errors = [];

function set(key, value, range) {
  values[key] = round(value);
  if (range) spreads[key] = range.map((x) => round(x));
}

function log(text) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

/** Runs one phase; a failure is recorded and the next phase still runs. */
async function phase(name, fn) {
  const t0 = performance.now();
  log(`${name} …`);
  try {
    await fn();
    log(`${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return true;
  } catch (err) {
    errors.push({ phase: name, message: err.message });
    log(`${name} FAILED: ${err.stack ?? err.message}`);
    return false;
  }
}

/** Runs `fn` noting where the CPU went and each process's RSS afterwards (details.cpu, details.rss_mb_after). */
async function accounted(name, procs, fn) {
  const { result, usage } = await withCpuAccounting(procs, fn, CLK_TCK);
  (details.cpu ??= {})[name] = usage;
  (details.rss_mb_after ??= {})[name] = Object.fromEntries(procs.map((p) => [p.name, round(rssMb(p.pid), 1)]));
  return result;
}

const cleanup = new Cleanup();
let cleaning;
const cleanUpOnce = () => (cleaning ??= cleanup.run());
process.on('exit', () => cleanup.runSync());
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanUpOnce().finally(() => process.exit(130));
  });
}
const hardStop = setTimeout(() => {
  log(`the whole run passed its bound of ${PLAN.deadlineMs / 60_000} min; stopping`);
  void cleanUpOnce().finally(() => process.exit(2));
}, PLAN.deadlineMs);

// ---------------------------------------------------------------------------------------

function preflight() {
  if (process.platform !== 'linux') throw new Error('the benchmarks need Linux (bubblewrap, /proc)');
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc --build\` first`);
  if (process.getuid?.() !== 0) throw new Error('the sandbox executor needs root (see packages/agent/src/executor/bubblewrap.ts)');
}

/** The commit measured, and whether packages/ differs from it (null outside a git checkout). */
function sourceVersion() {
  try {
    const commit = execFileSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty =
      execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'packages'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return { commit, packages_modified: dirty };
  } catch {
    return null;
  }
}

/** A target whose output the server stores without redaction, when this version has that setting. */
let redactNoneTarget;

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // Linux's USER_HZ is 100
}

async function spawnFloor() {
  const once = () =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn('true', { stdio: 'ignore' });
      child.once('error', reject);
      child.once('exit', () => resolve(performance.now() - t0));
    });
  for (let i = 0; i < 10; i++) await once();
  const xs = [];
  for (let i = 0; i < PLAN.spawnRuns; i++) xs.push(await once());
  set('spawn_floor_ms', median(xs), spread(xs));
  details.spawn_floor = summary(xs);
}

/** This host's bounds for a sandboxed task (bench/floors.mjs); the notes of the goals they bound say them. */
async function hostFloors() {
  const f = await measureFloors({ iterations: PLAN.floorIterations, clkTck: CLK_TCK });
  details.floors = JSON.parse(JSON.stringify(f, (_, v) => (typeof v === 'number' ? round(v) : v)));
}

/** The bound bench/floors.mjs found for a goal's key, as a note: what no code of Ferry's can beat on this host. */
function floorNote(key) {
  const c = details.floors?.ceilings;
  if (!c) return undefined;
  if (key === 'tasks_per_s') return `this host's ceiling from the sandbox's own processes alone: ${fmt(c.tasks_per_s)}/s`;
  if (key === 'sandbox_overhead_ms') return `this host's floor (bwrap → perl → true, cgroup join): ${fmt(c.sandbox_overhead_ms)} ms`;
  if (key === 'warm_start_ms') return `this host's floor (bash's exec and start-up alone): ${fmt(c.warm_start_ms)} ms`;
  return undefined;
}

async function sandboxOverhead() {
  const mod = await import(pathToFileURL(join(ROOT, 'packages/agent/dist/executor/bubblewrap.js')).href);
  const problem = await mod.bubblewrapProblem();
  if (problem) throw new Error(`the sandbox does not work here: ${problem}`);
  await measureOverhead(new mod.BubblewrapExecutor(), 3); // warm-up: host inspection, page cache
  const batches = [];
  for (let i = 0; i < PLAN.overheadBatches; i++) batches.push(await measureOverhead(new mod.BubblewrapExecutor(), PLAN.overheadRuns));
  const extra = batches.map((b) => b.extraMs);
  set('sandbox_overhead_ms', median(extra), spread(extra));
  details.sandbox_overhead = {
    batches: batches.length,
    runs_per_batch: PLAN.overheadRuns,
    plain_ms: round(median(batches.map((b) => b.plainMs))),
    sandboxed_ms: round(median(batches.map((b) => b.sandboxMs))),
    breakdown_ms: await sandboxBreakdown(mod),
  };
  const b = details.sandbox_overhead.breakdown_ms.with_cgroups;
  notes.sandbox_overhead_ms = `a task's \`bash script\`: create ${fmt(b.create)} + run ${fmt(b.run_bash_true)} + dispose ${fmt(b.dispose)} ms`;
}

async function publicNetwork() {
  const { BubblewrapExecutor } = await import(pathToFileURL(join(ROOT, 'packages/agent/dist/executor/bubblewrap.js')).href);
  const executor = new BubblewrapExecutor();
  const problem = await executor.publicNetworkProblem();
  if (problem) throw new Error(`--network public does not work here: ${problem}`);
  const r = (details.public_network = await measurePublicNetwork(executor, QUICK ? 10 : 30));
  set('public_network_extra_ms', r.extraMs);
  const b = r.breakdownMs;
  notes.public_network_extra_ms = `public vs none, ms: create ${fmt(b.create.public)} vs ${fmt(b.create.none)}, run ${fmt(b.run.public)} vs ${fmt(b.run.none)}, dispose ${fmt(b.dispose.public)} vs ${fmt(b.dispose.none)}`;
}

/** Sets `key` from what a bench/sandbox-pool.mjs function measured. */
async function record(key, measured) {
  const { value, spread: range, details: more, note } = await measured;
  set(key, value, range);
  details[key.replace(/_ms$/, '')] = more;
  if (note) notes[key] = note;
}

async function warmStartOf() {
  const mod = await import(pathToFileURL(join(ROOT, 'packages/agent/dist/executor/bubblewrap.js')).href);
  return warmStart(mod, PLAN.overheadRuns * 2);
}

/** Where a sandboxed task's fixed cost goes: create (folders, cgroup), start → exit of a real task's `bash script` running `true`, dispose. */
async function sandboxBreakdown(mod) {
  const { runSpecFor } = await import(pathToFileURL(join(ROOT, 'packages/agent/dist/runtime.js')).href);
  // The server's default limits for a shell target (the executor takes them per task).
  const limits = { network: 'none', maxProcesses: 512, memoryBytes: 2 * 1024 ** 3 };
  const spec = runSpecFor({
    id: 't_benchbreakdown0',
    target: { id: 'g_bench', name: 'bench', type: 'shell' },
    script: 'true\n',
    timeoutSeconds: 60,
    leaseSeconds: 15,
    settings: {},
  });
  const out = {};
  for (const cgroups of [true, false]) {
    const executor = new mod.BubblewrapExecutor({ cgroups });
    const c = [];
    const r = [];
    const d = [];
    for (let i = 0; i < PLAN.overheadRuns + 2; i++) {
      let t = performance.now();
      const sandbox = await executor.create(`bench-breakdown-${i}`, limits);
      c.push(performance.now() - t);
      t = performance.now();
      await sandbox.start(spec).exited;
      r.push(performance.now() - t);
      t = performance.now();
      await sandbox.dispose();
      d.push(performance.now() - t);
    }
    out[cgroups ? 'with_cgroups' : 'without_cgroups'] = {
      create: round(median(c.slice(2))),
      run_bash_true: round(median(r.slice(2))),
      dispose: round(median(d.slice(2))),
    };
  }
  return out;
}

/** Wall time of `node <cli> ...args` from spawn to exit, median of PLAN.cliRuns after a warm-up. */
async function cliMs(args, env) {
  const once = () =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn(process.execPath, [CLI, ...args], { stdio: 'ignore', env });
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`ferry ${args.join(' ')} exited ${code}`))));
    });
  await once();
  const xs = [];
  for (let i = 0; i < PLAN.cliRuns; i++) xs.push(await once());
  return xs;
}

/** How fast the CLI starts: `ferry --help` (nothing but the command table) and `ferry task list` (schemas, HTTPS, one request). */
async function cliStart(server, root) {
  const env = { ...process.env, FERRY_CONFIG: join(root, 'cli-config.json') };
  for (const key of ['FERRY_SERVER', 'FERRY_TOKEN', 'FERRY_CA_FINGERPRINT']) delete env[key];
  execFileSync(process.execPath, [CLI, 'login', '--server', server.url, '--token', server.adminToken, '--ca-fingerprint', server.fingerprint], {
    env,
    stdio: 'ignore',
  });
  const node = await new Promise((resolve) => {
    const t0 = performance.now();
    spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).once('exit', () => resolve(performance.now() - t0));
  });
  const help = await cliMs(['--help'], env);
  const list = await cliMs(['task', 'list'], env);
  set('cli_start_ms', median(help), spread(help));
  set('cli_list_ms', median(list), spread(list));
  details.cli_start = { node_e_0_ms: round(node), help: summary(help), task_list: summary(list) };
}

async function httpsRtt(server) {
  const api = new Api(server.url, server.caPem, undefined, { maxSockets: 1 });
  try {
    const once = async () => {
      const t0 = performance.now();
      const res = await api.request('GET', '/v1/health');
      if (res.status !== 200) throw new Error(`GET /v1/health → ${res.status}`);
      return res.t - t0;
    };
    for (let i = 0; i < 50; i++) await once();
    const xs = [];
    for (let i = 0; i < PLAN.rttRuns; i++) xs.push(await once());
    set('https_rtt_ms', median(xs), spread(xs));
    details.https_rtt = summary(xs);
  } finally {
    api.close();
  }
}

async function dispatchOne(api, target) {
  const sent = realNowMs();
  const { json, t } = await api.json('POST', '/v1/tasks', { target, script: 'echo "$EPOCHREALTIME"\n' });
  const ack = perfToRealMs(t);
  const out = await readOutputToEnd(api, json.id, { deadlineMs: 30_000 });
  if (out.status !== 'succeeded') throw new Error(`dispatch task ${json.id} ended ${out.status}`);
  const started = parseEpochRealtime(out.stdout.toString('utf8'));
  if (!Number.isFinite(started)) throw new Error(`dispatch task ${json.id} printed ${JSON.stringify(out.stdout.toString('utf8'))}, not $EPOCHREALTIME`);
  // Server-side timestamps (ms): createdAt is set in the POST handler, startedAt when the agent's
  // "started" report arrives (sent right after spawn() returned). They split the latency in two.
  const { json: task } = await api.json('GET', `/v1/tasks/${json.id}`);
  const createdAt = Date.parse(task.createdAt);
  const startedAt = Date.parse(task.startedAt);
  return { fromAck: started - ack, fromSend: started - sent, createdToReport: startedAt - createdAt, reportToScript: started - startedAt };
}

/** Sets `<prefix>dispatch_p50/p95/p99_ms`; the PostgreSQL section passes its server, its prefix and its counts. */
async function dispatch(server, target, { prefix = '', tasks = PLAN.dispatchTasks, rounds: roundCount = PLAN.dispatchRounds } = {}) {
  for (let i = 0; i < 5; i++) await dispatchOne(server.api, target); // warm-up
  const rounds = [];
  const all = [];
  const fromSend = [];
  const createdToReport = [];
  const reportToScript = [];
  for (const size of roundSizes(tasks, roundCount)) {
    calibrateRealtime();
    const xs = [];
    for (let i = 0; i < size; i++) {
      const r = await dispatchOne(server.api, target);
      xs.push(r.fromAck);
      fromSend.push(r.fromSend);
      createdToReport.push(r.createdToReport);
      reportToScript.push(r.reportToScript);
    }
    all.push(...xs);
    rounds.push({ p50: percentile(xs, 50), p95: percentile(xs, 95), p99: percentile(xs, 99) });
  }
  for (const p of ['p50', 'p95', 'p99']) {
    const xs = rounds.map((r) => r[p]);
    if (FIGURES.some((f) => f.key === `${prefix}dispatch_${p}_ms`)) set(`${prefix}dispatch_${p}_ms`, median(xs), spread(xs));
    else (details[`${prefix}dispatch`] ??= {})[p] = round(median(xs));
  }
  const negative = all.filter((x) => x < 0).length;
  details[`${prefix}dispatch`] = {
    ...details[`${prefix}dispatch`],
    tasks: all.length,
    rounds: rounds.length,
    all_samples_from_ack: summary(all),
    all_samples_from_send: summary(fromSend),
    started_before_ack: negative,
    server_created_to_started_report: summary(createdToReport),
    started_report_to_script_running: summary(reportToScript),
  };
  notes[`${prefix}dispatch_p50_ms`] =
    `p50 split: created→agent reports spawn ${fmt(percentile(createdToReport, 50))} ms, report→script runs ${fmt(percentile(reportToScript, 50))} ms`;
}

async function roundtrip(server, target) {
  const once = async () => {
    const t0 = performance.now();
    const { json } = await server.api.json('POST', '/v1/tasks', { target, script: 'true\n' });
    await readOutputToEnd(server.api, json.id, { collect: false, deadlineMs: 30_000 });
    const final = await server.api.json('GET', `/v1/tasks/${json.id}`);
    if (final.json.status !== 'succeeded') throw new Error(`roundtrip task ${json.id} ended ${final.json.status}`);
    return final.t - t0;
  };
  for (let i = 0; i < 5; i++) await once();
  const xs = [];
  for (let i = 0; i < PLAN.roundtripTasks; i++) xs.push(await once());
  set('roundtrip_p50_ms', median(xs), spread(xs));
  details.roundtrip = summary(xs);
}

/** `submitVia`: the servers the tasks are POSTed to, round-robin (replicas); waiting and checking go through `server`. */
async function throughputRun(server, target, n, submitVia = [server]) {
  const t0 = performance.now();
  const ids = await pool(
    Array.from({ length: n }),
    8,
    async (_, i) => (await submitVia[i % submitVia.length].api.json('POST', '/v1/tasks', { target, script: 'true\n' })).json.id,
  );
  const submitMs = performance.now() - t0;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`${n} trivial tasks not done within 120 s`);
    const [q, r] = await Promise.all(['queued', 'running'].map((s) => server.api.json('GET', `/v1/tasks?status=${s}&limit=1`)));
    if (q.json.tasks.length === 0 && r.json.tasks.length === 0) break;
    await sleep(50);
  }
  const clientMs = performance.now() - t0;
  const { json } = await server.api.json('GET', `/v1/tasks?target=${target}&limit=${Math.min(1000, n)}`);
  const mine = new Set(ids);
  const tasks = json.tasks.filter((t) => mine.has(t.id));
  if (tasks.length !== n) throw new Error(`found ${tasks.length} of ${n} throughput tasks in the list`);
  const bad = tasks.filter((t) => t.status !== 'succeeded');
  if (bad.length > 0) throw new Error(`${bad.length} throughput tasks did not succeed, e.g. ${bad[0].id}: ${bad[0].status} ${bad[0].reason ?? ''}`);
  const first = Math.min(...tasks.map((t) => Date.parse(t.createdAt)));
  const last = Math.max(...tasks.map((t) => Date.parse(t.finishedAt)));
  const byAgent = {};
  for (const t of tasks) byAgent[t.agent] = (byAgent[t.agent] ?? 0) + 1;
  return { perS: n / ((last - first) / 1000), clientPerS: n / (clientMs / 1000), submitPerS: n / (submitMs / 1000), byAgent };
}

/** Sets `key`; the PostgreSQL section passes its servers (`submitVia`: replicas, round-robin), its key and its counts. */
async function throughput(server, target, { key = 'tasks_per_s', tasks = PLAN.throughputTasks, runCount = PLAN.throughputRuns, submitVia = [server] } = {}) {
  await throughputRun(server, target, 20, submitVia); // warm-up
  const runs = [];
  for (let i = 0; i < runCount; i++) runs.push(await throughputRun(server, target, tasks, submitVia));
  const xs = runs.map((r) => r.perS);
  set(key, median(xs), spread(xs));
  details[key === 'tasks_per_s' ? 'throughput' : key.replace(/_per_s$/, '')] = {
    tasks_per_run: tasks,
    submitted_round_robin_to_servers: submitVia.length,
    runs: runs.length,
    submit_concurrency: 8,
    client_seen_tasks_per_s: runs.map((r) => round(r.clientPerS)),
    submit_per_s: runs.map((r) => round(r.submitPerS)),
    tasks_by_agent: runs.map((r) => r.byAgent),
  };
}

/**
 * One task writing `mib` MiB to stdout; MiB/s from POST to "succeeded with every byte stored".
 * Waiting polls GET /v1/tasks/:id every 25 ms, so the plain figure has no reader's cost in it.
 * With `follow`, a reader streams the output meanwhile through the client package's follower,
 * as `ferry run` does (`output_live_reader_mb_per_s`).
 */
async function outputRun(server, target, mib, { follow = false } = {}) {
  const total = mib * 2 ** 20;
  // 1 MiB of random bytes written `mib` times: incompressible, and cheap to produce.
  const script = `head -c 1048576 /dev/urandom > /tmp/chunk\nfor i in $(seq ${mib}); do cat /tmp/chunk; done\n`;
  const t0 = performance.now();
  const { json } = await server.api.json('POST', '/v1/tasks', { target, script });
  const reader = follow ? followOutputToEnd(server, json.id, { deadlineMs: 300_000 }) : undefined;
  const deadline = Date.now() + 300_000;
  let final;
  for (;;) {
    final = await server.api.json('GET', `/v1/tasks/${json.id}`);
    if (final.json.status !== 'queued' && final.json.status !== 'running') break;
    if (Date.now() > deadline) throw new Error(`output task ${json.id} still ${final.json.status} after 300 s`);
    await sleep(25);
  }
  const readerEnd = reader ? (await reader).t : undefined;
  if (final.json.status !== 'succeeded' || final.json.outputBytes !== total) {
    throw new Error(`output task ${json.id}: ${final.json.status}, ${final.json.outputBytes} of ${total} bytes stored`);
  }
  return { stored: mib / ((final.t - t0) / 1000), read: readerEnd ? mib / ((readerEnd - t0) / 1000) : undefined };
}

/** Ten secret values: the masker module's realistic samples when it has them, else random tokens. */
async function tenSecrets() {
  try {
    const mod = await import(pathToFileURL(MASKER_PATH).href);
    if (typeof mod.SecretMasker === 'function') return sampleSecrets(10);
  } catch {
    // no masker module: any long random values will do
  }
  const { randomBytes } = await import('node:crypto');
  return Array.from({ length: 10 }, () => randomBytes(18).toString('base64url'));
}

/** Sets `key` (MiB/s stored, no reader) from `runCount` runs of `mib` MiB after a warm-up; returns the runs' rates. */
async function outputRate(server, target, key, mib, runCount) {
  await outputRun(server, target, 8); // warm-up
  const xs = [];
  for (let i = 0; i < runCount; i++) xs.push((await outputRun(server, target, mib)).stored);
  set(key, median(xs), spread(xs));
  details[key.replace(/_mb_per_s$/, '')] = { mib_per_run: mib, runs: xs.length };
  if (QUICK) notes[key] = `${MODE}: ${mib} MiB per run, not 200`;
  return xs;
}

async function output(server, target, agents) {
  const xs = await outputRate(server, target, 'output_mb_per_s', PLAN.outputMiB, PLAN.outputRuns);

  // The same on a target with 10 secrets: the agent masks every byte of output against them.
  try {
    const values = await tenSecrets();
    await setSecrets(
      server,
      'bench-secrets',
      values.map((v, i) => [`BENCH_SECRET_${i}`, v]),
      agents,
    );
    const masked = [];
    for (let i = 0; i < PLAN.outputRuns; i++) masked.push((await outputRun(server, 'bench-secrets', PLAN.outputMiB)).stored);
    const base = median(xs);
    set(
      'masked_output_ratio',
      median(masked) / base,
      spread(masked).map((m) => m / base),
    );
    details.output.masked_10_secrets_mib_per_s = masked.map((x) => round(x));
    notes.masked_output_ratio = `10 secrets: ${fmt(median(masked))} MiB/s vs ${fmt(base)} without`;
  } catch (err) {
    notes.masked_output_ratio = `not built yet: ${err.message}`;
  }

  const followed = await outputRun(server, target, PLAN.outputMiB, { follow: true });
  set('output_live_reader_mb_per_s', followed.read);
  details.output.one_run_with_live_reader = { stored_mib_per_s: round(followed.stored), read_to_end_mib_per_s: round(followed.read) };
  if (redactNoneTarget) {
    const plain = await outputRun(server, redactNoneTarget, PLAN.outputMiB);
    details.output.one_run_on_target_with_redact_none_mib_per_s = round(plain.stored);
  }
}

/** Samples RSS every second and CPU over the whole window (and sub-windows) for each pid. */
async function idle(pids) {
  const start = pids.map((p) => ({ ticks: cpuTicks(p.pid), ns: cpuNs(p.pid) }));
  const rss = pids.map(() => []);
  const subPct = pids.map(() => []);
  let subStart = pids.map((p) => cpuTicks(p.pid));
  const t0 = performance.now();
  for (let s = 1; s <= PLAN.idleSeconds; s++) {
    await sleep(t0 + s * 1000 - performance.now());
    pids.forEach((p, i) => rss[i].push(rssMb(p.pid)));
    if (s % PLAN.idleSubSeconds === 0) {
      const now = pids.map((p) => cpuTicks(p.pid));
      pids.forEach((_, i) => subPct[i].push(((now[i] - subStart[i]) / CLK_TCK / PLAN.idleSubSeconds) * 100));
      subStart = now;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return pids.map((p, i) => ({
    name: p.name,
    rss: rss[i],
    cpuPct: ((cpuTicks(p.pid) - start[i].ticks) / CLK_TCK / seconds) * 100,
    cpuPctNs: ((cpuNs(p.pid) - start[i].ns) / 1e9 / seconds) * 100,
    subPct: subPct[i],
  }));
}

async function idleAgents(worked, neverWorked) {
  await sleep(5000); // the last task's heartbeat stops and its GC settles
  const [w, f] = await idle([worked, neverWorked]);
  set('agent_idle_rss_mb', median(w.rss), spread(w.rss));
  set('agent_idle_cpu_pct', w.cpuPct, spread(w.subPct));
  details.agent_idle = {
    window_s: PLAN.idleSeconds,
    measured: `agent "${w.name}" after running every task of the phases above`,
    started_as: AGENT_LAUNCH,
    cpu_pct_schedstat: round(w.cpuPctNs, 4),
    cpu_pct_sub_windows: w.subPct.map((x) => round(x)),
    never_worked_agent: {
      up_s: round(neverWorked.upSeconds(), 0),
      rss_mb: round(median(f.rss)),
      rss_spread: spread(f.rss).map((x) => round(x)),
      cpu_pct: round(f.cpuPct),
      cpu_pct_schedstat: round(f.cpuPctNs, 4),
    },
  };
  notes.agent_idle_cpu_pct = `whole ${PLAN.idleSeconds} s window; spread over ${PLAN.idleSubSeconds} s sub-windows`;
  // What the agent holds by itself, against what running every phase left it with (see bench/README.md).
  notes.agent_idle_rss_mb = `an agent that never ran a task: ${fmt(median(f.rss))} MiB; agents started as ${AGENT_LAUNCH}`;
}

/** The many-agents phase (bench/many-agents.mjs): a fresh server and PLAN.simAgents simulated agents holding their polls. */
async function simulatedAgents(root) {
  const r = await manyAgents(cleanup, root, PLAN, { clkTck: CLK_TCK, log });
  for (const [key, value] of Object.entries(r.values)) set(key, value, r.spreads[key]);
  Object.assign(notes, r.notes);
  Object.assign((details.cpu ??= {}), r.cpu);
  details.many_agents = r.details;
}

async function masker() {
  const r = await measureMasker({ quick: QUICK });
  for (const k of MASKER_KEYS) {
    values[k] = r.values[k] === null ? null : round(r.values[k]);
    if (r.spreads[k]) spreads[k] = r.spreads[k].map((x) => round(x));
    if (values[k] === null) notes[k] = r.note;
  }
  if (values.masker_mb_per_s_0_secrets !== null) {
    notes.masker_mb_per_s_0_secrets = 'nothing to look for: chunks pass straight through';
    details.masker = { how: r.note, mib_per_run: r.mib, runs: r.runs };
  }
}

/**
 * The PostgreSQL section: a throwaway PostgreSQL 15 cluster (bench/postgres.mjs), then the
 * SQLite section's own measuring functions given a server on it: dispatch, throughput, output.
 * Then three replicas on a second database and one shared data folder, two agents whose join
 * token carries all three URLs, and trivial tasks submitted round-robin across the replicas.
 * The cluster is stopped here, and by the Cleanup if anything throws or a signal comes.
 */
async function postgresSection(root) {
  let pg;
  const started = await phase('PostgreSQL: start a throwaway cluster', async () => {
    pg = await startPostgres(cleanup);
    details.postgres = {
      version: pg.version,
      settings: 'shipped defaults (fsync, synchronous_commit on); only port, listen_addresses=127.0.0.1, socket folder',
    };
  });
  if (!started) return;
  const pgProc = { name: 'postgres', pid: pg.pid };
  /** `accounted`, plus the whole cluster's CPU (backends included) as % of one core. */
  const pgAccounted = async (name, procs, fn) => {
    const t0 = performance.now();
    const before = clusterCpuTicks(pg.pid);
    const result = await accounted(name, procs, fn);
    const seconds = (performance.now() - t0) / 1000;
    details.cpu[name].postgres_cluster_pct_of_core = round(((clusterCpuTicks(pg.pid) - before) / CLK_TCK / seconds) * 100, 1);
    return result;
  };
  try {
    let server;
    let agentA;
    let agentB;
    const procs = () => [
      { name: 'server', pid: server.pid },
      pgProc,
      { name: 'agent_a', pid: agentA.pid },
      ...(agentB ? [{ name: 'agent_b', pid: agentB.pid }] : []),
      ...spawners([
        ['agent_a', agentA],
        ['agent_b', agentB],
      ]),
      { name: 'bench', pid: process.pid },
    ];
    const ok = await phase('PostgreSQL: start server and agent', async () => {
      server = await startServer(cleanup, root, { name: 'pg-server', env: { FERRY_DATABASE_URL: pg.createDatabase('ferry_bench') } });
      await createTarget(server, 'bench');
      agentA = await startAgent(cleanup, server, root, { name: 'pg-a', concurrency: 4 });
      await targetKey(server, 'bench', 60_000);
    });
    if (ok) {
      await phase('PostgreSQL: dispatch latency', () =>
        pgAccounted('pg_dispatch', procs(), () => dispatch(server, 'bench', { prefix: 'pg_', tasks: PLAN.pgDispatchTasks, rounds: PLAN.pgDispatchRounds })),
      );
      if (await phase('PostgreSQL: start second agent', async () => (agentB = await startAgent(cleanup, server, root, { name: 'pg-b', concurrency: 4 })))) {
        await phase('PostgreSQL: throughput', () =>
          pgAccounted('pg_throughput', procs(), () =>
            throughput(server, 'bench', { key: 'pg_tasks_per_s', tasks: PLAN.pgThroughputTasks, runCount: PLAN.pgThroughputRuns }),
          ),
        );
      }
      await phase('PostgreSQL: output throughput', () =>
        pgAccounted('pg_output', procs(), () => outputRate(server, 'bench', 'pg_output_mb_per_s', PLAN.pgOutputMiB, PLAN.pgOutputRuns)),
      );
      // One run with a live reader, as output_live_reader_mb_per_s on SQLite (a detail, no goal).
      await phase('PostgreSQL: output with a live reader', async () => {
        const followed = await outputRun(server, 'bench', PLAN.pgOutputMiB, { follow: true });
        details.pg_output = {
          ...details.pg_output,
          one_run_with_live_reader: { stored_mib_per_s: round(followed.stored), read_to_end_mib_per_s: round(followed.read) },
        };
      });
    }
    await Promise.all([agentA, agentB].filter(Boolean).map((a) => a.stop()));
    await server?.proc.stop();

    let replicas = [];
    const agents = [];
    const replicasUp = await phase('PostgreSQL: start 3 replicas and 2 agents', async () => {
      replicas = await startReplicas(cleanup, root, pg.createDatabase('ferry_replicas'), 3);
      await createTarget(replicas[0], 'bench');
      // The join token comes from replica 0, whose --public-url lists all three, its own first.
      for (const name of ['pg-rep-a', 'pg-rep-b']) agents.push(await startAgent(cleanup, replicas[0], root, { name, concurrency: 4 }));
      await targetKey(replicas[0], 'bench', 60_000);
    });
    if (replicasUp) {
      const procsR = [
        ...replicas.map((r, i) => ({ name: `replica_${i}`, pid: r.pid })),
        pgProc,
        ...agents.map((a, i) => ({ name: `agent_${i}`, pid: a.pid })),
        { name: 'bench', pid: process.pid },
      ];
      await phase('PostgreSQL: 3 replicas, throughput', () =>
        pgAccounted('pg_replicas', procsR, () =>
          throughput(replicas[0], 'bench', {
            key: 'pg_replicas_tasks_per_s',
            tasks: PLAN.pgReplicaTasks,
            runCount: PLAN.pgReplicaRuns,
            submitVia: replicas,
          }),
        ),
      );
      notes.pg_replicas_tasks_per_s = `submitted round-robin to 3 replicas; both agents joined through replica 0 (its URL first in the token)`;
    }
    await Promise.all(agents.map((a) => a.stop()));
    await Promise.all(replicas.map((r) => r.proc.stop()));
  } finally {
    await pg.stop();
  }
}

/** pg_tasks_per_s's goal is relative: at least 0.8 × the SQLite tasks_per_s of this same run. */
function comparePgThroughput() {
  const sqlite = values.tasks_per_s;
  if (sqlite === null) return;
  FIGURES.find((f) => f.key === 'pg_tasks_per_s').goal = ['>=', round(0.8 * sqlite, 1)];
  if (values.pg_tasks_per_s !== null) notes.pg_tasks_per_s = `${fmt(values.pg_tasks_per_s / sqlite)} × SQLite's ${fmt(sqlite)} /s of this run`;
}

// ---------------------------------------------------------------------------------------

function verdict(f) {
  const v = values[f.key];
  if (v === null) return (notes[f.key] ?? '').includes('not built yet') ? 'not built yet' : f.goal ? 'NO DATA' : '—';
  if (!f.goal) return '—';
  const [op, target] = f.goal;
  return (op === '<=' ? v <= target : v >= target) ? 'ok' : 'MISSED';
}

const fmt = (x) => (x === null || x === undefined ? '—' : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));

function table() {
  const rows = [['figure', 'value', 'spread [min, max]', 'goal', 'verdict', 'notes']];
  for (const f of FIGURES) {
    const v = values[f.key];
    const s = spreads[f.key];
    const goal = f.goal ? `${f.goal[0] === '<=' ? '≤' : '≥'} ${f.goal[1]}` : '';
    const note = [notes[f.key], floorNote(f.key), f.compare].filter(Boolean).join('; ');
    rows.push([`${f.key}`, v === null ? '—' : `${fmt(v)} ${f.unit}`.trim(), s ? `[${fmt(s[0])}, ${fmt(s[1])}]` : '', goal, verdict(f), note]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

async function main() {
  const started = new Date();
  preflight();
  const root = benchRoot(cleanup);
  log(`${MODE} run; temp folder ${root}`);
  const loadStart = loadavg();
  const foreign = foreignFerryProcesses(new Set());
  if (foreign.length > 0 || loadStart[0] > 0.5) {
    log(
      `WARNING: the machine is not idle (load ${loadStart.map((x) => x.toFixed(2)).join(' ')}; ${foreign.length} other Ferry/test processes): figures will be noisier`,
    );
    for (const f of foreign.slice(0, 10)) log(`  other process ${f}`);
  }
  calibrateRealtime();

  const benchOnly = [{ name: 'bench', pid: process.pid }];
  await phase('spawn floor', () => accounted('spawn_floor', benchOnly, spawnFloor));
  await phase('host floors', () => accounted('floors', benchOnly, hostFloors));
  await phase('sandbox overhead', () => accounted('sandbox_overhead', benchOnly, sandboxOverhead));
  await phase('public network', () => accounted('public_network', benchOnly, publicNetwork));
  await phase('warm start', () => accounted('warm_start', benchOnly, () => record('warm_start_ms', warmStartOf())));

  let server;
  let agentA;
  let agentB;
  let agentIdle;
  const procs = () => [
    { name: 'server', pid: server.pid },
    { name: 'agent_a', pid: agentA.pid },
    ...(agentB ? [{ name: 'agent_b', pid: agentB.pid }] : []),
    ...spawners([
      ['agent_a', agentA],
      ['agent_b', agentB],
    ]),
    { name: 'bench', pid: process.pid },
  ];
  const ok = await phase('start server and agent', async () => {
    server = await startServer(cleanup, root, { name: 'server' });
    await createTarget(server, 'bench');
    agentA = await startAgent(cleanup, server, root, { name: 'bench-a', concurrency: 4 });
    // For the masked-output ratio and the redaction comparison (servers that have them).
    await createTarget(server, 'bench-secrets');
    redactNoneTarget = await createTarget(server, 'bench-plain', 'hosted', { redact: 'none' }).then(
      () => 'bench-plain',
      () => undefined,
    );
    // Never given work (it serves a self-hosted target nobody uses): the idle figure's reference.
    await createTarget(server, 'bench-idle', 'self-hosted');
    agentIdle = await startAgent(cleanup, server, root, { name: 'bench-never-worked', concurrency: 4, targets: ['bench-idle'] });
    // Servers with secrets: the agents make each target's sealing key (RSA, CPU-heavy) right
    // after they start; let them finish before anything is timed.
    for (const t of ['bench', 'bench-secrets', redactNoneTarget, 'bench-idle'].filter(Boolean)) await targetKey(server, t, 60_000);
  });
  if (ok) {
    await phase('https round trip', () => accounted('https_rtt', procs(), () => httpsRtt(server)));
    await phase('CLI start-up', () => accounted('cli_start', procs(), () => cliStart(server, root)));
    await phase('dispatch latency', () => accounted('dispatch', procs(), () => dispatch(server, 'bench')));
    await phase('round trip of `true`', () => accounted('roundtrip', procs(), () => roundtrip(server, 'bench')));
    const firstByteRuns = SMOKE ? 1 : QUICK ? 5 : 10;
    await phase('output first byte', () =>
      accounted('output_first_byte', procs(), () => record('output_first_byte_ms', outputFirstByte(server.api, 'bench', firstByteRuns))),
    );
    if (await phase('start second agent', async () => (agentB = await startAgent(cleanup, server, root, { name: 'bench-b', concurrency: 4 })))) {
      await phase('throughput', () => accounted('throughput', procs(), () => throughput(server, 'bench')));
    }
    await phase('output throughput', () => accounted('output', procs(), () => output(server, 'bench', [agentA, agentB].filter(Boolean))));
    await phase('idle agent', () => accounted('idle', [...procs(), { name: 'agent_never_worked', pid: agentIdle.pid }], () => idleAgents(agentA, agentIdle)));
    await Promise.all([agentA, agentB, agentIdle].filter(Boolean).map((a) => a.stop()));
    await server.proc.stop();
  }
  await postgresSection(root);
  comparePgThroughput();
  await phase(`${PLAN.simAgents} simulated agents`, () => simulatedAgents(root));
  await phase('secret masker', masker);
  await phase('lost-agent detection', async () => {
    const runs = [];
    for (let i = 0; i < PLAN.faultRuns; i++) runs.push(await lostAgentDetectMs(cleanup, root, i));
    set('lost_agent_detect_ms', median(runs), [Math.min(...runs), Math.max(...runs)]);
  });
  await phase('backlog delivery after a server restart', async () => {
    const runs = [];
    for (let i = 0; i < PLAN.faultRuns; i++) runs.push(await backlogDeliveryMs(cleanup, root, i));
    set('backlog_20mb_delivery_ms', median(runs), [Math.min(...runs), Math.max(...runs)]);
  });

  const json = {
    quick: QUICK,
    mode: MODE,
    date: started.toISOString(),
    source: sourceVersion(),
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model ?? null,
      node: process.version,
      kernel: release(),
      mem_gb: round(totalmem() / 2 ** 30, 1),
      loadavg_at_start: loadStart.map((x) => round(x, 2)),
      loadavg_at_end: loadavg().map((x) => round(x, 2)),
      other_ferry_processes_at_start: foreign.length,
    },
  };
  for (const f of FIGURES) {
    json[f.key] = values[f.key];
    json[`${f.key}_spread`] = spreads[f.key] ?? null;
    if (f.key === 'dispatch_p99_ms_10000_agents') json.agents_simulated = PLAN.simAgents;
  }
  json.machine.foreign_cpu_pct_by_phase = Object.fromEntries(Object.entries(details.cpu ?? {}).map(([k, u]) => [k, u.foreign_pct_of_machine]));
  json.goals_missed = FIGURES.filter((f) => verdict(f) === 'MISSED').map((f) => f.key);
  json.notes = notes;
  json.details = details;
  json.plan = PLAN;
  json.errors = errors;
  writeFileSync(OUT, JSON.stringify(json, null, 2) + '\n');

  process.stdout.write(`\nFerry benchmarks (${MODE}), ${json.machine.cpus} CPUs, Node ${process.version}, ${json.date}\n`);
  process.stdout.write(`each value: median of repeated runs; spread: [min, max] of those runs (see bench/README.md)\n\n`);
  process.stdout.write(table() + '\n\n');
  const noisy = Object.entries(json.machine.foreign_cpu_pct_by_phase).filter(([, v]) => v > 2);
  if (noisy.length > 0) {
    process.stdout.write(
      `NOTE: other programs used the CPUs during the run (% of all CPUs): ${noisy.map(([k, v]) => `${k} ${v}`).join(', ')}; figures are noisier than on an idle machine\n`,
    );
  }
  if (json.goals_missed.length > 0) process.stdout.write(`goals missed: ${json.goals_missed.join(', ')}\n`);
  if (errors.length > 0) process.stdout.write(`phases that failed: ${errors.map((e) => `${e.phase} (${e.message})`).join('; ')}\n`);
  process.stdout.write(`results: ${OUT}\n`);
  return errors.length === 0;
}

let success = false;
try {
  success = await main();
} catch (err) {
  log(`FAILED: ${err.stack ?? err.message}`);
} finally {
  clearTimeout(hardStop);
  await cleanUpOnce();
}
process.exitCode = success ? 0 : 1;
