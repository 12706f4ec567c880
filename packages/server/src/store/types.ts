/**
 * The storage interface. One contract, implemented for SQLite (embedded default) and,
 * later, PostgreSQL. Data access only: it answers queries and makes the writes it is asked
 * for; what a task goes through and what follows each step is decided in tasks/task-service.ts.
 * Every user-facing query is scoped by organization; every task state change is a
 * compare-and-set on (status, agent, lease) so at most one agent runs a task.
 * Times are milliseconds since the epoch.
 */
import type { TeamsStore } from './teams-types.js';
import type { WebhookStore } from './webhook-types.js';
import type { RunbookStore } from './runbook-types.js';
import type { PeopleStore } from './people-types.js';
import type { AgentMode, FinalStatus, NetworkPolicy, OutputFrame, RedactLevel, SealedSecret, TargetLimits, TargetType, TaskStatus } from '@ferry/protocol';

export interface OrgRow {
  id: string;
  name: string;
  createdAt: number;
}
export type { Role } from '@ferry/protocol';

export interface TargetRow {
  id: string;
  orgId: string;
  name: string;
  type: TargetType;
  agentMode: AgentMode;
  createdAt: number;
  network: NetworkPolicy;
  limits: TargetLimits;
  redact: RedactLevel;
  publicKeyPem: string | null;
  keyId: string | null;
  /** Plain settings (not secrets), given to tasks as environment variables. */
  settings: Record<string, string>;
  /** Whether its tasks wait for approval; null: no review. */
  review: ReviewPolicyRow | null;
}

/** A target's review rule (protocol reviews.ts): `any` or a group's members approve. */
export interface ReviewPolicyRow {
  rule: 'any' | 'group';
  groupId: string | null;
  groupName: string | null;
  approvals: number;
  expirySeconds: number;
}

/** The rule a task was created under, until when it waits, and what an approval binds (sha256). */
export interface TaskReviewRow extends ReviewPolicyRow {
  expiresAt: number;
  binding: string;
}

export interface TaskRunbookRow {
  source: string;
  name: string;
  file: string;
  commit: string;
  params: Record<string, string>;
}

/** One reviewer's decision on a task; a principal approves a task at most once. */
export interface ReviewDecisionRow {
  taskId: string;
  principalId: string;
  actor: string;
  decision: 'approve' | 'reject';
  comment: string | null;
  /** The binding the reviewer saw (the task's, checked when the decision was made). */
  binding: string;
  at: number;
}

/** What an approval did: queued the task (enough approvals), was counted, or was refused. */
export type ApproveResult = 'approved' | 'recorded' | 'duplicate' | 'not_pending';

/** What `target update` changes; what is not given stays. */
export interface TargetChanges {
  network: NetworkPolicy;
  limits: TargetLimits;
  redact: RedactLevel;
  settings: Record<string, string>;
  review: ReviewPolicyRow | null;
}

/** An update or a secret refused because a setting and a secret would share these names. */
export interface NameConflict {
  conflict: string[];
}

/** An agent `agent prune` removed from the list, and why. */
export interface PrunedAgentRow {
  id: string;
  name: string;
  why: 'revoked' | 'offline';
}

export interface SecretRow {
  targetId: string;
  orgId: string;
  name: string;
  kid: string;
  sealed: SealedSecret;
  bytes: number;
  setBy: string;
  setAt: number;
}

export interface AgentRow {
  id: string;
  orgId: string | null;
  name: string;
  hostname: string;
  version: string;
  platform: string;
  hosted: boolean;
  concurrency: number;
  registeredAt: number;
  lastSeenAt: number;
  revokedAt: number | null;
  targetIds: string[];
}

