/**
 * The fake control plane's answers to the agent routes, modelled on the real server's
 * (packages/server/src/routes/agent-api.ts): a long poll that claims a queued task when the
 * agent has room, heartbeats that renew and cancel, start confirmation and output uploads that
 * check the agent still holds the task, output by offset with gap answers, and a final status
 * checked against the stored output's length and checksum. Every answer is checked against the
 * route's response schema, so the fake cannot drift from the protocol.
 */
import { createHash, createPublicKey } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { FerryError, OUTPUT_DIGEST_HEADER, OutputDigest, Routes, type OutputFrame, type ParsedBody, type ParsedQuery, type RouteDef } from '@ferry/protocol';
import type { FakeControlPlane, FakeTask } from './fake-control-plane.js';

export type AgentRoute = 'registerAgent' | 'poll' | 'heartbeat' | 'publishKey' | 'confirmStart' | 'uploadOutput' | 'finishTask';

export interface Answer {
  status: number;
  json?: unknown;
}

interface HandlerInput {
  params: Record<string, string>;
  query: unknown;
  body: unknown;
  headers: IncomingHttpHeaders;
  /** Aborted when the agent hangs up (an aborted long poll). */
  hungUp: AbortSignal;
}

type Handler = (cp: FakeControlPlane, input: HandlerInput) => Answer | Promise<Answer>;

function ok(def: RouteDef, json: unknown): Answer {
  if (typeof def.response === 'object') def.response.parse(json);
  return { status: def.status ?? (json === undefined ? 204 : 200), json };
}

/** The task, if this agent still holds it (claimed, not finished). */
function held(cp: FakeControlPlane, taskId: string | undefined): FakeTask {
  const task = taskId === undefined ? undefined : cp.tasks.get(taskId);
  if (!task?.assigned || task.final) throw new FerryError('FERRY_E_LEASE_LOST', `The fake control plane does not assign task ${taskId} to this agent.`);
  return task;
}

function storedBytes(task: FakeTask): number {
  return task.frames.reduce((n, f) => n + f.data.length, 0);
}

/** Appends the part of `frames` (starting at `offset`) the server has not stored yet. */
function appendUnseen(task: FakeTask, offset: number, frames: readonly OutputFrame[]): void {
  let at = offset;
  const stored = storedBytes(task);
  for (const f of frames) {
    const skip = Math.max(0, stored - at);
    if (skip < f.data.length) task.frames.push({ ...f, data: Buffer.from(f.data.subarray(skip)) });
    at += f.data.length;
  }
}

function claimNext(cp: FakeControlPlane): FakeTask | undefined {
  const id = cp.queue.shift();
  const task = id === undefined ? undefined : cp.tasks.get(id);
  if (task) task.assigned = true;
  return task;
}

async function poll(cp: FakeControlPlane, { body, hungUp }: HandlerInput): Promise<Answer> {
  const req = body as ParsedBody<typeof Routes.poll>;
  const deadline = Date.now() + req.waitSeconds * 1000;
  for (;;) {
    // Nothing is claimed for an agent that hung up: its answer would be lost.
    const task = req.free > 0 && !hungUp.aborted ? claimNext(cp) : undefined;
    if (task) return ok(Routes.poll, { task: task.assignment, cancel: [] });
    if (Date.now() >= deadline || hungUp.aborted) return ok(Routes.poll, { task: null, cancel: [] });
    await cp.waitForWork(deadline - Date.now(), hungUp);
  }
}

function heartbeat(cp: FakeControlPlane, { body }: HandlerInput): Answer {
  const { running } = body as ParsedBody<typeof Routes.heartbeat>;
  const holds = (id: string): boolean => cp.tasks.get(id)?.assigned === true && !cp.tasks.get(id)?.final;
  return ok(Routes.heartbeat, {
    cancel: running.filter((id) => holds(id) && cp.heartbeatCancels.has(id)),
    revoked: running.filter((id) => !holds(id)),
    heartbeatSeconds: cp.heartbeatSeconds,
  });
}

/** The output digest (as the real server defines it) of everything stored, plus `more` after `at` bytes of it. */
function digestWith(task: { frames: OutputFrame[] }, at: number, more: readonly OutputFrame[]): string {
  const stored = Buffer.concat(task.frames.map((f) => f.data)).subarray(0, at);
  const digest = new OutputDigest((chain, block) => createHash('sha256').update(chain).update(block).digest()).update(stored);
  for (const f of more) digest.update(f.data);
  return digest.hex();
}

function uploadOutput(cp: FakeControlPlane, { params, query, body, headers }: HandlerInput): Answer {
  const task = held(cp, params.id);
  const { offset } = query as ParsedQuery<typeof Routes.uploadOutput>;
  const stored = storedBytes(task);
  if (offset > stored)
    throw new FerryError('FERRY_E_OUTPUT_GAP', `Output must continue at offset ${stored}, not ${offset}.`, { details: { expectedOffset: stored } });
  // Every upload carries the digest of the output up to its end, checked before anything is stored.
  if (headers[OUTPUT_DIGEST_HEADER] !== digestWith(task, offset, body as OutputFrame[])) throw new FerryError('FERRY_E_OUTPUT_DIGEST');
  appendUnseen(task, offset, body as OutputFrame[]);
  return ok(Routes.uploadOutput, { nextOffset: storedBytes(task) });
}

function finishTask(cp: FakeControlPlane, { params, body }: HandlerInput): Answer {
  const task = held(cp, params.id);
  const final = body as ParsedBody<typeof Routes.finishTask>;
  const stored = storedBytes(task);
  if (stored < final.outputBytes)
    throw new FerryError('FERRY_E_OUTPUT_GAP', `Have ${stored} of ${final.outputBytes} bytes.`, { details: { expectedOffset: stored } });
  if (stored !== final.outputBytes || digestWith(task, stored, []) !== final.outputDigest) throw new FerryError('FERRY_E_OUTPUT_MISMATCH');
  task.final = final;
  return ok(Routes.finishTask, undefined);
}

export const agentHandlers: Record<AgentRoute, Handler> = {
  registerAgent: (cp, { body }) => {
    const req = body as ParsedBody<typeof Routes.registerAgent>;
    if (req.joinSecret !== cp.joinSecret) throw new FerryError('FERRY_E_JOIN_TOKEN_INVALID');
    return ok(Routes.registerAgent, { agentId: 'a_fake0001', token: cp.agentToken });
  },
  poll,
  heartbeat,
  publishKey: (cp, { params, body }) => {
    const { publicKeyPem } = body as ParsedBody<typeof Routes.publishKey>;
    const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
    cp.publishedKeys.set(params.id ?? '', publicKeyPem);
    return ok(Routes.publishKey, { keyId: createHash('sha256').update(der).digest('hex').slice(0, 32) });
  },
  confirmStart: (cp, { params }) => {
    held(cp, params.id).started = true;
    return ok(Routes.confirmStart, undefined);
  },
  uploadOutput,
  finishTask,
};
