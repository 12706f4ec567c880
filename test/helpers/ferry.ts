/**
 * Test helpers that run the real thing: `ferry server`, `ferry agent start` and the `ferry`
 * CLI as separate processes, talking HTTPS on loopback ports chosen by the OS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The `ferry` command as users run it: the bundle `npm run build` makes. */
export const CLI = join(ROOT, 'packages/cli/bundle/main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `ferry-test-${prefix}-`));
}

/** Resolves when `check` returns a truthy value; rejects after `timeoutMs`. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 15_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

function collect(child: ChildProcess): { out: Buffer[]; err: Buffer[] } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => err.push(d));
  return { out, err };
}

export class FerryProcess {
  readonly out: Buffer[];
  readonly err: Buffer[];
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    ({ out: this.out, err: this.err } = collect(child));
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }
  get stdout(): string {
    return Buffer.concat(this.out).toString('utf8');
  }
  get stderr(): string {
    return Buffer.concat(this.err).toString('utf8');
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

export interface ServerHandle {
  proc: FerryProcess;
  url: string;
  fingerprint: string;
  dataDir: string;
  adminToken: string;
  /** Environment for CLI calls against this server (its own FERRY_CONFIG). */
  env: NodeJS.ProcessEnv;
  cli(args: readonly string[], opts?: { input?: string | Buffer; env?: NodeJS.ProcessEnv }): Promise<CliResult>;
  spawnCli(args: readonly string[], opts?: { env?: NodeJS.ProcessEnv }): FerryProcess;
  startAgent(
    joinToken: string,
    opts?: { concurrency?: number; executor?: string; dataDir?: string; name?: string; env?: NodeJS.ProcessEnv },
  ): Promise<FerryProcess>;
  joinToken(args: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}

export function runCli(args: readonly string[], env: NodeJS.ProcessEnv, input?: string | Buffer): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const { out, err } = collect(child);
  child.stdin.end(input ?? '');
  return new Promise((resolvePromise) => {
    child.once('close', (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolvePromise({ code, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes });
    });
  });
}

export const cleanEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('FERRY_')) delete env[key];
  return env;
};

/** A loopback port that was free a moment ago (for servers that must come back on the same port). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function startFerryServer(
  opts: { embeddedAgent?: boolean; env?: NodeJS.ProcessEnv; dataDir?: string; port?: number; host?: string; args?: readonly string[] } = {},
): Promise<ServerHandle> {
  const dataDir = opts.dataDir ?? tempDir('server');
  const args = [CLI, 'server', '--data-dir', dataDir, '--listen', `${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`, ...(opts.args ?? [])];
  if (opts.embeddedAgent === false) args.push('--no-embedded-agent');
  const proc = new FerryProcess(
    spawn(process.execPath, args, { env: { ...cleanEnv(), FERRY_LOG_LEVEL: 'info', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  const banner = await untilServerListening(proc);
  const url = banner[1]!;
  const fingerprint = banner[2]!;
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const configDir = tempDir('cli');
  const env: NodeJS.ProcessEnv = { ...cleanEnv(), FERRY_CONFIG: join(configDir, 'config.json') };
  const login = await runCli(['login', '--server', url, '--token', adminToken, '--ca-fingerprint', fingerprint], env);
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
  const agents: FerryProcess[] = [];
  const handle: ServerHandle = {
    proc,
    url,
    fingerprint,
    dataDir,
    adminToken,
    env,
    cli: (a, o) => runCli(a, { ...env, ...o?.env }, o?.input),
    spawnCli: (a, o) => new FerryProcess(spawn(process.execPath, [CLI, ...a], { env: { ...env, ...o?.env }, stdio: ['ignore', 'pipe', 'pipe'] })),
    joinToken: async (a) => {
      const r = await runCli(['agent', 'token', 'create', ...a], env);
      if (r.code !== 0) throw new Error(`token create failed: ${r.stderr}`);
      return r.stdout.trim();
    },
    startAgent: async (joinToken, o = {}) => {
      const agentDir = o.dataDir ?? tempDir('agent');
      const name = o.name ?? `agent-${agents.length + 1}`;
      const agentArgs = [CLI, 'agent', 'start', '--join-token', joinToken, '--data-dir', agentDir, '--concurrency', String(o.concurrency ?? 4), '--name', name];
      if (o.executor) agentArgs.push('--executor', o.executor);
      const agent = new FerryProcess(spawn(process.execPath, agentArgs, { env: { ...cleanEnv(), ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] }));
      agents.push(agent);
      await untilAgentStarted(agent);
      return agent;
    },
    stop: async () => {
      await Promise.all(agents.map((a) => a.stop('SIGKILL')));
      await proc.stop('SIGTERM');
      rmSync(configDir, { recursive: true, force: true });
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}

/** Waits for a server process's banner (its URL and CA fingerprint: match groups 1 and 2); fails at once if it exits first. */
export async function untilServerListening(server: FerryProcess): Promise<RegExpExecArray> {
  return waitFor(
    () => {
      if (server.child.exitCode !== null) throw new Error(`server exited: ${server.stderr}`);
      return /listening on (\S+)\nCA fingerprint \(SHA-256\): (\S+)/.exec(server.stdout);
    },
    30_000,
    'server banner',
  );
}

/** Waits for an agent process's "agent started" line; fails at once if it exits first. */
export async function untilAgentStarted(agent: FerryProcess): Promise<void> {
  await waitFor(
    () => {
      if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.stderr}`);
      return agent.stderr.includes('"agent started"');
    },
    20_000,
    'agent start',
  );
}

/** Waits for the embedded (or any) agent to be online. */
export async function waitForAgents(server: ServerHandle, count: number): Promise<void> {
  await waitFor(
    async () => {
      const r = await server.cli(['agent', 'list', '--json']);
      if (r.code !== 0) return false;
      return (JSON.parse(r.stdout) as { online: boolean }[]).filter((a) => a.online).length >= count;
    },
    20_000,
    `${count} agent(s) online`,
  );
}

export interface TaskJson {
  id: string;
  status: string;
  exitCode: number | null;
  agent: string | null;
  target: string;
  reason: string | null;
  outputBytes: number;
  outputExpiredAt: string | null;
}

export async function taskShow(server: ServerHandle, id: string): Promise<TaskJson> {
  const r = await server.cli(['task', 'show', id, '--json']);
  if (r.code !== 0) throw new Error(`task show failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as TaskJson;
}

/** Waits until the task has succeeded (as `ferry task show` says) and returns it then. */
export function taskSucceeded(server: ServerHandle, id: string, timeoutMs = 15_000, what = 'the task to succeed'): Promise<TaskJson> {
  return waitFor(
    async () => {
      const t = await taskShow(server, id);
      return t.status === 'succeeded' ? t : undefined;
    },
    timeoutMs,
    what,
  );
}

export interface ApiResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json: Record<string, unknown>;
}

/** A raw HTTPS request to the server, trusting its CA, for tests of the API's edges. */
export async function api(
  server: ServerHandle,
  method: string,
  path: string,
  opts: { body?: string | Buffer; token?: string | null; contentType?: string; headers?: Record<string, string> } = {},
): Promise<ApiResult> {
  const { request } = await import('node:https');
  const ca = readFileSync(join(server.dataDir, 'ca.pem'), 'utf8');
  const headers: Record<string, string> = { ...opts.headers };
  const token = opts.token === undefined ? server.adminToken : opts.token;
  if (token) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  return new Promise((resolvePromise, reject) => {
    const req = request(new URL(path, server.url), { method, headers, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
        } catch {
          // not JSON; tests look at body
        }
        resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
