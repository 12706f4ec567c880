/**
 * Runs the real thing for the benchmarks: `ferry server` and `ferry agent start` as separate
 * processes on loopback, plus a keep-alive HTTPS client that trusts the server's CA.
 * Everything started here is registered with the Cleanup so it goes away even on failure.
 */
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { clearTimeout, setTimeout } from 'node:timers';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { URL, fileURLToPath } from 'node:url';
import { decodeFrames } from '@ferry/protocol';
import { sleep } from './stats.mjs';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
// The bundled CLI where this version has one (what users run), else tsc's output.
export const CLI = existsSync(join(ROOT, 'packages/cli/bundle/main.js')) ? join(ROOT, 'packages/cli/bundle/main.js') : join(ROOT, 'packages/cli/dist/main.js');
/**
 * How agents are started: through the checkout's `./ferry` launcher, as users start them (it
 * `exec`s node with the agent's process settings, so the pid is the agent's own), where this
 * version has a bundle for it to run; else `node CLI` as before.
 */
const LAUNCHER = join(ROOT, 'ferry');
const agentCommand = (nodeArgs) =>
  CLI.endsWith('bundle/main.js') && existsSync(LAUNCHER) && nodeArgs.length === 0 ? [LAUNCHER, []] : [process.execPath, [...nodeArgs, CLI]];
/** How the bench's agents are started, for results.json. */
export const AGENT_LAUNCH =
  agentCommand([])[0] === LAUNCHER ? './ferry agent start (the launcher users run)' : `node ${CLI.slice(ROOT.length + 1)} agent start`;

/** Tracks child processes and folders; `run()` (async, polite) or `runSync()` (on exit) removes them. */
export class Cleanup {
  constructor() {
    this.procs = new Set();
    this.dirs = [];
    this.hooks = [];
  }

  proc(p) {
    this.procs.add(p);
    p.exited.then(
      () => this.procs.delete(p),
      () => this.procs.delete(p),
    );
    return p;
  }

  dir(path) {
    this.dirs.push(path);
    return path;
  }

  hook(fn) {
    this.hooks.push(fn);
  }

  async run() {
    for (const fn of this.hooks.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // best effort
      }
    }
    // Agents first (they drain and remove their sandboxes), then servers.
    const all = [...this.procs];
    await Promise.all(all.filter((p) => p.kind === 'agent').map((p) => p.stop()));
    await Promise.all(all.filter((p) => p.kind !== 'agent').map((p) => p.stop()));
    this.removeDirs();
  }

  runSync() {
    for (const p of this.procs) {
      try {
        p.child.kill('SIGKILL');
      } catch {
        // gone
      }
    }
    this.removeDirs();
  }

  removeDirs() {
    for (const d of this.dirs.splice(0).reverse()) {
      try {
        rmSync(d, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // best effort
      }
    }
  }
}

/** A child process whose output we keep only the tail of (enough for an error message). */
export class Proc {
  constructor(child, kind, name) {
    this.child = child;
    this.kind = kind;
    this.name = name;
    this.pid = child.pid;
    this.stdoutText = '';
    this.stderrTail = '';
    this.sawAgentStarted = false;
    this.startedAt = performance.now();
    child.stdout?.on('data', (d) => {
      if (this.stdoutText.length < 64 * 1024) this.stdoutText += d.toString('utf8');
    });
    child.stderr?.on('data', (d) => {
      const text = d.toString('utf8');
      if (!this.sawAgentStarted && text.includes('"agent started"')) this.sawAgentStarted = true;
      this.stderrTail = (this.stderrTail + text).slice(-16 * 1024);
    });
    this.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  }

  upSeconds() {
    return (performance.now() - this.startedAt) / 1000;
  }

  get alive() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
    if (!this.alive) return this.exited;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }
}

export async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(delay);
  }
}

export class ApiError extends Error {
  constructor(method, path, status, body) {
    super(`${method} ${path} → HTTP ${status}: ${body.toString('utf8').slice(0, 300)}`);
    this.status = status;
  }
}

