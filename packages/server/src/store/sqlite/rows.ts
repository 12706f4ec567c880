/**
 * Database rows → store rows, for SQLite and PostgreSQL alike (both stores read the same columns).
 * Column names are snake_case; JSON columns are parsed here.
 */
import type { Role, TaskStatus, WebhookEvent, WebhookFormat } from '@ferry/protocol';
import type { InvitationRow, SsoLoginRow } from '../people-types.js';
import type { RunbookMeta, RunbookRow, RunbookSourceRow } from '../runbook-types.js';
import type { PrincipalRow, TokenRow, TokenWithPrincipal } from '../teams-types.js';
import type { DueDelivery, WebhookRow } from '../webhook-types.js';
import type { AgentRow, AuditRow, SecretRow, TargetRow, TaskRow } from '../types.js';

export type Row = Record<string, unknown>;
export const num = (v: unknown): number => v as number;
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
export const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);

/** A task with the target and agent columns its row type carries. */
export const TASK_SELECT = `SELECT t.*, g.name AS target_name, g.type AS target_type, g.network AS target_network, g.limits AS target_limits, g.redact AS target_redact, g.settings AS target_settings, a.name AS agent_name
  FROM tasks t JOIN targets g ON g.id = t.target_id LEFT JOIN agents a ON a.id = t.agent_id`;

export function toTarget(r: Row): TargetRow {
  return {
    id: String(r.id),
    orgId: String(r.org_id),
    name: String(r.name),
    type: r.type as TargetRow['type'],
    agentMode: r.agent_mode as TargetRow['agentMode'],
    createdAt: num(r.created_at),
    network: r.network as TargetRow['network'],
    limits: JSON.parse(String(r.limits)) as TargetRow['limits'],
    redact: r.redact as TargetRow['redact'],
    publicKeyPem: strOrNull(r.public_key),
    keyId: strOrNull(r.key_id),
    settings: JSON.parse(String(r.settings)) as TargetRow['settings'],
    review: typeof r.review === 'string' ? (JSON.parse(r.review) as TargetRow['review']) : null,
  };
}

export function toTask(r: Row): TaskRow {
  return {
    id: String(r.id),
    orgId: String(r.org_id),
    targetId: String(r.target_id),
    targetName: String(r.target_name),
    targetType: r.target_type as TaskRow['targetType'],
    targetNetwork: r.target_network as TaskRow['targetNetwork'],
    targetLimits: JSON.parse(String(r.target_limits)) as TaskRow['targetLimits'],
    targetRedact: r.target_redact as TaskRow['targetRedact'],
    targetSettings: JSON.parse(String(r.target_settings)) as TaskRow['targetSettings'],
    storedBytes: num(r.stored_bytes),
    redactState: strOrNull(r.redact_state),
    outputDigest: strOrNull(r.output_digest),
    script: String(r.script),
    stdin: r.stdin instanceof Uint8Array ? r.stdin : null,
    args: JSON.parse(typeof r.args === 'string' ? r.args : '[]') as string[],
    env: JSON.parse(typeof r.env === 'string' ? r.env : '{}') as Record<string, string>,
    status: r.status as TaskStatus,
    exitCode: numOrNull(r.exit_code),
    signal: strOrNull(r.signal),
    reason: strOrNull(r.reason),
    agentId: strOrNull(r.agent_id),
    agentName: strOrNull(r.agent_name),
    createdBy: String(r.created_by),
    createdByPrincipal: strOrNull(r.created_by_principal),
    review: typeof r.review === 'string' ? (JSON.parse(r.review) as TaskRow['review']) : null,
    runbook: typeof r.runbook === 'string' ? (JSON.parse(r.runbook) as TaskRow['runbook']) : null,
    createdAt: num(r.created_at),
    claimedAt: numOrNull(r.claimed_at),
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
    timeoutSeconds: num(r.timeout_seconds),
    leaseExpiresAt: numOrNull(r.lease_expires_at),
    cancelRequestedAt: numOrNull(r.cancel_requested_at),
    outputBytes: num(r.output_bytes),
    outputExpiredAt: numOrNull(r.output_expired_at),
  };
}

export function toAgent(r: Row, targetIds: string[]): AgentRow {
  return {
    id: String(r.id),
    orgId: strOrNull(r.org_id),
    name: String(r.name),
    hostname: String(r.hostname),
    version: String(r.version),
    platform: String(r.platform),
    hosted: r.hosted === 1,
    concurrency: num(r.concurrency),
    registeredAt: num(r.registered_at),
    lastSeenAt: num(r.last_seen_at),
    revokedAt: numOrNull(r.revoked_at),
    targetIds,
  };
}

