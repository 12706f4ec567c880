/**
 * Rows → API shapes. The only place that decides what leaves the server.
 * Text a client once set (an agent's name, a task's reason) is refused or neutralized on the way
 * in; it is neutralized again on the way out, for rows stored before that was so.
 */
import {
  base64Encode,
  neutralizeControlCharacters as safe,
  type AgentInfo,
  type Assignment,
  type AuditEntry,
  type SecretInfo,
  type Target,
  type Task,
  type TaskWithAgents,
} from '@ferry/protocol';
import type { AgentRow, AuditRow, ReviewDecisionRow, SecretRow, TargetRow, TaskRow } from './store/types.js';
import { reviewPolicyView, taskReviewView } from './tasks/reviews.js';
import type { ServerConfig } from './config.js';
import { resolveLimits } from './limits.js';

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** Who holds the target's key, and whether a rotation waits (keys.ts `keyHoldersView`). */
type TargetKeyView = Pick<Target, 'keyHolders' | 'keyRotationPending'>;

export function targetView(config: ServerConfig, row: TargetRow, agentsOnline: number, keys: TargetKeyView): Target {
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    agent: row.agentMode,
    network: row.network,
    redact: row.redact,
    keyId: row.keyId,
    limits: resolveLimits(config, row.limits),
    settings: row.settings,
    createdAt: iso(row.createdAt),
    agentsOnline,
    keyHolders: keys.keyHolders.map((h) => ({ ...h, name: safe(h.name) })),
    keyRotationPending: keys.keyRotationPending,
    review: reviewPolicyView(row.review),
  };
}

/** `decisions`: the task's review decisions (store `listReviewDecisions`), for a task that had a review. */
export function taskView(row: TaskRow, decisions: readonly ReviewDecisionRow[] = []): Task {
  return {
    id: row.id,
    target: row.targetName,
    status: row.status,
    exitCode: row.exitCode,
    signal: row.signal,
    reason: row.reason === null ? null : safe(row.reason),
    agent: row.agentName === null ? null : safe(row.agentName),
    createdBy: row.createdBy,
    createdAt: iso(row.createdAt),
    startedAt: isoOrNull(row.startedAt),
    finishedAt: isoOrNull(row.finishedAt),
    timeoutSeconds: row.timeoutSeconds,
    outputBytes: row.storedBytes,
    cancelRequested: row.cancelRequestedAt !== null,
    args: row.args,
    env: row.env,
    stdinBytes: row.stdin?.length ?? 0,
    outputExpiredAt: isoOrNull(row.outputExpiredAt),
    review: row.review ? taskReviewView(row.review, decisions) : null,
    runbook: row.runbook,
  };
}

/** A task with how many agents that may run it are online (so a client can say it is waiting for one). */
export function taskWithAgentsView(row: TaskRow, agentsOnline: number, decisions: readonly ReviewDecisionRow[] = []): TaskWithAgents {
  return { ...taskView(row, decisions), agentsOnline };
}

/** What an agent gets when it claims a task: the script, the limits in force, and the target's sealed secrets. */
export function assignmentView(config: ServerConfig, task: TaskRow, secrets: readonly SecretRow[]): Assignment {
  const limits = resolveLimits(config, task.targetLimits);
  return {
    id: task.id,
    orgId: task.orgId,
    target: { id: task.targetId, name: task.targetName, type: task.targetType },
    script: task.script,
    ...(task.stdin ? { stdin: base64Encode(task.stdin) } : {}),
    ...(task.args.length > 0 ? { args: task.args } : {}),
    ...(Object.keys(task.env).length > 0 ? { env: task.env } : {}),
    timeoutSeconds: task.timeoutSeconds,
    leaseSeconds: config.leaseSeconds,
    network: task.targetNetwork,
    maxOutputBytes: limits.maxOutputBytes,
    maxProcesses: limits.maxProcesses,
    memoryBytes: limits.memoryBytes,
    secrets: secrets.map((s) => ({ name: s.name, sealed: s.sealed })),
    settings: task.targetSettings,
  };
}

/** `holdsKeys`: names of the targets whose current key the agent holds. */
export function agentView(row: AgentRow, targetNames: string[], online: boolean, runningTasks: number, holdsKeys: string[]): AgentInfo {
  return {
    id: row.id,
    name: safe(row.name),
    hostname: safe(row.hostname),
    version: safe(row.version),
    platform: safe(row.platform),
    hosted: row.hosted,
    shared: row.orgId === null,
    targets: row.hosted ? ['(hosted pool)'] : targetNames,
    online,
    lastSeenAt: iso(row.lastSeenAt),
    registeredAt: iso(row.registeredAt),
    revoked: row.revokedAt !== null,
    runningTasks,
    holdsKeys,
  };
}

export function auditView(row: AuditRow): AuditEntry {
  return { seq: row.seq, at: iso(row.at), actor: safe(row.actor), action: row.action, subject: row.subject, details: row.details, hash: row.hash };
}

/** Names, key ids, who and when: never a value, not even a sealed one, nor its length. */
export function secretView(row: SecretRow): SecretInfo {
  return { name: row.name, kid: row.kid, setBy: row.setBy, setAt: iso(row.setAt) };
}