/**
 * HTTPS client on kept-alive connections (node:https, no extra dependency). `maxSockets`
 * bounds the connections; requests beyond it queue in the agent.
 */
export class Api {
  constructor(url, caPem, token, { maxSockets = 4 } = {}) {
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.token = token;
    this.agent = new HttpsAgent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, ca: caPem, timeout: 120_000 });
  }

  /** Resolves with the whole response; `t` is performance.now() when its last byte arrived. */
  request(method, path, { body, token, contentType, timeoutMs = 60_000, onSent } = {}) {
    const headers = { accept: 'application/json' };
    const tok = token === undefined ? this.token : token;
    if (tok) headers.authorization = `Bearer ${tok}`;
    let payload;
    if (body !== undefined) {
      payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      headers['content-type'] = contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    return new Promise((resolvePromise, reject) => {
      const req = httpsRequest({ host: this.host, port: this.port, path, method, headers, agent: this.agent }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const t = performance.now();
          resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), t });
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      if (onSent) req.once('finish', onSent);
      req.end(payload);
    });
  }

  /** JSON request; throws ApiError on HTTP ≥ 400. Returns { json, t, status, headers }. */
  async json(method, path, body, opts = {}) {
    const res = await this.request(method, path, { ...opts, body });
    if (res.status >= 400) throw new ApiError(method, path, res.status, res.body);
    const json = res.body.length > 0 ? JSON.parse(res.body.toString('utf8')) : undefined;
    return { json, t: res.t, status: res.status, headers: res.headers };
  }

  close() {
    this.agent.destroy();
  }
}

const cleanEnv = () => {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('FERRY_')) delete env[key];
  return env;
};

export function benchRoot(cleanup) {
  return cleanup.dir(mkdtempSync(join(tmpdir(), 'ferry-bench-')));
}

/**
 * Starts `ferry server` on 127.0.0.1 with an OS-chosen port. Returns url, CA, admin token,
 * pid and an Api client for the admin. `dataDir` (default: `root/name`) lets replicas share
 * one folder; `args` go after the bench's own (`--public-url`, say).
 */
export async function startServer(
  cleanup,
  root,
  { name = 'server', embeddedAgent = false, env = {}, nodeArgs = [], listen = '127.0.0.1:0', dataDir = join(root, name), args: extraArgs = [] } = {},
) {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const args = [...nodeArgs, CLI, 'server', '--data-dir', dataDir, '--listen', listen, ...extraArgs];
  if (!embeddedAgent) args.push('--no-embedded-agent');
  // The benchmarks drive one admin token far past the per-token request limit: they measure the
  // server, not the limit, so it is off unless a benchmark sets it.
  const serverEnv = { ...cleanEnv(), FERRY_REQUESTS_PER_TOKEN_PER_MINUTE: '0', ...env };
  const proc = cleanup.proc(new Proc(spawn(process.execPath, args, { env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] }), 'server', name));
  const banner = await waitFor(
    () => {
      if (!proc.alive) throw new Error(`ferry server exited: ${proc.stderrTail}`);
      return /listening on (\S+)\nCA fingerprint \(SHA-256\): (\S+)/.exec(proc.stdoutText);
    },
    30_000,
    'the server banner',
  );
  const url = banner[1];
  if (!/^https:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`server is not on loopback: ${url}`);
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const caPem = readFileSync(join(dataDir, 'ca.pem'), 'utf8');
  const api = new Api(url, caPem, adminToken, { maxSockets: 16 });
  cleanup.hook(() => api.close());
  return { proc, pid: proc.pid, url, fingerprint: banner[2], dataDir, adminToken, caPem, api };
}

export async function createTarget(server, name, agent = 'hosted', extra = {}) {
  await server.api.json('POST', '/v1/targets', { name, type: 'shell', agent, ...extra });
}

/**
 * The target's public sealing key, once one of its agents has published it (servers with
 * write-only secrets). undefined when the server has no such endpoint (an older version).
 */
