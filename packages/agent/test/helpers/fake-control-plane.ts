/**
 * A fake control plane for agent tests (as buildkite/agent's tests have): a real HTTPS server
 * on 127.0.0.1, port 0, with a throwaway CA, serving the CA certificate and the agent routes
 * of the protocol's route table (paths, bodies and answers checked against its schemas). The
 * agent registers with a join token and pins the CA exactly as in production.
 *
 * It records every call (route, input, HTTP status, answer) and lets a test queue tasks and
 * script what the agent will meet: error answers for the next N calls of a route, a cancel in
 * heartbeat answers, output the server "lost" (the next upload then gets a real gap answer).
 * Tests wait for what they expect with `waitFor`, which re-checks after every call.
 *
 * Output is kept the way the real server keeps it: by offset, idempotent for resends, a gap
 * answer for chunks that start past the end, and the final status checked against the length
 * and checksum of what was stored.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  FerryError,
  Routes,
  decodeFrames,
  encodeJoinToken,
  type Assignment,
  type ErrorCode,
  type FinishTaskRequest,
  type OutputFrame,
  type RouteDef,
} from '@ferry/protocol';
import { agentHandlers, type AgentRoute, type Answer } from './fake-agent-api.js';
import { makeTestPki } from './test-pki.js';

export type { AgentRoute } from './fake-agent-api.js';

export interface RecordedCall {
  route: AgentRoute;
  params: Record<string, string>;
  query: Record<string, string>;
  /** The parsed JSON body, or the decoded frames of an output upload. */
  body: unknown;
  /** The HTTP status answered; 0 when the agent hung up first. */
  status: number;
  /** The JSON answered (an error body for errors), if any. */
  answer: unknown;
}

export interface FakeTask {
  assignment: Assignment;
  /** Stored output, in offset order. */
  frames: OutputFrame[];
  started: boolean;
  final: FinishTaskRequest | undefined;
  assigned: boolean;
}

const AGENT_ROUTES: readonly AgentRoute[] = ['registerAgent', 'poll', 'heartbeat', 'publishKey', 'confirmStart', 'uploadOutput', 'finishTask'];
const MATCHERS = AGENT_ROUTES.map((route) => ({ route, def: Routes[route], ...pathMatcher(Routes[route].path) }));