export interface JoinTokenRow {
  id: string;
  orgId: string | null;
  hosted: boolean;
  targetIds: string[];
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface TaskRow {
  id: string;
  orgId: string;
  targetId: string;
  targetName: string;
  targetType: TargetType;
  targetNetwork: NetworkPolicy;
  targetLimits: TargetLimits;
  targetRedact: RedactLevel;
  targetSettings: Record<string, string>;
  script: string;
  /** Bytes for the task's stdin (null: none), its arguments and its plain environment. */
  stdin: Uint8Array | null;
  args: string[];
  env: Record<string, string>;
  status: TaskStatus;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  agentId: string | null;
  agentName: string | null;
  createdBy: string;
  /** The principal that created it (null: tasks made before reviews), so its author is known whatever token it used. */
  createdByPrincipal: string | null;
  /** The review it waits for or went through; null: its target needed none. */
  review: TaskReviewRow | null;
  /** The runbook it ran (source, file, commit, parameters); null: a script of its own. */
  runbook: TaskRunbookRow | null;
  createdAt: number;
  claimedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  timeoutSeconds: number;
  leaseExpiresAt: number | null;
  cancelRequestedAt: number | null;
  outputBytes: number;
  storedBytes: number;
  redactState: string | null;
  /** The digest state of the raw output received (protocol's OutputDigest), or null if not known. */
  outputDigest: string | null;
  /** When output retention removed the stored output, or null. */
  outputExpiredAt: number | null;
}

/** A task as its claim hands it to the agent: with its target's sealed secrets, read with the claim. */
export interface ClaimedTask extends TaskRow {
  secrets: SecretRow[];
}

export interface TaskFilter {
  targetId?: string | undefined;
  status?: TaskStatus | undefined;
  /** Only tasks on these targets (what the caller may see, authz.ts); all of the organization's when absent. */
  targetIds?: readonly string[] | undefined;
  /** Only tasks this principal created (the web UI's "person" filter). */
  createdByPrincipal?: string | undefined;
  /** Only tasks older than this one (the list's order: created_at, then id, newest first): the next page. */
  before?: { createdAt: number; id: string } | undefined;
  limit: number;
}

export interface FinishInput {
  status: FinalStatus;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  now: number;
  /**
   * The output bytes the final status reports, checked against the stored count just before.
   * A store whose output appends may be undone after they were answered (PostgreSQL commits
   * them without waiting for the WAL flush, postgres/output.ts) writes the ending only if the
   * count is still this, so a database crash between the check and the write cannot end the
   * task without that output; the caller then finds the gap and asks the agent to resend.
   */
  outputBytes?: number;
}

/** `fresh`: the raw part of the upload the server had not seen, which starts at `freshOffset`. */
export type AppendResult = { ok: true; nextOffset: number; fresh: OutputFrame[]; freshOffset: number } | { ok: false; expectedOffset: number };

/**
 * Turns the part of an upload the server has not seen yet into the frames to store and the
 * redactor state to carry to the next upload. Runs inside the append transaction.
 */
export type OutputTransform = (fresh: readonly OutputFrame[], state: string | null) => { frames: OutputFrame[]; state: string | null };
/** What output retention removed from one organization in one pass. */
export interface ExpiredOutput {
  orgId: string;
  tasks: number;
  bytes: number;
}

/** Turns the redactor state a task ends with (its held-back bytes) into the last frames to store. */
export type HeldOutputFlush = (state: string | null) => OutputFrame[];

export type ConsumeJoinResult =
  | { ok: true; agent: AgentRow }
  | { ok: false; code: 'FERRY_E_JOIN_TOKEN_INVALID' | 'FERRY_E_JOIN_TOKEN_EXPIRED' | 'FERRY_E_JOIN_TOKEN_USED' | 'FERRY_E_JOIN_TOKEN_TARGET_DELETED' };

export interface NewAgent {
  id: string;
  name: string;
  hostname: string;
  version: string;
  platform: string;
  concurrency: number;
  tokenHash: string;
}

export interface AuditInput {
  orgId: string | null;
  at: number;
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
}
/** What `GET /v1/audit` narrows the log to (protocol `AuditQuery`); every field given must hold. */
export interface AuditFilter {
  /** Text the actor contains, case-insensitive. */
  actorContains?: string;
  actionPrefix?: string;
  /** The target's name: entries whose subject is it or one of its secrets, that name it in `details.target`, or about its tasks. */
  target?: string;
  /** Milliseconds: at >= since, at < until. */
  since?: number;
  until?: number;
  /** Sequence numbers below this (the paging cursor). */
  beforeSeq?: number;
}
export interface AuditRow extends AuditInput {
  seq: number;
  prevHash: string;
  hash: string;
}

/** An agent that holds a target's current key. */
interface KeyHolder {
  agentId: string;
  name: string;
  lastSeenAt: number;
}

/** What the server knows of a target's key beyond its public half. */
/** What claimNextTaskRenewing answers: the claimed task, if any, and renewLeases's answer. */
export interface ClaimAndRenewal {
  task: ClaimedTask | undefined;
  held: string[];
  cancel: string[];
}

/** What insertTask tells of a task it wrote. */
export interface InsertedTask {
  keyState: TargetKeyState;
  runners: number;
}

export interface TargetKeyState {
  /** Agents, not revoked and still serving the target, that hold its current key. */
  holders: KeyHolder[];
  rotationRequested: boolean;
  secretCount: number;
}

/** A holder's job: wrap `target`'s key for agent `agentId`, whose identity key is `identityKeyPem`. */
export interface KeyHandoverWork {
  target: TargetRow;
  agentId: string;
  identityKeyPem: string;
}

/** A wrapped copy of `target`'s current key waiting for its recipient. */
export interface KeyDelivery {
  target: TargetRow;
  wrapped: SealedSecret;
}

/** A holder's job: rotate `target`'s key, re-sealing these values. */
export interface KeyRotationWork {
  target: TargetRow;
  secrets: SecretRow[];
}

/** A rotation an agent made, applied only if `oldKeyId` is still in force and the values are those it re-sealed. */
export interface KeyRotation {
  targetId: string;
  oldKeyId: string;
  publicKeyPem: string;
  keyId: string;
  agentId: string;
  secrets: { name: string; sealed: SealedSecret; setAt: number }[];
  now: number;
}

/** What /metrics reports from the database, over every organization (the endpoint is the operator's). */
export interface MetricsSnapshot {
  tasksByStatus: { status: string; count: number }[];
  /** Every live target, with its queued tasks (0 included, so a drained queue shows as 0). */
  queueDepth: { org: string; target: string; count: number }[];
  agentsOnline: { hosted: boolean; count: number }[];
  storedOutputBytes: number;
}

/** For /readyz: the database answered, and which migrations it has against the ones this build knows. */
export interface Readiness {
  appliedMigrations: number[];
  knownMigrations: number[];
}

export interface Store {
  close(): Promise<void>;
  /** Ops (ops/metrics.ts, routes/ops.ts): counts for /metrics; `onlineSince`: agents seen since then are online. */
  metricsSnapshot(onlineSince: number): Promise<MetricsSnapshot>;
  readiness(): Promise<Readiness>;