export async function targetKey(server, name, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await server.api.request('GET', `/v1/targets/${name}/key`);
    if (res.status === 200) return JSON.parse(res.body.toString('utf8'));
    const code = (() => {
      try {
        return JSON.parse(res.body.toString('utf8')).code;
      } catch {
        return undefined;
      }
    })();
    if (code === 'FERRY_E_NOT_FOUND') return undefined;
    if (code !== 'FERRY_E_TARGET_NO_KEY' || Date.now() > deadline) throw new ApiError('GET', `/v1/targets/${name}/key`, res.status, res.body);
    await sleep(100);
  }
}

/** Sets secrets on a target the way `ferry secret set` does: sealed here with the target's key, then PUT. */
export async function setSecrets(server, target, entries, agents = []) {
  const { sealSecret } = await import('@ferry/client');
  const key = await targetKey(server, target);
  if (!key) throw new Error(`target ${target} has no sealing key endpoint`);
  if (agents.length > 1) await shareTargetKey(agents, key.targetId);
  for (const [name, value] of entries) {
    const sealed = await sealSecret(key.publicKeyPem, { orgId: key.orgId, targetId: key.targetId, name }, value);
    await server.api.json('PUT', `/v1/targets/${target}/secrets/${name}`, { sealed });
  }
}

/** A one-time join token: for the hosted pool, or (with `targets`) for self-hosted targets. */
export async function joinToken(server, targets = []) {
  const body = targets.length > 0 ? { targets, ttlSeconds: 3600 } : { hosted: true, ttlSeconds: 3600 };
  const { json } = await server.api.json('POST', '/v1/agent-tokens', body);
  return json.token;
}

/**
 * Starts `ferry agent start` with a hosted join token (or one for `targets`), through the `./ferry`
 * launcher (see agentCommand; `nodeArgs`, for profiles, bypass it). Its sandboxes go under `root`
 * (TMPDIR), so whatever a killed agent leaves behind is removed with the bench folder.
 */
export async function startAgent(cleanup, server, root, { name, concurrency = 4, executor = 'sandbox', targets = [], nodeArgs = [] }) {
  const dataDir = join(root, `agent-${name}`);
  const tmp = join(root, `agent-${name}-tmp`);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  mkdirSync(tmp, { recursive: true, mode: 0o755 });
  const token = await joinToken(server, targets);
  const [command, before] = agentCommand(nodeArgs);
  const args = [
    ...before,
    'agent',
    'start',
    '--join-token',
    token,
    '--data-dir',
    dataDir,
    '--concurrency',
    String(concurrency),
    '--executor',
    executor,
    '--name',
    name,
  ];
  const proc = cleanup.proc(new Proc(spawn(command, args, { env: { ...cleanEnv(), TMPDIR: tmp }, stdio: ['ignore', 'ignore', 'pipe'] }), 'agent', name));
  await waitFor(
    () => {
      if (!proc.alive) throw new Error(`agent ${name} exited: ${proc.stderrTail}`);
      return proc.sawAgentStarted;
    },
    30_000,
    `agent ${name} to start`,
  );
  proc.dataDir = dataDir;
  return proc;
}

/**
 * Several agents serving one target must share its sealing key (README, "Key custody"): copy
 * `keys/<target id>.pem` from the agent that made it to the others.
 */
export async function shareTargetKey(agents, targetId) {
  const file = (a) => join(a.dataDir, 'keys', `${targetId}.pem`);
  const holder = await waitFor(() => agents.find((a) => existsSync(file(a))), 20_000, `an agent to hold the key of ${targetId}`);
  for (const a of agents) {
    if (a === holder || existsSync(file(a))) continue;
    mkdirSync(join(a.dataDir, 'keys'), { recursive: true, mode: 0o700 });
    copyFileSync(file(holder), file(a));
    chmodSync(file(a), 0o600);
  }
}

