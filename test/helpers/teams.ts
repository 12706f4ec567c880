/**
 * Teams through the real API: organizations, service accounts, groups, grants, and agents
 * registered the way `ferry agent start` registers them (a join token's secret, then the agent's
 * own bearer token), for tests that act as many callers against one server.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { decodeJoinToken } from '@ferry/protocol';
import { api, type ApiResult, type ServerHandle } from './ferry.js';

/** A JSON call with `token` (null: none); fails the test unless the answer has `status`. */
export async function call(server: ServerHandle, token: string | null, method: string, path: string, body: unknown, status: number): Promise<ApiResult> {
  const res = await api(server, method, path, { token, body: body === undefined ? undefined : JSON.stringify(body) });
  assert.equal(res.status, status, `${method} ${path}: ${res.body.toString()}`);
  return res;
}

/** A new organization; returns its admin's token. */
export async function createOrg(server: ServerHandle, name: string): Promise<string> {
  const res = await call(server, server.adminToken, 'POST', '/v1/orgs', { name }, 201);
  return String(res.json.adminToken);
}

/** A service account of the token's organization; returns its token. */
export async function serviceAccount(server: ServerHandle, adminToken: string, name: string, role: string, expiresInSeconds?: number): Promise<string> {
  const res = await call(server, adminToken, 'POST', '/v1/tokens', { name, role, ...(expiresInSeconds ? { expiresInSeconds } : {}) }, 201);
  return String(res.json.token);
}

export async function group(server: ServerHandle, adminToken: string, name: string, members: readonly string[]): Promise<void> {
  await call(server, adminToken, 'POST', '/v1/groups', { name }, 201);
  for (const m of members) await call(server, adminToken, 'PUT', `/v1/groups/${name}/members/${m}`, undefined, 200);
}

export async function grant(server: ServerHandle, adminToken: string, target: string, groupName: string, role: 'operator' | 'viewer'): Promise<void> {
  await call(server, adminToken, 'PUT', `/v1/targets/${target}/grants/${groupName}`, { role }, 200);
}

export async function createTarget(server: ServerHandle, adminToken: string, name: string, agent: 'hosted' | 'self-hosted'): Promise<{ id: string }> {
  const res = await call(server, adminToken, 'POST', '/v1/targets', { name, type: 'shell', agent }, 201);
  return { id: String(res.json.id) };
}

export async function createTask(server: ServerHandle, token: string, target: string): Promise<string> {
  const res = await call(server, token, 'POST', '/v1/tasks', { target, script: 'echo hi' }, 201);
  return String(res.json.id);
}

/** Registers an agent with a join token made by `adminToken` (body of POST /v1/agent-tokens); returns its id and bearer token. */
export async function registerAgent(server: ServerHandle, adminToken: string, joinRequest: object, name: string): Promise<{ id: string; token: string }> {
  const made = await call(server, adminToken, 'POST', '/v1/agent-tokens', joinRequest, 201);
  const join = decodeJoinToken(String(made.json.token));
  assert.ok(join, 'a join token');
  const res = await call(
    server,
    null,
    'POST',
    '/v1/agents/register',
    { joinSecret: join.secret, name, hostname: 'test-host', version: '0', platform: 'linux', concurrency: 1 },
    201,
  );
  return { id: String(res.json.agentId), token: String(res.json.token) };
}

/** An RSA public key in PEM, as an agent publishes for a target it serves. */
export function publicKeyPem(): string {
  return generateKeyPairSync('rsa', { modulusLength: 3072 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

export interface PollAnswer {
  task: { id: string; orgId: string; target: { name: string } } | null;
  keyRequests?: { targetId: string; targetName: string }[];
}

/** One poll without waiting. */
export async function poll(server: ServerHandle, agentToken: string): Promise<PollAnswer> {
  const res = await call(server, agentToken, 'POST', '/v1/agent/poll', { free: 1, running: [], waitSeconds: 0 }, 200);
  return res.json as unknown as PollAnswer;
}

/** A password that passes the policy, for the people tests. */
export const TEST_PASSWORD = 'correct-walrus-lantern-42';

/** Invites `email` into the admin's organization; returns the invitation's secret (the URL's fragment). */
export async function invite(server: ServerHandle, adminToken: string, email: string, role: string): Promise<string> {
  const res = await call(server, adminToken, 'POST', '/v1/users/invitations', { email, role }, 201);
  return decodeURIComponent(new URL(String(res.json.url)).hash.slice(1));
}

/** A person of the admin's organization, invited and joined with TEST_PASSWORD. */
export async function person(server: ServerHandle, adminToken: string, email: string, role: string): Promise<void> {
  const invitation = await invite(server, adminToken, email, role);
  await call(server, null, 'POST', '/v1/invitations/accept', { invitation, password: TEST_PASSWORD }, 201);
}