  ensureOrg(name: string, now: number): Promise<OrgRow>;
  /** Organizations, principals, tokens, groups and grants (teams-types.ts). */
  readonly teams: TeamsStore;
  /** Webhooks and their durable delivery queue (webhook-types.ts). */
  readonly webhooks: WebhookStore;
  /** Runbook sources and their runbooks (runbook-types.ts). */
  readonly runbooks: RunbookStore;
  /** Invitations, local passwords and people (people-types.ts). */
  readonly people: PeopleStore;

  createTarget(row: TargetRow): Promise<TargetRow | 'exists'>;
  listTargets(orgId: string): Promise<TargetRow[]>;
  getTargetByName(orgId: string, name: string): Promise<TargetRow | undefined>;
  /** Soft-deletes the target; refuses while it has queued or running tasks. */
  deleteTarget(orgId: string, targetId: string, now: number): Promise<'deleted' | 'busy'>;
  /**
   * Changes a live target's type-independent options in one write, refusing settings that
   * share a name with one of its secrets; undefined when the target is gone.
   */
  updateTarget(targetId: string, changes: TargetChanges): Promise<TargetRow | NameConflict | undefined>;
  countOnlineAgents(target: TargetRow, since: number): Promise<number>;
  /**
   * Online agents that may run a task of the target now (eligibility.ts `mayRun`: with secrets,
   * only key holders); 0 for a deleted target. Only the id is read: a task's view counts its
   * target's runners without reading the target first.
   */
  countOnlineRunners(target: Pick<TargetRow, 'id'>, since: number): Promise<number>;

  createJoinToken(row: JoinTokenRow, secretHash: string): Promise<void>;
  /** Checks and uses a join token and registers the agent, in one transaction. */
  consumeJoinToken(secretHash: string, now: number, agent: NewAgent): Promise<ConsumeJoinResult>;
  findAgentByToken(tokenHash: string): Promise<AgentRow | undefined>;
  getAgent(agentId: string): Promise<AgentRow | undefined>;
  touchAgent(agentId: string, now: number): Promise<void>;
  /** The organization's own agents and the shared hosted pool's (no organization). */
  listAgents(orgId: string): Promise<AgentRow[]>;
  /** `orgId` null: an agent of the shared hosted pool. */
  revokeAgent(orgId: string | null, agentId: string, now: number): Promise<boolean>;
  /**
   * Takes the organization's revoked agents, and those not heard from since `offlineBefore`,
   * off the list (and revokes them): their rows stay, so tasks still name them. Agents holding
   * a running task stay.
   */
  pruneAgents(orgId: string, offlineBefore: number, now: number): Promise<PrunedAgentRow[]>;
  /** Running tasks held by the agent; only the organization's when `orgId` is given. */
  countRunningTasks(agentId: string, orgId?: string): Promise<number>;