/** VmRSS of a process in MiB, or NaN. */
export function rssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux). With `children`, also
 * cutime + cstime: the CPU of its descendants that were reaped (an agent's sandboxed tasks).
 */
export function cpuTicks(pid, { children = false } = {}) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime 15, cutime 16, cstime 17.
  return Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0);
}

/** CPU time of all threads of a process in ns, from /proc/<pid>/task/<tid>/schedstat (finer than ticks). */
export function cpuNs(pid) {
  let total = 0;
  for (const tid of readdirSafe(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // thread ended
    }
  }
  return total;
}

function readdirSafe(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Long-polls a task's output until the server says all of it was read. Returns the bytes of stdout (stream 1) and the last headers. */
export async function readOutputToEnd(api, taskId, { from = 0, collect = true, deadlineMs = 60_000 } = {}) {
  const deadline = Date.now() + deadlineMs;
  let offset = from;
  const chunks = [];
  for (;;) {
    if (Date.now() > deadline) throw new Error(`output of ${taskId} not complete within ${deadlineMs} ms`);
    const res = await api.request('GET', `/v1/tasks/${taskId}/output?offset=${offset}&waitSeconds=30`, { timeoutMs: 40_000 });
    if (res.status >= 400) throw new ApiError('GET', `/v1/tasks/${taskId}/output`, res.status, res.body);
    if (collect) chunks.push(...stdoutOf(res.body));
    offset = Number(res.headers['ferry-next-offset']);
    if (res.headers['ferry-output-complete'] === 'true') return { stdout: Buffer.concat(chunks), offset, status: res.headers['ferry-task-status'], t: res.t };
  }
}

/**
 * Follows a task's output to its end as `ferry run` and `ferry task logs --follow` do: through
 * the client package's own follower (`followOutput`, over its Node transport, on a connection of
 * its own), the bytes discarded. The live-reader figures use it, so they measure what a user's
 * follower costs, not a reader of the bench's own. Returns the last status and `t`
 * (performance.now() once the last page was decoded).
 */
export async function followOutputToEnd(server, taskId, { deadlineMs = 60_000 } = {}) {
  const { followOutput } = await import('@ferry/client');
  const { createNodeClient } = await import('@ferry/client/node');
  const client = createNodeClient({ serverUrl: server.url, caPem: server.caPem, token: server.adminToken, userAgent: 'ferry-bench' });
  const signal = globalThis.AbortSignal.timeout(deadlineMs);
  let last;
  try {
    for await (const page of followOutput(client, taskId, { follow: true, waitSeconds: 30, maxAttempts: 3, signal })) last = page;
  } catch (err) {
    if (signal.aborted) throw new Error(`output of ${taskId} not complete within ${deadlineMs} ms`);
    throw err;
  } finally {
    await client.close();
  }
  return { offset: last.nextOffset, status: last.taskStatus, t: performance.now() };
}

/** The stdout bytes of a buffer of output frames, decoded by the protocol's own decoder. */
function stdoutOf(buf) {
  return decodeFrames(buf)
    .filter((f) => f.stream === 1)
    .map((f) => f.data);
}

/** Machine-wide CPU ticks from /proc/stat: busy and total, summed over all CPUs. */
export function machineCpu() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - fields[3] - fields[4], total, irq: fields[5] + fields[6] };
}

/** Every process: pid → { ppid, ticks (utime + stime), start (starttime, to tell reused pids apart) }. */
function processTable() {
  const table = new Map();
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(entry), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]), start: f[19] });
    } catch {
      // gone
    }
  }
  return table;
}

/**
 * Kernel threads' CPU; what init (pid 1) reaped: orphans, which include one short-lived bwrap
 * process per sandbox; and `foreign`: processes that are neither ours nor kernel threads, alive
 * through the phase or started during it (other programs).
 */
