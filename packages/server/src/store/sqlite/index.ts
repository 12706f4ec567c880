/* eslint-disable @typescript-eslint/require-await -- the Store interface is async for PostgreSQL; better-sqlite3 is synchronous */
/**
 * SQLite store (better-sqlite3, WAL). All calls are synchronous underneath; the async
 * interface is what the PostgreSQL store will share. State changes on tasks are single
 * conditional UPDATEs (compare-and-set on status, agent and lease), so the contract holds even
 * if the same file were opened by two processes. Who may serve what is eligibility.ts's SQL.
 */
import { chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { MAX_SECRETS_PER_TARGET, MAX_SECRET_BYTES_PER_TARGET, type OutputFrame, type SealedSecret } from '@ferry/protocol';
import { agentMayRunSql, agentMayServeSql } from '../../eligibility.js';
import type {
  AgentRow,
  AppendResult,
  ApproveResult,
  AuditFilter,
  AuditInput,
  AuditRow,
  ConsumeJoinResult,
  ExpiredOutput,
  FinishInput,
  HeldOutputFlush,
  JoinTokenRow,
  NameConflict,
  KeyDelivery,
  KeyHandoverWork,
  KeyRotation,
  KeyRotationWork,
  MetricsSnapshot,
  NewAgent,
  OrgRow,
  OutputTransform,
  PrunedAgentRow,
  Readiness,
  ReviewDecisionRow,
  SecretRow,
  Store,
  TargetChanges,
  TargetKeyState,
  InsertedTask,
  ClaimAndRenewal,
  TargetRow,
  TaskFilter,
  TaskRow,
  ClaimedTask,
} from '../types.js';
import { auditHash } from '../audit-hash.js';
import * as keys from './keys.js';
import * as reviews from './reviews.js';
import { migrations } from './migrations.js';
import { SqliteTeams } from './teams.js';
import { SqliteWebhooks } from './webhooks.js';
import { SqliteRunbooks } from './runbooks.js';
import { SqlitePeople } from './people.js';
import { metricsSnapshot, readiness } from './ops.js';
import { OutputFiles } from './output-files.js';
import { appendOutput, expireOutput, flushHeldOutput, moveRowsToFiles, readOutput, type OutputContext, type Statements } from './output.js';
import { TASK_SELECT, num, toAgent, toAudit, toSecret, toTarget, toTask, type Row } from './rows.js';

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  readonly teams: SqliteTeams;
  readonly webhooks: SqliteWebhooks;
  readonly runbooks: SqliteRunbooks;
  readonly people: SqlitePeople;

  /** Task output bytes, one file per task (see output-files.ts). */
  private readonly files: OutputFiles;
  private readonly output: OutputContext;

  /** `outputDir`: where task output files go; by default `output/` beside the database file. */
  constructor(file: string, opts: { outputDir?: string } = {}) {
    this.db = new Database(file);
    chmodSync(file, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    // The commit that fills the WAL to this many pages copies it into the database, on the
    // event loop: 1 MiB (not SQLite's 4 MiB) keeps that pause to a few milliseconds, for about
    // the same work in all.
    this.db.pragma('wal_autocheckpoint = 256');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.files = new OutputFiles(opts.outputDir ?? join(dirname(file), 'output'));
    this.output = { stmt: this.prepared, files: this.files };
    moveRowsToFiles(this.db, this.output);
    this.files.reconcile((taskId) => {
      const r = this.stmt('SELECT stored_bytes FROM tasks WHERE id = ? AND output_expired_at IS NULL').get(taskId) as Row | undefined;
      return r ? num(r.stored_bytes) : undefined;
    });
    this.teams = new SqliteTeams(this.db, this.prepared);
    this.webhooks = new SqliteWebhooks(this.db, this.prepared);
    this.runbooks = new SqliteRunbooks(this.db, this.prepared);
    this.people = new SqlitePeople(this.db, this.prepared);
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** Statements are prepared once and reused: preparing on every call cost about 1 ms per task. */
  private stmt(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private readonly prepared: Statements = (sql) => this.stmt(sql);

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const applied = new Set(
      this.stmt('SELECT version FROM schema_migrations')
        .all()
        .map((r) => num((r as Row).version)),
    );
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.stmt('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      })();
    }
  }

  async close(): Promise<void> {
    this.files.close();
    this.db.close();
  }

  async metricsSnapshot(onlineSince: number): Promise<MetricsSnapshot> {
    return metricsSnapshot(this.prepared, onlineSince);
  }

  async readiness(): Promise<Readiness> {
    return readiness(this.prepared);
  }

  async ensureOrg(name: string, now: number): Promise<OrgRow> {
    const existing = this.stmt('SELECT * FROM orgs WHERE name = ?').get(name) as Row | undefined;
    if (existing) return { id: String(existing.id), name, createdAt: num(existing.created_at) };
    const id = `o_${name}`;
    this.stmt('INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)').run(id, name, now);
    return { id, name, createdAt: now };
  }

  async createTarget(row: TargetRow): Promise<TargetRow | 'exists'> {
    try {
      this.stmt(
        'INSERT INTO targets (id, org_id, name, type, agent_mode, created_at, network, limits, redact, settings, review) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(
        row.id,
        row.orgId,
        row.name,
        row.type,
        row.agentMode,
        row.createdAt,
        row.network,
        JSON.stringify(row.limits),
        row.redact,
        JSON.stringify(row.settings),
        row.review ? JSON.stringify(row.review) : null,
      );
      return row;
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return 'exists';
      throw err;
    }
  }

  async listTargets(orgId: string): Promise<TargetRow[]> {
    return this.stmt('SELECT * FROM targets WHERE org_id = ? AND deleted_at IS NULL ORDER BY name')
      .all(orgId)
      .map((r) => toTarget(r as Row));
  }

  async getTargetByName(orgId: string, name: string): Promise<TargetRow | undefined> {
    const r = this.stmt('SELECT * FROM targets WHERE org_id = ? AND name = ? AND deleted_at IS NULL').get(orgId, name) as Row | undefined;
    return r ? toTarget(r) : undefined;
  }

  async deleteTarget(orgId: string, targetId: string, now: number): Promise<'deleted' | 'busy'> {
    return this.db.transaction(() => {
      const active = this.stmt("SELECT 1 FROM tasks WHERE target_id = ? AND status IN ('queued','pending_review','approved','running') LIMIT 1").get(targetId);
      if (active) return 'busy' as const;
      this.stmt('UPDATE targets SET deleted_at = ? WHERE id = ? AND org_id = ? AND deleted_at IS NULL').run(now, targetId, orgId);
      return 'deleted' as const;
    })();
  }

  async updateTarget(targetId: string, changes: TargetChanges): Promise<TargetRow | NameConflict | undefined> {
    return this.db.transaction((): TargetRow | NameConflict | undefined => {
      const names = Object.keys(changes.settings);
      const clash = this.stmt('SELECT name FROM secrets WHERE target_id = ? ORDER BY name')
        .all(targetId)
        .map((r) => String((r as Row).name))
        .filter((name) => names.includes(name));
      if (clash.length > 0) return { conflict: clash };
      const r = this.stmt(
        'UPDATE targets SET network = ?, limits = ?, redact = ?, settings = ?, review = ? WHERE id = ? AND deleted_at IS NULL RETURNING *',
      ).get(
        changes.network,
        JSON.stringify(changes.limits),
        changes.redact,
        JSON.stringify(changes.settings),
        changes.review ? JSON.stringify(changes.review) : null,
        targetId,
      ) as Row | undefined;
      return r ? toTarget(r) : undefined;
    })();
  }

  async countOnlineAgents(target: TargetRow, since: number): Promise<number> {
    const r = this.stmt(
      `SELECT COUNT(*) AS n FROM agents a JOIN targets g ON g.id = @targetId
      WHERE a.last_seen_at >= @since AND ${agentMayServeSql('a', 'g')}`,
    ).get({ targetId: target.id, since }) as Row;
    return num(r.n);
  }

  async countOnlineRunners(target: Pick<TargetRow, 'id'>, since: number): Promise<number> {
    const r = this.stmt(
      `SELECT COUNT(*) AS n FROM agents a JOIN targets g ON g.id = @targetId AND g.deleted_at IS NULL
      WHERE a.last_seen_at >= @since AND ${agentMayRunSql('a', 'g')}`,
    ).get({ targetId: target.id, since }) as Row;
    return num(r.n);
  }

  async createJoinToken(row: JoinTokenRow, secretHash: string): Promise<void> {
    this.stmt('INSERT INTO join_tokens (id, org_id, secret_hash, hosted, target_ids, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      row.id,
      row.orgId,
      secretHash,
      row.hosted ? 1 : 0,
      JSON.stringify(row.targetIds),
      row.createdBy,
      row.createdAt,
      row.expiresAt,
    );
  }

  async consumeJoinToken(secretHash: string, now: number, agent: NewAgent): Promise<ConsumeJoinResult> {
    return this.db.transaction((): ConsumeJoinResult => {
      const t = this.stmt('SELECT * FROM join_tokens WHERE secret_hash = ?').get(secretHash) as Row | undefined;
      if (!t) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_INVALID' };
      if (t.used_at !== null) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_USED' };
      if (num(t.expires_at) <= now) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_EXPIRED' };
      // A token for named targets serves those still there; one whose targets are all gone
      // would make an agent that serves nothing, so it is refused (and left unused).
      const named = JSON.parse(String(t.target_ids)) as string[];
      const live = this.stmt('SELECT id FROM targets WHERE deleted_at IS NULL AND id IN (SELECT value FROM json_each(?))')
        .all(String(t.target_ids))
        .map((r) => String((r as Row).id));
      if (named.length > 0 && live.length === 0) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_TARGET_DELETED' };
      const used = this.stmt('UPDATE join_tokens SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL').run(now, agent.id, t.id);
      if (used.changes !== 1) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_USED' };
      const targetIds = named.filter((id) => live.includes(id));
      this.stmt(
        `INSERT INTO agents (id, org_id, name, hostname, version, platform, hosted, concurrency, token_hash, registered_at, last_seen_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(agent.id, t.org_id, agent.name, agent.hostname, agent.version, agent.platform, t.hosted, agent.concurrency, agent.tokenHash, now, now);
      const link = this.stmt('INSERT INTO agent_targets (agent_id, target_id) VALUES (?, ?)');
      for (const targetId of targetIds) link.run(agent.id, targetId);
      const row = this.agentById(agent.id);
      return row ? { ok: true, agent: row } : { ok: false, code: 'FERRY_E_JOIN_TOKEN_INVALID' };
    })();
  }

  private agentFromRow(r: Row): AgentRow {
    const targetIds = this.stmt('SELECT target_id FROM agent_targets WHERE agent_id = ?')
      .all(r.id)
      .map((x) => String((x as Row).target_id));
    return toAgent(r, targetIds);
  }

  private agentById(id: string): AgentRow | undefined {
    const r = this.stmt('SELECT * FROM agents WHERE id = ?').get(id) as Row | undefined;
    return r ? this.agentFromRow(r) : undefined;
  }

  async findAgentByToken(tokenHash: string): Promise<AgentRow | undefined> {
    const r = this.stmt('SELECT * FROM agents WHERE token_hash = ?').get(tokenHash) as Row | undefined;
    return r ? this.agentFromRow(r) : undefined;
  }

  async getAgent(agentId: string): Promise<AgentRow | undefined> {
    return this.agentById(agentId);
  }

  async touchAgent(agentId: string, now: number): Promise<void> {
    this.stmt('UPDATE agents SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?').run(now, agentId, now);
  }

  async listAgents(orgId: string): Promise<AgentRow[]> {
    return this.stmt('SELECT * FROM agents WHERE (org_id = ? OR org_id IS NULL) AND pruned_at IS NULL ORDER BY registered_at')
      .all(orgId)
      .map((r) => this.agentFromRow(r as Row));
  }

  async revokeAgent(orgId: string | null, agentId: string, now: number): Promise<boolean> {
    const r = this.stmt('UPDATE agents SET revoked_at = ? WHERE id = ? AND org_id IS ? AND revoked_at IS NULL').run(now, agentId, orgId);
    return r.changes === 1;
  }

  async pruneAgents(orgId: string, offlineBefore: number, now: number): Promise<PrunedAgentRow[]> {
    return this.stmt(
      `UPDATE agents SET pruned_at = @now, revoked_at = COALESCE(revoked_at, @now)
      WHERE org_id = @orgId AND pruned_at IS NULL AND (revoked_at IS NOT NULL OR last_seen_at < @offlineBefore)
        AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.agent_id = agents.id AND t.status = 'running')
      RETURNING id, name, revoked_at = @now AS revoked_now`,
    )
      .all({ orgId, offlineBefore, now })
      .map((r) => {
        const row = r as Row;
        return { id: String(row.id), name: String(row.name), why: row.revoked_now === 1 ? 'offline' : 'revoked' } as const;
      });
  }

  async countRunningTasks(agentId: string, orgId?: string): Promise<number> {
    if (orgId !== undefined) {
      return num((this.stmt("SELECT COUNT(*) AS n FROM tasks WHERE agent_id = ? AND status = 'running' AND org_id = ?").get(agentId, orgId) as Row).n);
    }
    return num((this.stmt("SELECT COUNT(*) AS n FROM tasks WHERE agent_id = ? AND status = 'running'").get(agentId) as Row).n);
  }

  async createTask(row: TaskRow): Promise<void> {
    this.stmt(
      `INSERT INTO tasks (id, org_id, target_id, script, status, created_by, created_at, timeout_seconds, stdin, args, env,
        created_by_principal, review, review_expires_at, runbook)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      row.id,
      row.orgId,
      row.targetId,
      row.script,
      row.status,
      row.createdBy,
      row.createdAt,
      row.timeoutSeconds,
      row.stdin,
      JSON.stringify(row.args),
      JSON.stringify(row.env),
      row.createdByPrincipal,
      row.review ? JSON.stringify(row.review) : null,
      row.review ? row.review.expiresAt : null,
      row.runbook ? JSON.stringify(row.runbook) : null,
    );
  }

  async insertTask(row: TaskRow, outputQuota: number, onlineSince: number): Promise<InsertedTask | 'quota_reached'> {
    if (outputQuota > 0 && (await this.orgOutputBytes(row.orgId)) >= outputQuota) return 'quota_reached';
    await this.createTask(row);
    return { keyState: await this.targetKeyState(row.targetId), runners: await this.countOnlineRunners({ id: row.targetId }, onlineSince) };
  }

  async getTask(orgId: string, taskId: string): Promise<TaskRow | undefined> {
    const r = this.stmt(`${TASK_SELECT} WHERE t.id = ? AND t.org_id = ?`).get(taskId, orgId) as Row | undefined;
    return r ? toTask(r) : undefined;
  }

  private taskById(taskId: string): TaskRow | undefined {
    const r = this.stmt(`${TASK_SELECT} WHERE t.id = ?`).get(taskId) as Row | undefined;
    return r ? toTask(r) : undefined;
  }

  async getTaskForAgent(taskId: string, agentId: string): Promise<TaskRow | undefined> {
    const r = this.stmt(`${TASK_SELECT} WHERE t.id = ? AND t.agent_id = ?`).get(taskId, agentId) as Row | undefined;
    return r ? toTask(r) : undefined;
  }

  async listTasks(orgId: string, filter: TaskFilter): Promise<TaskRow[]> {
    const where = ['t.org_id = @orgId'];
    if (filter.targetId) where.push('t.target_id = @targetId');
    if (filter.status) where.push('t.status = @status');
    if (filter.targetIds) where.push('t.target_id IN (SELECT value FROM json_each(@targetIds))');
    if (filter.createdByPrincipal) where.push('t.created_by_principal = @createdByPrincipal');
    if (filter.before) where.push('(t.created_at < @beforeAt OR (t.created_at = @beforeAt AND t.id < @beforeId))');
    const targetIds = filter.targetIds ? JSON.stringify(filter.targetIds) : undefined;
    return this.stmt(`${TASK_SELECT} WHERE ${where.join(' AND ')} ORDER BY t.created_at DESC, t.id DESC LIMIT @limit`)
      .all({
        orgId,
        targetId: filter.targetId,
        status: filter.status,
        targetIds,
        createdByPrincipal: filter.createdByPrincipal,
        beforeAt: filter.before?.createdAt,
        beforeId: filter.before?.id,
        limit: filter.limit,
      })
      .map((r) => toTask(r as Row));
  }

  async claimNextTask(agent: AgentRow, now: number, leaseMs: number): Promise<ClaimedTask | undefined> {
    const r = this.stmt(
      `UPDATE tasks SET status = 'running', agent_id = @agentId, claimed_at = @now, lease_expires_at = @lease
      WHERE id = (SELECT t.id FROM tasks t JOIN targets g ON g.id = t.target_id JOIN agents a ON a.id = @agentId
                  WHERE t.status = 'queued' AND ${agentMayRunSql('a', 'g')} ORDER BY t.created_at, t.id LIMIT 1)
        AND status = 'queued' RETURNING id`,
    ).get({ agentId: agent.id, now, lease: now + leaseMs }) as Row | undefined;
    const task = r ? this.taskById(String(r.id)) : undefined;
    return task && { ...task, secrets: await this.listSecrets(task.targetId) };
  }

  async releaseClaim(taskId: string, agentId: string): Promise<boolean> {
    const r = this.stmt(
      "UPDATE tasks SET status = 'queued', agent_id = NULL, claimed_at = NULL, lease_expires_at = NULL WHERE id = ? AND agent_id = ? AND status = 'running' AND started_at IS NULL",
    ).run(taskId, agentId);
    return r.changes === 1;
  }

  async markStarted(taskId: string, agentId: string, now: number): Promise<boolean> {
    // Idempotent: an agent retrying after a lost answer gets the same yes.
    const r = this.stmt("UPDATE tasks SET started_at = COALESCE(started_at, ?) WHERE id = ? AND agent_id = ? AND status = 'running'").run(now, taskId, agentId);
    return r.changes === 1;
  }

  async claimNextTaskRenewing(agent: AgentRow, now: number, leaseMs: number, taskIds: readonly string[], leaseUntil: number): Promise<ClaimAndRenewal> {
    const renewal = await this.renewLeases(agent.id, taskIds, leaseUntil);
    return { task: await this.claimNextTask(agent, now, leaseMs), ...renewal };
  }

  async renewLeases(agentId: string, taskIds: readonly string[], leaseUntil: number): Promise<{ held: string[]; cancel: string[] }> {
    const held: string[] = [];
    const cancel: string[] = [];
    const renew = this.stmt("UPDATE tasks SET lease_expires_at = ? WHERE id = ? AND agent_id = ? AND status = 'running' RETURNING cancel_requested_at");
    this.db.transaction(() => {
      for (const id of taskIds) {
        const r = renew.get(leaseUntil, id, agentId) as Row | undefined;
        if (!r) continue;
        held.push(id);
        if (r.cancel_requested_at !== null) cancel.push(id);
      }
    })();
    return { held, cancel };
  }

  async requestStop(orgId: string, taskId: string, now: number): Promise<boolean> {
    const r = this.stmt("UPDATE tasks SET cancel_requested_at = ? WHERE id = ? AND org_id = ? AND status = 'running' AND cancel_requested_at IS NULL").run(
      now,
      taskId,
      orgId,
    );
    return r.changes === 1;
  }

  async listLapsedLeases(now: number): Promise<TaskRow[]> {
    return this.stmt(`${TASK_SELECT} WHERE t.status = 'running' AND t.lease_expires_at < ?`)
      .all(now)
      .map((r) => toTask(r as Row));
  }

  async requeueLapsed(taskId: string, agentId: string, now: number): Promise<boolean> {
    const r = this.stmt(
      `UPDATE tasks SET status = 'queued', agent_id = NULL, claimed_at = NULL, lease_expires_at = NULL
      WHERE id = ? AND agent_id = ? AND status = 'running' AND started_at IS NULL AND lease_expires_at < ? AND cancel_requested_at IS NULL`,
    ).run(taskId, agentId, now);
    return r.changes === 1;
  }

  async cancelLapsed(taskId: string, agentId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, () =>
      this.stmt(
        `UPDATE tasks SET status = 'cancelled', finished_at = ?, lease_expires_at = NULL, reason = ?
      WHERE id = ? AND agent_id = ? AND status = 'running' AND started_at IS NULL AND lease_expires_at < ? AND cancel_requested_at IS NOT NULL`,
      ).run(now, reason, taskId, agentId, now),
    );
  }

  async extendRunningLeases(until: number): Promise<number> {
    return this.stmt("UPDATE tasks SET lease_expires_at = ? WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < ?)").run(until, until)
      .changes;
  }

  async finishTask(taskId: string, agentId: string, input: FinishInput, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, () =>
      this.stmt(
        `UPDATE tasks SET status = ?, exit_code = ?, signal = ?, reason = ?, finished_at = ?, lease_expires_at = NULL,
        started_at = COALESCE(started_at, ?)
      WHERE id = ? AND agent_id = ? AND status = 'running'`,
      ).run(input.status, input.exitCode, input.signal, input.reason, input.now, input.now, taskId, agentId),
    );
  }

  async finishTaskWithoutOutput(taskId: string, agentId: string, input: FinishInput): Promise<string | undefined> {
    // The read and finishTask's write run without a turn of the event loop between them.
    const r = this.stmt("SELECT org_id FROM tasks WHERE id = ? AND agent_id = ? AND status = 'running' AND output_bytes = 0 AND redact_state IS NULL").get(
      taskId,
      agentId,
    ) as Row | undefined;
    if (!r) return undefined;
    return (await this.finishTask(taskId, agentId, input, () => [])) ? String(r.org_id) : undefined;
  }

  async markLost(taskId: string, agentId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, () =>
      this.stmt(
        `UPDATE tasks SET status = 'lost', finished_at = ?, lease_expires_at = NULL, reason = ?
      WHERE id = ? AND agent_id = ? AND status = 'running' AND started_at IS NOT NULL AND lease_expires_at < ?`,
      ).run(now, reason, taskId, agentId, now),
    );
  }

  async approveTask(decision: ReviewDecisionRow, needed: number): Promise<ApproveResult> {
    return this.db.transaction(() => reviews.approveTask(this.prepared, decision, needed))();
  }

  async rejectTask(decision: ReviewDecisionRow, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(decision.taskId, flush, () => reviews.rejectTask(this.prepared, decision, reason));
  }

  async expireReview(taskId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, () =>
      this.stmt(
        `UPDATE tasks SET status = 'rejected', finished_at = ?, reason = ?, review_expires_at = NULL
        WHERE id = ? AND status = 'pending_review' AND review_expires_at <= ?`,
      ).run(now, reason, taskId, now),
    );
  }

  async listExpiredReviews(now: number): Promise<TaskRow[]> {
    return this.stmt(`${TASK_SELECT} WHERE t.status = 'pending_review' AND t.review_expires_at <= ? ORDER BY t.review_expires_at LIMIT 1000`)
      .all(now)
      .map((r) => toTask(r as Row));
  }

  async listReviewDecisions(taskId: string): Promise<ReviewDecisionRow[]> {
    return reviews.listDecisions(this.prepared, taskId);
  }

  async isGroupMember(groupId: string, principalId: string): Promise<boolean> {
    return this.stmt('SELECT 1 FROM group_members WHERE group_id = ? AND principal_id = ?').get(groupId, principalId) !== undefined;
  }

  async cancelUnclaimed(orgId: string, taskId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, () =>
      this.stmt(
        `UPDATE tasks SET status = 'cancelled', finished_at = ?, cancel_requested_at = ?, reason = ?
      WHERE id = ? AND org_id = ? AND status IN ('queued','pending_review','approved')`,
      ).run(now, now, reason, taskId, orgId),
    );
  }

  /** An ending's conditional write and, only if it won, the held-back output: one transaction. */
  private endTask(taskId: string, flush: HeldOutputFlush, write: () => Database.RunResult): boolean {
    const ended = this.db.transaction((): boolean => {
      if (write().changes !== 1) return false;
      flushHeldOutput(this.output, taskId, flush);
      // The digest state holds the last few raw (unredacted) bytes of the output: once the task
      // has ended nothing checks it any more, so it goes, as the redactor's held-back text does.
      this.stmt('UPDATE tasks SET output_digest = NULL WHERE id = ?').run(taskId);
      return true;
    })();
    this.files.release(taskId); // nothing more is written to an ended task's file
    return ended;
  }

  async appendOutput(
    taskId: string,
    agentId: string,
    offset: number,
    frames: readonly OutputFrame[],
    transform: OutputTransform,
    digestState: string | null = null,
  ): Promise<AppendResult | 'not_held'> {
    return this.db.transaction(() => appendOutput(this.output, taskId, agentId, offset, frames, transform, digestState))();
  }

  async readOutput(taskId: string, offset: number, maxBytes: number, maxFrames = Infinity): Promise<OutputFrame[]> {
    return readOutput(this.output, taskId, offset, maxBytes, maxFrames);
  }

  async expireOutput(before: number, now: number, maxTasks: number): Promise<ExpiredOutput[]> {
    const { expired, taskIds } = this.db.transaction(() => expireOutput(this.prepared, before, now, maxTasks))();
    // Files go once the rows saying they are gone have committed; a crash in between leaves
    // files that the next start removes (OutputFiles.reconcile).
    for (const taskId of taskIds) this.files.remove(taskId);
    return expired;
  }

  async orgOutputBytes(orgId: string): Promise<number> {
    const r = this.stmt('SELECT output_bytes FROM orgs WHERE id = ?').get(orgId) as Row | undefined;
    return r ? num(r.output_bytes) : 0;
  }

  async setTargetKey(targetId: string, publicKeyPem: string, keyId: string): Promise<boolean> {
    const r = this.stmt('UPDATE targets SET public_key = ?, key_id = ? WHERE id = ? AND public_key IS NULL AND deleted_at IS NULL').run(
      publicKeyPem,
      keyId,
      targetId,
    );
    return r.changes === 1;
  }

  async putSecret(row: SecretRow): Promise<'ok' | 'too_many' | 'key_changed' | NameConflict> {
    return this.db.transaction((): 'ok' | 'too_many' | 'key_changed' | NameConflict => {
      // Compare-and-set on the key: a value sealed with a key rotated away meanwhile would never open.
      if (!this.stmt('SELECT 1 FROM targets WHERE id = ? AND key_id = ?').get(row.targetId, row.kid)) return 'key_changed';
      const target = this.stmt('SELECT settings FROM targets WHERE id = ?').get(row.targetId) as Row | undefined;
      if (target && Object.hasOwn(JSON.parse(String(target.settings)) as object, row.name)) return { conflict: [row.name] };
      const existing = this.stmt('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM secrets WHERE target_id = ? AND name <> ?').get(
        row.targetId,
        row.name,
      ) as Row;
      if (num(existing.n) + 1 > MAX_SECRETS_PER_TARGET || num(existing.b) + row.bytes > MAX_SECRET_BYTES_PER_TARGET) return 'too_many';
      this.stmt(
        `INSERT INTO secrets (target_id, name, org_id, kid, sealed, bytes, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (target_id, name) DO UPDATE SET kid = excluded.kid, sealed = excluded.sealed, bytes = excluded.bytes, set_by = excluded.set_by, set_at = excluded.set_at`,
      ).run(row.targetId, row.name, row.orgId, row.kid, JSON.stringify(row.sealed), row.bytes, row.setBy, row.setAt);
      return 'ok';
    })();
  }

  async listSecrets(targetId: string): Promise<SecretRow[]> {
    return this.stmt('SELECT * FROM secrets WHERE target_id = ? ORDER BY name')
      .all(targetId)
      .map((r) => toSecret(r as Row));
  }

  async deleteSecret(targetId: string, name: string): Promise<boolean> {
    return this.stmt('DELETE FROM secrets WHERE target_id = ? AND name = ?').run(targetId, name).changes === 1;
  }

  async targetsNeedingKeys(agent: AgentRow): Promise<TargetRow[]> {
    return this.stmt(
      `SELECT g.* FROM targets g JOIN agents a ON a.id = ?
      WHERE g.deleted_at IS NULL AND g.public_key IS NULL AND ${agentMayServeSql('a', 'g')}`,
    )
      .all(agent.id)
      .map((r) => toTarget(r as Row));
  }

  async getTargetById(targetId: string): Promise<TargetRow | undefined> {
    const r = this.stmt('SELECT * FROM targets WHERE id = ? AND deleted_at IS NULL').get(targetId) as Row | undefined;
    return r ? toTarget(r) : undefined;
  }

  async setAgentIdentityKey(agentId: string, publicKeyPem: string, keyId: string, now: number): Promise<void> {
    this.db.transaction(() => keys.setAgentIdentityKey(this.prepared, agentId, publicKeyPem, keyId, now))();
  }

  async replaceHeldKeys(agent: AgentRow, held: readonly { targetId: string; keyId: string }[], now: number): Promise<void> {
    this.db.transaction(() => keys.replaceHeldKeys(this.prepared, agent, held, now))();
  }

  async addKeyHolder(targetId: string, agentId: string, keyId: string, now: number): Promise<boolean> {
    return this.db.transaction(() => keys.addKeyHolder(this.prepared, targetId, agentId, keyId, now))();
  }

  async targetKeyState(targetId: string): Promise<TargetKeyState> {
    return keys.targetKeyState(this.prepared, targetId);
  }

  async keyHoldings(orgId: string): Promise<Map<string, string[]>> {
    return keys.keyHoldings(this.prepared, orgId);
  }

  async keyHandoversFor(agent: AgentRow, limit: number): Promise<KeyHandoverWork[]> {
    return keys.keyHandoversFor(this.prepared, agent, limit);
  }

  async keyDeliveriesFor(agent: AgentRow, limit: number): Promise<KeyDelivery[]> {
    return keys.keyDeliveriesFor(this.prepared, agent, limit);
  }

  async keyRotationsFor(agent: AgentRow): Promise<KeyRotationWork[]> {
    return keys.keyRotationsFor(this.prepared, agent);
  }

  async putKeyHandover(targetId: string, agentId: string, keyId: string, fromAgentId: string, wrapped: SealedSecret, now: number): Promise<boolean> {
    return keys.putKeyHandover(this.prepared, targetId, agentId, keyId, fromAgentId, wrapped, now);
  }

  async requestKeyRotation(targetId: string, now: number): Promise<boolean> {
    const r = this.stmt(
      'UPDATE targets SET key_rotation_requested_at = COALESCE(key_rotation_requested_at, ?) WHERE id = ? AND key_id IS NOT NULL AND deleted_at IS NULL',
    ).run(now, targetId);
    return r.changes === 1;
  }

  async rotateTargetKey(rotation: KeyRotation): Promise<'ok' | 'key_changed' | 'secrets_changed'> {
    return this.db.transaction(() => keys.rotateTargetKey(this.prepared, rotation))();
  }

  async resetTargetKey(targetId: string, keyId: string): Promise<string[] | undefined> {
    return this.db.transaction(() => keys.resetTargetKey(this.prepared, targetId, keyId))();
  }

  async targetsOnlyHeldBy(agentId: string): Promise<TargetRow[]> {
    return keys.targetsOnlyHeldBy(this.prepared, agentId).map(toTarget);
  }

  async appendAudit(entry: AuditInput): Promise<AuditRow> {
    return this.db.transaction((): AuditRow => {
      const last = this.stmt('SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1').get() as Row | undefined;
      const prevHash = last ? String(last.hash) : '0'.repeat(64);
      const hash = auditHash(prevHash, entry);
      const r = this.stmt(
        'INSERT INTO audit_log (org_id, at, actor, action, subject, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq',
      ).get(entry.orgId, entry.at, entry.actor, entry.action, entry.subject, JSON.stringify(entry.details), prevHash, hash) as Row;
      return { ...entry, seq: num(r.seq), prevHash, hash };
    })();
  }

  async allAudit(): Promise<AuditRow[]> {
    return this.stmt('SELECT * FROM audit_log ORDER BY seq')
      .all()
      .map((r) => toAudit(r as Row));
  }

  async listAudit(orgId: string, limit: number, instance = false, filter: AuditFilter = {}): Promise<AuditRow[]> {
    const where = [instance ? '(org_id = ? OR org_id IS NULL)' : 'org_id = ?'];
    const args: unknown[] = [orgId];
    const add = (sql: string, ...values: unknown[]): void => {
      where.push(sql);
      args.push(...values);
    };
    if (filter.actorContains !== undefined) add('instr(lower(actor), lower(?)) > 0', filter.actorContains);
    if (filter.actionPrefix !== undefined) add('substr(action, 1, length(?)) = ?', filter.actionPrefix, filter.actionPrefix);
    if (filter.target !== undefined) {
      // A target's own entries name it as the subject (`target.update`), its secrets' entries
      // `name/SECRET`, task creation and join tokens in details; its tasks' entries name the task.
      // The action's kind is checked too: a group or a person may have the target's name.
      add(
        `((substr(action, 1, 7) = 'target.' AND subject = ?) OR (substr(action, 1, 7) = 'secret.' AND substr(subject, 1, length(?) + 1) = ? || '/')
          OR json_extract(details, '$.target') = ?
          OR EXISTS (SELECT 1 FROM json_each(details, '$.targets') WHERE value = ?)
          OR subject IN (SELECT t.id FROM tasks t JOIN targets g ON g.id = t.target_id WHERE g.org_id = ? AND g.name = ?))`,
        filter.target,
        filter.target,
        filter.target,
        filter.target,
        filter.target,
        orgId,
        filter.target,
      );
    }
    if (filter.since !== undefined) add('at >= ?', filter.since);
    if (filter.until !== undefined) add('at < ?', filter.until);
    if (filter.beforeSeq !== undefined) add('seq < ?', filter.beforeSeq);
    return this.stmt(`SELECT * FROM audit_log WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`)
      .all(...args, limit)
      .map((r) => toAudit(r as Row));
  }
}