  createTask(row: TaskRow): Promise<void>;
  /**
   * Task creation's write: createTask, only while the organization's stored output
   * (orgOutputBytes) is under `outputQuota` (0 or less: no quota); then, as of the write, the
   * target's key state (targetKeyState) and its runners seen since `onlineSince`
   * (countOnlineRunners), for the wake-up and the answer. On PostgreSQL one statement.
   */
  insertTask(row: TaskRow, outputQuota: number, onlineSince: number): Promise<InsertedTask | 'quota_reached'>;
  getTask(orgId: string, taskId: string): Promise<TaskRow | undefined>;
  /** The task if `agentId` holds or held it; for agent-side calls, which carry no organization. */
  getTaskForAgent(taskId: string, agentId: string): Promise<TaskRow | undefined>;
  listTasks(orgId: string, filter: TaskFilter): Promise<TaskRow[]>;

  // Task state changes. Each is one conditional write (compare-and-set on status, holder and
  // lease) that reports whether it won; which change to make, and what follows, is decided by
  // tasks/task-service.ts.

  /**
   * The oldest queued task this agent may run (see eligibility.ts) becomes `running` under a
   * lease; it comes with its target's sealed secrets, which the poll's answer carries.
   */
  claimNextTask(agent: AgentRow, now: number, leaseMs: number): Promise<ClaimedTask | undefined>;
  /** running, not started, held by `agentId` → queued. */
  releaseClaim(taskId: string, agentId: string): Promise<boolean>;
  /** Records the start of a running task held by `agentId`; idempotent. */
  markStarted(taskId: string, agentId: string, now: number): Promise<boolean>;
  /**
   * Renews the leases of the given tasks the agent still holds; returns which it holds and which
   * are cancelled. A lease already within a small slack below `leaseUntil` (under a tenth of the
   * lease, at most a second) may be left as it is (PostgreSQL: no write, no commit).
   */
  renewLeases(agentId: string, taskIds: readonly string[], leaseUntil: number): Promise<{ held: string[]; cancel: string[] }>;
  /**
   * A poll's two writes: renewLeases of `taskIds` and claimNextTask, with the same answers. On
   * PostgreSQL one statement (the two touch different rows).
   */
  claimNextTaskRenewing(agent: AgentRow, now: number, leaseMs: number, taskIds: readonly string[], leaseUntil: number): Promise<ClaimAndRenewal>;
  /** Asks the agent holding a running task to stop it (seen at its next heartbeat or poll). */
  requestStop(orgId: string, taskId: string, now: number): Promise<boolean>;
  /** Running tasks whose lease lapsed before `now`. */
  listLapsedLeases(now: number): Promise<TaskRow[]>;
  /** running, not started, held by `agentId`, lease lapsed before `now` → queued. */
  requeueLapsed(taskId: string, agentId: string, now: number): Promise<boolean>;
  /** Compare-and-set: a claimed, never started task whose lease lapsed after a cancel request ends as `cancelled`. */
  cancelLapsed(taskId: string, agentId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean>;
  /** At start-up: give agents of running tasks one lease period to reconnect before anything is marked lost. */
  extendRunningLeases(until: number): Promise<number>;

  // Endings. Each is one conditional write; when it wins, the redactor's held-back output is
  // stored in the same transaction, so no reader sees an ended task without its last bytes.

  /** running, held by `agentId` → the agent's final status. */
  finishTask(taskId: string, agentId: string, input: FinishInput, flush: HeldOutputFlush): Promise<boolean>;
  /**
   * finishTask for a task that stored no output and holds nothing back, without reading it
   * first: running, held by `agentId`, no output bytes → the agent's final status. Returns the
   * task's organization when the write won; undefined when it did not (the caller then reads
   * the task and decides as for any ending). On PostgreSQL one statement.
   */
  finishTaskWithoutOutput(taskId: string, agentId: string, input: FinishInput): Promise<string | undefined>;
  /** running, started, held by `agentId`, lease lapsed before `now` → lost. */
  markLost(taskId: string, agentId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean>;
  // Reviews (tasks/reviews.ts decides; each write here is one compare-and-set on pending_review).

  /** Records an approval of a pending task; with `needed` approvals, pending_review → queued in the same transaction. */
  approveTask(decision: ReviewDecisionRow, needed: number): Promise<ApproveResult>;
  /** pending_review → rejected, with the reviewer's decision. */
  rejectTask(decision: ReviewDecisionRow, reason: string, flush: HeldOutputFlush): Promise<boolean>;
  /** pending_review whose review expired before `now` → rejected. */
  expireReview(taskId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean>;
  /** Pending tasks whose review expired before `now`. */
  listExpiredReviews(now: number): Promise<TaskRow[]>;
  listReviewDecisions(taskId: string): Promise<ReviewDecisionRow[]>;
  isGroupMember(groupId: string, principalId: string): Promise<boolean>;

  /** queued (or waiting for review) → cancelled. */
  cancelUnclaimed(orgId: string, taskId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean>;

  /** Idempotent, offset-addressed append; only the agent holding the running task may write. */
  /**
   * With `digestState` (the raw output's digest state after these frames, stored with them),
   * the append must start exactly where the received output ends, or it is answered as a gap.
   */
  appendOutput(
    taskId: string,
    agentId: string,
    offset: number,
    frames: readonly OutputFrame[],
    transform: OutputTransform,
    digestState?: string | null,
  ): Promise<AppendResult | 'not_held'>;
  /** Stored output from `offset`: at most `maxBytes` (but at least one frame) in at most `maxFrames` frames. */
  readOutput(taskId: string, offset: number, maxBytes: number, maxFrames?: number): Promise<OutputFrame[]>;
  /** Removes the stored output of up to `maxTasks` tasks that finished before `before` (see output retention). */
  expireOutput(before: number, now: number, maxTasks: number): Promise<ExpiredOutput[]>;
  /** Bytes of task output the organization has stored (what the output quota counts). */
  orgOutputBytes(orgId: string): Promise<number>;

  setTargetKey(targetId: string, publicKeyPem: string, keyId: string): Promise<boolean>;
  /**
   * Stores a value if it is sealed with the target's key in force ('key_changed' otherwise);
   * refused (`NameConflict`) when the target has a setting of that name.
   */
  putSecret(row: SecretRow): Promise<'ok' | 'too_many' | 'key_changed' | NameConflict>;
  listSecrets(targetId: string): Promise<SecretRow[]>;
  deleteSecret(targetId: string, name: string): Promise<boolean>;
  /** Targets this agent serves (see eligibility.ts) that have no key yet. */
  targetsNeedingKeys(agent: AgentRow): Promise<TargetRow[]>;
  getTargetById(targetId: string): Promise<TargetRow | undefined>;

  // Keys that follow the agents: identity keys, who holds which target key, wrapped hand-overs
  // and rotation. The server stores public keys and wrapped copies only.

  /** Sets (or replaces) the agent's identity key; a new one drops copies wrapped for the old one. */
  setAgentIdentityKey(agentId: string, publicKeyPem: string, keyId: string, now: number): Promise<void>;
  /** What the agent says it holds replaces what was recorded; only current keys of targets it serves count. */
  replaceHeldKeys(agent: AgentRow, held: readonly { targetId: string; keyId: string }[], now: number): Promise<void>;
  /** Records that the agent holds the target's key `keyId`, if that is the key in force. */
  addKeyHolder(targetId: string, agentId: string, keyId: string, now: number): Promise<boolean>;
  targetKeyState(targetId: string): Promise<TargetKeyState>;
  /** Per agent of the organization (and operator-wide ones), the names of the targets whose current key it holds. */
  keyHoldings(orgId: string): Promise<Map<string, string[]>>;
  keyHandoversFor(agent: AgentRow, limit: number): Promise<KeyHandoverWork[]>;
  keyDeliveriesFor(agent: AgentRow, limit: number): Promise<KeyDelivery[]>;
  keyRotationsFor(agent: AgentRow): Promise<KeyRotationWork[]>;
  /** Keeps a wrapped copy of the target's key `keyId` for `agentId`, if that key is in force (first copy wins). */
  putKeyHandover(targetId: string, agentId: string, keyId: string, fromAgentId: string, wrapped: SealedSecret, now: number): Promise<boolean>;
  requestKeyRotation(targetId: string, now: number): Promise<boolean>;
  /** One transaction: compare-and-set on the key id and on every value's version, then the new key and values. */
  rotateTargetKey(rotation: KeyRotation): Promise<'ok' | 'key_changed' | 'secrets_changed'>;
  /** Drops the target's key `keyId` and its secrets (which nobody can open any more) so its agents make a new key; the names dropped, or undefined if `keyId` is not in force. */
  resetTargetKey(targetId: string, keyId: string): Promise<string[] | undefined>;
  /** Targets with secrets whose current key no agent but `agentId` holds. */
  targetsOnlyHeldBy(agentId: string): Promise<TargetRow[]>;

  appendAudit(entry: AuditInput): Promise<AuditRow>;
  /** The organization's entries, newest first; with `instance`, also the entries of no organization (server, shared pool); narrowed by `filter`. */
  listAudit(orgId: string, limit: number, instance?: boolean, filter?: AuditFilter): Promise<AuditRow[]>;
  /** Every entry of the whole chain, oldest first (for verification). */
  allAudit(): Promise<AuditRow[]>;
}