function outsiders(before, after, ours) {
  const isKernel = (pid, t) => pid === 2 || t.ppid === 2;
  const isOurs = (pid, table) => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
      if (ours.has(p)) return true;
      p = table.get(p)?.ppid ?? 0;
    }
    return false;
  };
  let kernel = 0;
  let foreign = 0;
  for (const [pid, a] of after) {
    const b = before.get(pid);
    const same = b && b.start === a.start;
    const d = same ? a.ticks - b.ticks : a.ticks;
    if (isKernel(pid, a)) kernel += d;
    else if (!isOurs(pid, after) && !(same && isOurs(pid, before))) foreign += d;
  }
  const init = (after.get(1)?.reaped ?? 0) - (before.get(1)?.reaped ?? 0);
  return { kernel, foreign, init };
}

/**
 * Where the CPU went during `fn`: each named process as % of one core; `tasks` the reaped
 * descendants of those processes (sandboxed tasks: sh, bwrap, setpriv, bash, …) as % of one
 * core; the whole machine as % of all cores; kernel threads (kworkers: namespace and cgroup
 * teardown among others) and irq/softirq time (loopback networking) as % of all cores;
 * what init reaped (see `outsiders`); `foreign`: other programs (a test suite, say) as % of
 * all cores; and `unattributed`: the rest (processes that came and went unseen, tick sampling).
 */
export async function withCpuAccounting(procs, fn, clkTck = 100) {
  const ticks = (pid, children) => {
    try {
      return cpuTicks(pid, { children });
    } catch {
      return NaN;
    }
  };
  const snap = () => ({
    m: machineCpu(),
    table: processTable(),
    self: procs.map((p) => ticks(p.pid, false)),
    all: procs.map((p) => ticks(p.pid, true)),
    t: performance.now(),
  });
  const before = snap();
  const result = await fn();
  const after = snap();
  const wall = (after.t - before.t) / 1000;
  const pct = (dTicks) => Math.round((dTicks / clkTck / wall) * 1000) / 10;
  const usage = {
    wall_s: Math.round(wall * 100) / 100,
    machine_busy_pct: Math.round(((after.m.busy - before.m.busy) / (after.m.total - before.m.total)) * 1000) / 10,
  };
  let ours = 0;
  let tasks = 0;
  procs.forEach((p, i) => {
    usage[`${p.name}_pct_of_core`] = pct(after.self[i] - before.self[i]);
    ours += after.all[i] - before.all[i];
    tasks += after.all[i] - before.all[i] - (after.self[i] - before.self[i]);
  });
  usage.tasks_pct_of_core = pct(tasks);
  const ofMachine = (d) => Math.round((d / (after.m.total - before.m.total)) * 1000) / 10;
  const { kernel, foreign, init } = outsiders(before.table, after.table, new Set([...procs.map((p) => p.pid), process.pid]));
  const irq = after.m.irq - before.m.irq;
  usage.kernel_threads_pct_of_machine = ofMachine(kernel);
  usage.irq_softirq_pct_of_machine = ofMachine(irq);
  usage.reaped_by_init_pct_of_machine = ofMachine(init);
  usage.foreign_pct_of_machine = ofMachine(foreign);
  usage.unattributed_pct_of_machine = ofMachine(after.m.busy - before.m.busy - ours - kernel - irq - init - foreign);
  return { result, usage };
}

/**
 * Other Ferry processes on the machine (tests, stray agents) that would share the CPUs with the
 * bench. Only pid and subcommand: command lines can carry tokens and secrets.
 */
export function foreignFerryProcesses(ownPids) {
  const found = [];
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry) || ownPids.has(Number(entry)) || Number(entry) === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const cli = args.findIndex((a) => a.endsWith('packages/cli/dist/main.js') || a.endsWith('packages/cli/bundle/main.js'));
      if (cli >= 0)
        found.push(`${entry}: ferry ${(args[cli + 1] ?? '').replace(/[^\w-]/g, '')} ${(args[cli + 2] ?? '').replace(/[^\w-]/g, '').slice(0, 20)}`.trim());
      else if (args.some((a) => a === '--test')) found.push(`${entry}: node --test`);
    } catch {
      // gone
    }
  }
  return found;
}
