/** Rows the server tests need, made through the store the way the server makes them. */
import assert from 'node:assert/strict';
import type { UserPrincipal } from '../../src/auth.js';
import type { AgentRow, Store, TargetRow, TaskRow } from '../../src/store/types.js';

/** Registers an agent the way a join token does; `orgId` null is an operator-wide hosted agent. */
export async function registerTestAgent(
  store: Store,
  label: string,
  opts: { orgId?: string | null; hosted?: boolean; targetIds?: string[] } = {},
): Promise<AgentRow> {
  const now = Date.now();
  const { orgId = null, hosted = true, targetIds = [] } = opts;
  await store.createJoinToken(
    { id: `j_${label}`, orgId, hosted, targetIds, createdBy: 'test', createdAt: now, expiresAt: now + 60_000, usedAt: null },
    `secret-${label}`,
  );
  const joined = await store.consumeJoinToken(`secret-${label}`, now, {
    id: `a_${label}`,
    name: label,
    hostname: 'h',
    version: '0',
    platform: 'linux',
    concurrency: 1,
    tokenHash: `token-${label}`,
  });
  assert.ok(joined.ok, `agent ${label} registers`);
  return joined.agent;
}

/** An organization admin as requireUser makes one (a service account acting through a token). */
export function testAdmin(orgId: string): UserPrincipal {
  return {
    kind: 'user',
    orgId,
    tokenId: 'k_1',
    principalId: 'p_test',
    principalKind: 'service',
    name: 'test',
    role: 'admin',
    instanceAdmin: false,
    actor: 'service:test (token k_1)',
    grants: new Map(),
  };
}

/** A target row as `target create` makes it: a hosted shell target unless `over` says otherwise. */
export function testTarget(over: Partial<TargetRow> & Pick<TargetRow, 'orgId' | 'name'>): TargetRow {
  return {
    id: `g_${over.name}`,
    type: 'shell',
    agentMode: 'hosted',
    createdAt: Date.now(),
    network: 'none',
    limits: {},
    redact: 'secrets',
    publicKeyPem: null,
    keyId: null,
    settings: {},
    review: null,
    ...over,
  };
}

/** A queued task row on `target`, with what the target gives a task; `over` changes any field. */
export function testTask(target: TargetRow, over: Partial<TaskRow> & Pick<TaskRow, 'id'>): TaskRow {
  return {
    orgId: target.orgId,
    targetId: target.id,
    targetName: target.name,
    targetType: target.type,
    targetNetwork: target.network,
    targetLimits: target.limits,
    targetRedact: target.redact,
    targetSettings: target.settings,
    storedBytes: 0,
    redactState: null,
    outputDigest: null,
    script: 'true',
    stdin: null,
    args: [],
    env: {},
    status: 'queued',
    exitCode: null,
    signal: null,
    reason: null,
    agentId: null,
    agentName: null,
    createdBy: 'test',
    createdByPrincipal: null,
    runbook: null,
    review: null,
    createdAt: Date.now(),
    claimedAt: null,
    startedAt: null,
    finishedAt: null,
    timeoutSeconds: 60,
    leaseExpiresAt: null,
    cancelRequestedAt: null,
    outputBytes: 0,
    outputExpiredAt: null,
    ...over,
  };
}