export function toSecret(r: Row): SecretRow {
  return {
    targetId: String(r.target_id),
    orgId: String(r.org_id),
    name: String(r.name),
    kid: String(r.kid),
    sealed: JSON.parse(String(r.sealed)) as SecretRow['sealed'],
    bytes: num(r.bytes),
    setBy: String(r.set_by),
    setAt: num(r.set_at),
  };
}

export function toAudit(r: Row): AuditRow {
  return {
    seq: num(r.seq),
    orgId: strOrNull(r.org_id),
    at: num(r.at),
    actor: String(r.actor),
    action: String(r.action),
    subject: String(r.subject),
    details: JSON.parse(String(r.details)) as Record<string, unknown>,
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
  };
}

export function toSource(r: Row): RunbookSourceRow {
  return {
    id: String(r.id),
    orgId: String(r.org_id),
    name: String(r.name),
    git: String(r.git),
    ref: String(r.ref),
    path: String(r.path),
    commit: strOrNull(r.commit_sha),
    syncedAt: r.synced_at === null ? null : num(r.synced_at),
    lastError: strOrNull(r.last_error),
    createdBy: String(r.created_by),
    createdAt: num(r.created_at),
  };
}

export function toRunbook(r: Row): RunbookRow {
  const meta = JSON.parse(String(r.meta)) as RunbookMeta;
  return {
    ...meta,
    orgId: String(r.org_id),
    name: String(r.name),
    sourceId: String(r.source_id),
    sourceName: String(r.source_name),
    file: String(r.file),
    commit: String(r.commit_sha),
    script: String(r.script),
  };
}

export function toInvitation(r: Row): InvitationRow {
  return {
    id: String(r.id),
    orgId: String(r.org_id),
    email: String(r.email),
    role: r.role as Role,
    createdBy: String(r.created_by),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    usedAt: r.used_at === null || r.used_at === undefined ? null : num(r.used_at),
  };
}

export function toSsoLogin(r: Row): SsoLoginRow {
  return {
    id: String(r.id),
    orgId: String(r.org_id),
    codeVerifier: String(r.code_verifier),
    nonce: String(r.nonce),
    loopbackPort: num(r.loopback_port),
    cliChallenge: String(r.cli_challenge),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
  };
}

export function toTokenWithPrincipal(r: Row): TokenWithPrincipal {
  const token: TokenRow = {
    id: String(r.id),
    orgId: String(r.org_id),
    principalId: String(r.principal_id),
    name: String(r.name),
    createdAt: num(r.created_at),
    expiresAt: numOrNull(r.expires_at),
    lastUsedAt: numOrNull(r.last_used_at),
    revokedAt: numOrNull(r.revoked_at),
  };
  const principal: PrincipalRow = {
    id: token.principalId,
    orgId: token.orgId,
    kind: r.p_kind as PrincipalRow['kind'],
    name: String(r.p_name),
    role: r.p_role as PrincipalRow['role'],
    instanceAdmin: r.p_instance_admin === 1,
    createdBy: strOrNull(r.p_created_by),
    createdAt: num(r.p_created_at),
  };
  return { token, principal };
}

export function toPrincipal(r: Row): PrincipalRow {
  return {
    id: String(r.id),
    orgId: String(r.org_id),
    kind: r.kind as PrincipalRow['kind'],
    name: String(r.name),
    role: r.role as PrincipalRow['role'],
    instanceAdmin: r.instance_admin === 1,
    createdBy: strOrNull(r.created_by),
    createdAt: num(r.created_at),
  };
}

export function toWebhook(r: Row): WebhookRow {
  return {
    id: String(r.id),
    orgId: String(r.org_id),
    url: String(r.url),
    events: JSON.parse(String(r.events)) as WebhookEvent[],
    format: r.format as WebhookFormat,
    secret: String(r.secret),
    createdBy: String(r.created_by),
    createdAt: num(r.created_at),
  };
}

/** A webhook delivery due now, with its webhook's address and signing secret. */
export function toDueDelivery(r: Row): DueDelivery {
  return {
    id: String(r.id),
    event: r.event as WebhookEvent,
    body: String(r.body),
    attempts: num(r.attempts),
    url: String(r.url),
    secret: String(r.secret),
  };
}