function pathMatcher(path: string): { re: RegExp; names: string[] } {
  const names: string[] = [];
  const source = path.replace(/:([A-Za-z]+)/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { re: new RegExp(`^${source}$`), names };
}

let taskCounter = 0;

export class FakeControlPlane extends EventEmitter {
  readonly calls: RecordedCall[] = [];
  readonly tasks = new Map<string, FakeTask>();
  readonly queue: string[] = [];
  readonly heartbeatCancels = new Set<string>();
  readonly publishedKeys = new Map<string, string>();
  heartbeatSeconds = 0.5;
  readonly joinSecret = randomBytes(24).toString('base64url');
  readonly agentToken = `fake-agent-${randomBytes(16).toString('hex')}`;
  private readonly scripted = new Map<AgentRoute, { code: ErrorCode; details?: Record<string, unknown> }[]>();
  private readonly delays = new Map<AgentRoute, number>();
  private readonly wakers = new Set<() => void>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly caPem: string,
    private readonly caFingerprint: string,
  ) {
    super();
  }

  static async start(): Promise<FakeControlPlane> {
    const pki = await makeTestPki();
    const server = createServer({ key: pki.keyPem, cert: pki.certPem, minVersion: 'TLSv1.2' });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const cp = new FakeControlPlane(server, `https://127.0.0.1:${port}`, pki.caPem, pki.caFingerprint);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void cp.handle(req, res));
    return cp;
  }

  /** A join token for this control plane, exactly as `ferry agent token create` prints one. */
  joinToken(): string {
    return encodeJoinToken({ url: this.url, fp: this.caFingerprint, secret: this.joinSecret });
  }

  /** Queues a shell task (any field may be overridden); the next poll with room takes it. */
  queueTask(overrides: Partial<Assignment> = {}): Assignment {
    const id = `t_fake${String(++taskCounter).padStart(8, '0')}${randomBytes(3).toString('hex')}`;
    const assignment: Assignment = {
      id,
      target: { id: 'g_fake0001', name: 'fake', type: 'shell' },
      script: 'true\n',
      timeoutSeconds: 60,
      leaseSeconds: 30,
      network: 'host',
      maxOutputBytes: 64 << 20,
      maxProcesses: 256,
      memoryBytes: 1 << 30,
      orgId: 'o_fake',
      secrets: [],
      settings: {},
      ...overrides,
    };
    this.tasks.set(id, { assignment, frames: [], started: false, final: undefined, assigned: false });
    this.queue.push(id);
    this.wake();
    return assignment;
  }

  /** The next `times` calls of `route` get this error answer (its status from the error registry). */
  answerNext(route: AgentRoute, code: ErrorCode, options: { times?: number; details?: Record<string, unknown> } = {}): void {
    const list = this.scripted.get(route) ?? [];
    for (let i = 0; i < (options.times ?? 1); i++) list.push({ code, details: options.details });
    this.scripted.set(route, list);
  }

  /** From now on, answers of `route` are sent `ms` after they are ready (a slow server). */
  delayAnswers(route: AgentRoute, ms: number): void {
    this.delays.set(route, ms);
  }

  /** Heartbeat answers carry a cancel for the task from now on (polls do not). */
  cancelInHeartbeat(taskId: string): void {
    this.heartbeatCancels.add(taskId);
  }

  /** The server loses the task's stored output after `keepBytes` (as after restoring a backup). */
  loseOutput(taskId: string, keepBytes: number): void {
    const task = this.task(taskId);
    const kept: OutputFrame[] = [];
    let at = 0;
    for (const f of task.frames) {
      if (at >= keepBytes) break;
      kept.push({ ...f, data: f.data.subarray(0, keepBytes - at) });
      at += Math.min(f.data.length, keepBytes - at);
    }
    task.frames = kept;
  }

  task(taskId: string): FakeTask {
    const task = this.tasks.get(taskId);
    if (!task) throw new Error(`the fake control plane has no task ${taskId}`);
    return task;
  }

  /** The stored output of a task (one stream, or all in offset order). */
  output(taskId: string, stream?: OutputFrame['stream']): Buffer {
    return Buffer.concat(
      this.task(taskId)
        .frames.filter((f) => stream === undefined || f.stream === stream)
        .map((f) => f.data),
    );
  }

  callsTo(route: AgentRoute): RecordedCall[] {
    return this.calls.filter((c) => c.route === route);
  }

  /** Resolves with the first truthy value of `check`, re-checked after every call; rejects after `timeoutMs`. */
  waitFor<T>(what: string, check: () => T | false | undefined, timeoutMs = 20_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('call', attempt);
      };
      const attempt = (): void => {
        try {
          const value = check();
          if (value === false || value === undefined) return;
          cleanup();
          resolve(value);
        } catch (err) {
          cleanup();
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; calls so far: ${this.calls.map((c) => `${c.route}→${c.status}`).join(', ')}`));
      }, timeoutMs);
      this.on('call', attempt);
      attempt();
    });
  }

  /** Stops serving (safe to call twice). */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    this.wake();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // ---- serving ----

  /** Wakes held polls: there may be work. */
  wake(): void {
    for (const w of this.wakers) w();
    this.wakers.clear();
  }

  /** Resolves after `ms`, at a wake(), or when the agent hangs up. */
  waitForWork(ms: number, hungUp: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        hungUp.removeEventListener('abort', done);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      hungUp.addEventListener('abort', done, { once: true });
      this.wakers.add(done);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    if (req.method === 'GET' && url.pathname === Routes.caCertificate.path) {
      res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(this.caPem);
      return;
    }
    const match = MATCHERS.map((m) => ({ m, found: m.def.method === req.method ? m.re.exec(url.pathname) : null })).find((x) => x.found);
    if (!match?.found) {
      const notFound = new FerryError('FERRY_E_NOT_FOUND');
      send(res, notFound.statusCode, notFound.toBody());
      return;
    }
    const hungUp = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) hungUp.abort();
    });
    const params = Object.fromEntries(match.m.names.map((name, i) => [name, decodeURIComponent(match.found?.[i + 1] ?? '')]));
    const call: RecordedCall = { route: match.m.route, params, query: Object.fromEntries(url.searchParams), body: undefined, status: 0, answer: undefined };
    const answer = await this.answer(call, match.m.def, await readBody(req), req.headers, hungUp.signal);
    const delay = this.delays.get(call.route);
    if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
    call.status = hungUp.signal.aborted ? 0 : answer.status;
    call.answer = answer.json;
    if (!hungUp.signal.aborted) send(res, answer.status, answer.json);
    this.calls.push(call);
    this.emit('call', call);
  }

  private async answer(call: RecordedCall, def: RouteDef, raw: Buffer, headers: IncomingHttpHeaders, hungUp: AbortSignal): Promise<Answer> {
    const authorization = headers.authorization;
    try {
      call.body = parseBody(def, raw);
      // As the request arrives, before it is answered: for what must hold at that moment.
      this.emit('arrival', call);
      const query = def.query ? def.query.parse(call.query) : undefined;
      const scripted = this.scripted.get(call.route)?.shift();
      if (scripted) throw new FerryError(scripted.code, undefined, { details: scripted.details });
      if (def.auth === 'agent' && authorization !== `Bearer ${this.agentToken}`) throw new FerryError('FERRY_E_UNAUTHENTICATED');
      return await agentHandlers[call.route](this, { params: call.params, query, body: call.body, headers, hungUp });
    } catch (err) {
      const error = err instanceof FerryError ? err : new FerryError('FERRY_E_BAD_REQUEST', err instanceof Error ? err.message : String(err));
      return { status: error.statusCode, json: error.toBody() };
    }
  }
}

function parseBody(def: RouteDef, raw: Buffer): unknown {
  if (def.body === undefined) return undefined;
  if (def.body === 'frames') return decodeFrames(raw);
  return def.body.parse(JSON.parse(raw.toString('utf8')));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, status: number, json: unknown): void {
  if (json === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
}
