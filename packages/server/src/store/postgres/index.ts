/**
 * PostgreSQL store (through `pg`), for several `ferry server` replicas on one database. The
 * same contract as the SQLite store (test/helpers/stores.ts runs one suite on both): every task
 * state change is one conditional UPDATE (compare-and-set on status, agent and lease) whose row
 * count says whether it won, so two replicas racing for a task cannot both have it. The claim
 * picks its row with FOR UPDATE SKIP LOCKED, so concurrent claims take different tasks instead
 * of queueing on the same one. Audit appends are serialized by a transaction-scoped advisory
 * lock, so the hash chain stays one chain under any number of writers.
 */
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
  TargetRow,
  TaskFilter,
  TaskRow,
  ClaimedTask,
  ClaimAndRenewal,
} from '../types.js';
import { auditHash } from '../audit-hash.js';
import { TASK_SELECT, num, strOrNull, toAgent, toAudit, toSecret, toTarget, toTask } from '../sqlite/rows.js';
import { Db, isUniqueViolation, type Row, type Sql, type SqlPrepared } from './db.js';
import * as keys from './keys.js';
import { pgMigrations } from './migrations.js';
import { appendOutput, compressChunksWithLz4, expireOutput, flushHeldOutput, readOutput } from './output.js';
import { PgTeams } from './teams.js';
import { PgWebhooks } from './webhooks.js';
import { PgRunbooks } from './runbooks.js';
import { PgPeople } from './people.js';

/** Advisory lock keys (one namespace for Ferry's): migrations, the audit chain, first-start set-up. */
const LOCK_MIGRATE = 0x46657201;
const LOCK_AUDIT = 0x46657202;
const LOCK_SETUP = 0x46657203;

/** endTask's condition for an ending written as one statement: the redactor holds nothing back. */
const NOTHING_HELD = ' AND redact_state IS NULL';

/** At most this much of a lease renewal may be skipped (renewLeases): under a second of a lease of seconds. */
const RENEW_SLACK_MS = 1000;

/**
 * An audit entry after the chain's head (see appendAudit): $7 is the JSON of the entry's fields
 * after the opening bracket and the previous hash, so the text hashed is auditHash's exactly.
 */
const AUDIT_APPEND: SqlPrepared = {
  name: 'ferry_audit_append',
  types: ['text', 'bigint', 'text', 'text', 'text', 'text', 'text'],
  sql: `INSERT INTO audit_log (org_id, at, actor, action, subject, details, prev_hash, hash)
    SELECT $1, $2, $3, $4, $5, $6, h.prev, encode(sha256(convert_to('["' || h.prev || '",' || $7, 'UTF8')), 'hex')
    FROM (SELECT COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), repeat('0', 64)) AS prev) AS h
    RETURNING seq, prev_hash, hash`,
};

const bytes = (v: Uint8Array | null): Buffer | null => (v === null ? null : Buffer.from(v.buffer, v.byteOffset, v.length));

export interface PostgresStoreOptions {
  url: string;
  poolSize: number;
}

export class PostgresStore implements Store {
  readonly teams: PgTeams;
  readonly webhooks: PgWebhooks;
  readonly runbooks: PgRunbooks;
  readonly people: PgPeople;

  private constructor(readonly db: Db) {
    this.teams = new PgTeams(db);
    this.webhooks = new PgWebhooks(db);
    this.runbooks = new PgRunbooks(db);
    this.people = new PgPeople(db);
  }

  /** Connects and brings the schema up to date (replicas starting together take turns: advisory lock). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const db = new Db({ url: options.url, size: options.poolSize });
    compressChunksWithLz4(db.pool);
    try {
      await migrate(db);
    } catch (err) {
      await db.close();
      throw err;
    }
    return new PostgresStore(db);
  }

  private closing: Promise<void> | undefined;

  /** Idempotent: ends the pool once. */
  close(): Promise<void> {
    this.closing ??= this.db.close();
    return this.closing;
  }

  /**
   * Runs `fn` while holding a session advisory lock that every replica of this database takes
   * for the same purpose: replicas starting together on one data folder make its CA, keys and
   * admin token one after the other (the second finds them made).
   */
  async exclusively<T>(fn: () => Promise<T>): Promise<T> {
    const client = await this.db.pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [LOCK_SETUP]);
      try {
        return await fn();
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [LOCK_SETUP]);
      }
    } finally {
      client.release();
    }
  }

  async metricsSnapshot(onlineSince: number): Promise<MetricsSnapshot> {
    const tasksByStatus = (await this.db.all('SELECT status, COUNT(*) AS n FROM tasks GROUP BY status ORDER BY status')).map((r) => ({
      status: String(r.status),
      count: num(r.n),
    }));
    const queueDepth = (
      await this.db.all(
        `SELECT o.name AS org, g.name AS target, COUNT(t.id) AS n
       FROM targets g JOIN orgs o ON o.id = g.org_id
       LEFT JOIN tasks t ON t.target_id = g.id AND t.status = 'queued'
       WHERE g.deleted_at IS NULL GROUP BY g.id, o.name, g.name ORDER BY o.name, g.name`,
      )
    ).map((r) => ({ org: String(r.org), target: String(r.target), count: num(r.n) }));
    const online = (
      await this.db.all('SELECT hosted, COUNT(*) AS n FROM agents WHERE revoked_at IS NULL AND last_seen_at >= ? GROUP BY hosted', [onlineSince])
    ).map((r) => ({ hosted: num(r.hosted) === 1, count: num(r.n) }));
    const agentsOnline = [true, false].map((hosted) => ({ hosted, count: online.find((o) => o.hosted === hosted)?.count ?? 0 }));
    const stored = await this.db.one('SELECT COALESCE(SUM(output_bytes), 0) AS n FROM orgs');
    return { tasksByStatus, queueDepth, agentsOnline, storedOutputBytes: num(stored?.n) };
  }

  async readiness(): Promise<Readiness> {
    const appliedMigrations = (await this.db.all('SELECT version FROM schema_migrations ORDER BY version')).map((r) => num(r.version));
    return { appliedMigrations, knownMigrations: pgMigrations.map((m) => m.version) };
  }

  async ensureOrg(name: string, now: number): Promise<OrgRow> {
    const id = `o_${name}`;
    // Replicas starting together: the second insert does nothing and both read the one row.
    await this.db.run('INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [id, name, now]);
    const r = await this.db.one('SELECT * FROM orgs WHERE name = ?', [name]);
    return { id: String(r?.id), name, createdAt: num(r?.created_at) };
  }

  async createTarget(row: TargetRow): Promise<TargetRow | 'exists'> {
    try {
      await this.db.run(
        'INSERT INTO targets (id, org_id, name, type, agent_mode, created_at, network, limits, redact, settings, review) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
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
        ],
      );
      return row;
    } catch (err) {
      if (isUniqueViolation(err)) return 'exists';
      throw err;
    }
  }

  async listTargets(orgId: string): Promise<TargetRow[]> {
    return (await this.db.all('SELECT * FROM targets WHERE org_id = ? AND deleted_at IS NULL ORDER BY name', [orgId])).map(toTarget);
  }

  async getTargetByName(orgId: string, name: string): Promise<TargetRow | undefined> {
    const r = await this.db.one('SELECT * FROM targets WHERE org_id = ? AND name = ? AND deleted_at IS NULL', [orgId, name]);
    return r ? toTarget(r) : undefined;
  }

  async deleteTarget(orgId: string, targetId: string, now: number): Promise<'deleted' | 'busy'> {
    return this.db.tx(async (sql) => {
      // Lock the target: a task being inserted right now (its foreign key share-locks the row) is
      // waited for, and so counted below as busy.
      await sql.one('SELECT 1 FROM targets WHERE id = ? FOR UPDATE', [targetId]);
      const active = await sql.one("SELECT 1 FROM tasks WHERE target_id = ? AND status IN ('queued','pending_review','approved','running') LIMIT 1", [
        targetId,
      ]);
      if (active) return 'busy' as const;
      await sql.run('UPDATE targets SET deleted_at = ? WHERE id = ? AND org_id = ? AND deleted_at IS NULL', [now, targetId, orgId]);
      return 'deleted' as const;
    });
  }

  async updateTarget(targetId: string, changes: TargetChanges): Promise<TargetRow | NameConflict | undefined> {
    return this.db.tx(async (sql): Promise<TargetRow | NameConflict | undefined> => {
      await sql.one('SELECT 1 FROM targets WHERE id = ? FOR UPDATE', [targetId]);
      const names = Object.keys(changes.settings);
      const clash = (await sql.all('SELECT name FROM secrets WHERE target_id = ? ORDER BY name', [targetId]))
        .map((r) => String(r.name))
        .filter((n) => names.includes(n));
      if (clash.length > 0) return { conflict: clash };
      const r = await sql.one(
        'UPDATE targets SET network = ?, limits = ?, redact = ?, settings = ?, review = ? WHERE id = ? AND deleted_at IS NULL RETURNING *',
        [
          changes.network,
          JSON.stringify(changes.limits),
          changes.redact,
          JSON.stringify(changes.settings),
          changes.review ? JSON.stringify(changes.review) : null,
          targetId,
        ],
      );
      return r ? toTarget(r) : undefined;
    });
  }

  async countOnlineAgents(target: TargetRow, since: number): Promise<number> {
    const r = await this.db.one(`SELECT COUNT(*) AS n FROM agents a JOIN targets g ON g.id = ? WHERE a.last_seen_at >= ? AND ${agentMayServeSql('a', 'g')}`, [
      target.id,
      since,
    ]);
    return num(r?.n);
  }

  async countOnlineRunners(target: Pick<TargetRow, 'id'>, since: number): Promise<number> {
    const r = await this.db.one(
      `SELECT COUNT(*) AS n FROM agents a JOIN targets g ON g.id = ? AND g.deleted_at IS NULL WHERE a.last_seen_at >= ? AND ${agentMayRunSql('a', 'g')}`,
      [target.id, since],
    );
    return num(r?.n);
  }

  async createJoinToken(row: JoinTokenRow, secretHash: string): Promise<void> {
    await this.db.run(
      'INSERT INTO join_tokens (id, org_id, secret_hash, hosted, target_ids, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [row.id, row.orgId, secretHash, row.hosted ? 1 : 0, JSON.stringify(row.targetIds), row.createdBy, row.createdAt, row.expiresAt],
    );
  }

  async consumeJoinToken(secretHash: string, now: number, agent: NewAgent): Promise<ConsumeJoinResult> {
    return this.db.tx(async (sql): Promise<ConsumeJoinResult> => {
      const t = await sql.one('SELECT * FROM join_tokens WHERE secret_hash = ? FOR UPDATE', [secretHash]);
      if (!t) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_INVALID' };
      if (t.used_at !== null) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_USED' };
      if (num(t.expires_at) <= now) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_EXPIRED' };
      const named = JSON.parse(String(t.target_ids)) as string[];
      const live = (await sql.all('SELECT id FROM targets WHERE deleted_at IS NULL AND id = ANY(?::text[])', [named])).map((r) => String(r.id));
      if (named.length > 0 && live.length === 0) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_TARGET_DELETED' };
      const used = await sql.run('UPDATE join_tokens SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL', [now, agent.id, t.id]);
      if (used !== 1) return { ok: false, code: 'FERRY_E_JOIN_TOKEN_USED' };
      await sql.run(
        `INSERT INTO agents (id, org_id, name, hostname, version, platform, hosted, concurrency, token_hash, registered_at, last_seen_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [agent.id, t.org_id, agent.name, agent.hostname, agent.version, agent.platform, t.hosted, agent.concurrency, agent.tokenHash, now, now],
      );
      for (const targetId of named.filter((id) => live.includes(id)))
        await sql.run('INSERT INTO agent_targets (agent_id, target_id) VALUES (?, ?)', [agent.id, targetId]);
      const row = await agentById(sql, agent.id);
      return row ? { ok: true, agent: row } : { ok: false, code: 'FERRY_E_JOIN_TOKEN_INVALID' };
    });
  }

  async findAgentByToken(tokenHash: string): Promise<AgentRow | undefined> {
    const r = await this.db.one(`${AGENT_SELECT} WHERE a.token_hash = ?`, [tokenHash]);
    return r ? agentFromRow(r) : undefined;
  }

  async getAgent(agentId: string): Promise<AgentRow | undefined> {
    return agentById(this.db, agentId);
  }

  async touchAgent(agentId: string, now: number): Promise<void> {
    await this.db.run('UPDATE agents SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?', [now, agentId, now]);
  }

  async listAgents(orgId: string): Promise<AgentRow[]> {
    const rows = await this.db.all(`${AGENT_SELECT} WHERE (a.org_id = ? OR a.org_id IS NULL) AND a.pruned_at IS NULL ORDER BY a.registered_at`, [orgId]);
    return rows.map(agentFromRow);
  }

  async revokeAgent(orgId: string | null, agentId: string, now: number): Promise<boolean> {
    return (
      (await this.db.run('UPDATE agents SET revoked_at = ? WHERE id = ? AND org_id IS NOT DISTINCT FROM ? AND revoked_at IS NULL', [now, agentId, orgId])) === 1
    );
  }

  async pruneAgents(orgId: string, offlineBefore: number, now: number): Promise<PrunedAgentRow[]> {
    const rows = await this.db.all(
      `UPDATE agents SET pruned_at = ?, revoked_at = COALESCE(revoked_at, ?)
      WHERE org_id = ? AND pruned_at IS NULL AND (revoked_at IS NOT NULL OR last_seen_at < ?)
        AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.agent_id = agents.id AND t.status = 'running')
      RETURNING id, name, revoked_at = ? AS revoked_now`,
      [now, now, orgId, offlineBefore, now],
    );
    return rows.map((r) => ({ id: String(r.id), name: String(r.name), why: r.revoked_now === true ? 'offline' : 'revoked' }) as const);
  }

  async countRunningTasks(agentId: string, orgId?: string): Promise<number> {
    if (orgId !== undefined) {
      return num((await this.db.one("SELECT COUNT(*) AS n FROM tasks WHERE agent_id = ? AND status = 'running' AND org_id = ?", [agentId, orgId]))?.n);
    }
    return num((await this.db.one("SELECT COUNT(*) AS n FROM tasks WHERE agent_id = ? AND status = 'running'", [agentId]))?.n);
  }

  async createTask(row: TaskRow): Promise<void> {
    await this.db.run(`INSERT INTO tasks (${TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, taskValues(row));
  }

  async insertTask(row: TaskRow, outputQuota: number, onlineSince: number): Promise<InsertedTask | 'quota_reached'> {
    // One statement where there were four (the quota's read, the insert, the key state's read,
    // the count of runners for the answer), each with its round trip and the server's and the
    // database's per-statement work. The reads see the statement's snapshot, as reads beside the
    // insert would have.
    const r = await this.db.one(INSERT_TASK, [...taskValues(row), outputQuota, row.orgId, outputQuota, row.targetId, onlineSince, row.targetId]);
    if (r?.inserted !== true) return 'quota_reached';
    return { keyState: keys.keyStateFromRow(r), runners: num(r.runners) };
  }

  async getTask(orgId: string, taskId: string): Promise<TaskRow | undefined> {
    const r = await this.db.one(`${TASK_SELECT} WHERE t.id = ? AND t.org_id = ?`, [taskId, orgId]);
    return r ? toTask(r) : undefined;
  }

  async getTaskForAgent(taskId: string, agentId: string): Promise<TaskRow | undefined> {
    const r = await this.db.one(`${TASK_SELECT} WHERE t.id = ? AND t.agent_id = ?`, [taskId, agentId]);
    return r ? toTask(r) : undefined;
  }

  async listTasks(orgId: string, filter: TaskFilter): Promise<TaskRow[]> {
    const where = ['t.org_id = ?'];
    const params: unknown[] = [orgId];
    if (filter.targetId) {
      where.push('t.target_id = ?');
      params.push(filter.targetId);
    }
    if (filter.status) {
      where.push('t.status = ?');
      params.push(filter.status);
    }
    if (filter.targetIds) {
      where.push('t.target_id = ANY(?::text[])');
      params.push([...filter.targetIds]);
    }
    if (filter.createdByPrincipal) {
      where.push('t.created_by_principal = ?');
      params.push(filter.createdByPrincipal);
    }
    if (filter.before) {
      // The next page: older than the last task shown, in the list's order (created_at, then id).
      where.push('(t.created_at < ? OR (t.created_at = ? AND t.id < ?))');
      params.push(filter.before.createdAt, filter.before.createdAt, filter.before.id);
    }
    params.push(filter.limit);
    return (await this.db.all(`${TASK_SELECT} WHERE ${where.join(' AND ')} ORDER BY t.created_at DESC, t.id DESC LIMIT ?`, params)).map(toTask);
  }

  async claimNextTask(agent: AgentRow, now: number, leaseMs: number): Promise<ClaimedTask | undefined> {
    // One round trip: the compare-and-set, the claimed task as callers see it (target and
    // agent names joined in) with its secrets, and, when nothing was claimed, whether eligible
    // queued tasks exist that another claimer had locked (SKIP LOCKED passed them over): then
    // look again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await this.db.one(CLAIM, this.claimParams(agent, now, leaseMs));
      if (r?.id !== null && r?.id !== undefined) return claimedFrom(r);
      if (r?.more !== true) return undefined;
    }
    return undefined;
  }

  async releaseClaim(taskId: string, agentId: string): Promise<boolean> {
    return (
      (await this.db.run(
        "UPDATE tasks SET status = 'queued', agent_id = NULL, claimed_at = NULL, lease_expires_at = NULL WHERE id = ? AND agent_id = ? AND status = 'running' AND started_at IS NULL",
        [taskId, agentId],
      )) === 1
    );
  }

  async markStarted(taskId: string, agentId: string, now: number): Promise<boolean> {
    return (
      (await this.db.run("UPDATE tasks SET started_at = COALESCE(started_at, ?) WHERE id = ? AND agent_id = ? AND status = 'running'", [
        now,
        taskId,
        agentId,
      ])) === 1
    );
  }

  async renewLeases(agentId: string, taskIds: readonly string[], leaseUntil: number): Promise<{ held: string[]; cancel: string[] }> {
    if (taskIds.length === 0) return { held: [], cancel: [] };
    const rows = await this.db.all(RENEW, renewalParams(agentId, taskIds, leaseUntil));
    return renewalAnswer(
      taskIds,
      rows.map((r) => ({ id: r.id, cancel: r.cancel_requested_at !== null })),
    );
  }

  async claimNextTaskRenewing(agent: AgentRow, now: number, leaseMs: number, taskIds: readonly string[], leaseUntil: number): Promise<ClaimAndRenewal> {
    if (taskIds.length === 0) return { task: await this.claimNextTask(agent, now, leaseMs), held: [], cancel: [] };
    // One statement for the poll's two writes (each was one, sent at once): the renewal is made
    // by this first try only; a claim that found every eligible task locked tries again alone.
    const r = await this.db.one(CLAIM_RENEWING, [...renewalParams(agent.id, taskIds, leaseUntil), ...this.claimParams(agent, now, leaseMs)]);
    const renewal = renewalAnswer(taskIds, (r?.renewals ?? []) as { id: unknown; cancel: boolean }[]);
    if (r?.id !== null && r?.id !== undefined) return { task: claimedFrom(r), ...renewal };
    return { task: r?.more === true ? await this.claimNextTask(agent, now, leaseMs) : undefined, ...renewal };
  }

  private claimParams(agent: AgentRow, now: number, leaseMs: number): unknown[] {
    return [agent.id, now, now + leaseMs, agent.id, agent.id];
  }

  async requestStop(orgId: string, taskId: string, now: number): Promise<boolean> {
    return (
      (await this.db.run("UPDATE tasks SET cancel_requested_at = ? WHERE id = ? AND org_id = ? AND status = 'running' AND cancel_requested_at IS NULL", [
        now,
        taskId,
        orgId,
      ])) === 1
    );
  }

  async listLapsedLeases(now: number): Promise<TaskRow[]> {
    return (await this.db.all(`${TASK_SELECT} WHERE t.status = 'running' AND t.lease_expires_at < ?`, [now])).map(toTask);
  }

  async requeueLapsed(taskId: string, agentId: string, now: number): Promise<boolean> {
    return (
      (await this.db.run(
        `UPDATE tasks SET status = 'queued', agent_id = NULL, claimed_at = NULL, lease_expires_at = NULL
        WHERE id = ? AND agent_id = ? AND status = 'running' AND started_at IS NULL AND lease_expires_at < ? AND cancel_requested_at IS NULL`,
        [taskId, agentId, now],
      )) === 1
    );
  }

  async cancelLapsed(taskId: string, agentId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, (sql, held) =>
      sql.run(
        `UPDATE tasks SET status = 'cancelled', finished_at = ?, lease_expires_at = NULL, reason = ?, output_digest = NULL
        WHERE id = ? AND agent_id = ? AND status = 'running' AND started_at IS NULL AND lease_expires_at < ? AND cancel_requested_at IS NOT NULL${held}`,
        [now, reason, taskId, agentId, now],
      ),
    );
  }

  async extendRunningLeases(until: number): Promise<number> {
    return this.db.run("UPDATE tasks SET lease_expires_at = ? WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < ?)", [until, until]);
  }

  async finishTask(taskId: string, agentId: string, input: FinishInput, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, (sql, held) =>
      sql.run(
        `UPDATE tasks SET status = ?, exit_code = ?, signal = ?, reason = ?, finished_at = ?, lease_expires_at = NULL, output_digest = NULL,
          started_at = COALESCE(started_at, ?)
        WHERE id = ? AND agent_id = ? AND status = 'running' AND output_bytes = COALESCE(?::bigint, output_bytes)${held}`,
        [input.status, input.exitCode, input.signal, input.reason, input.now, input.now, taskId, agentId, input.outputBytes ?? null],
      ),
    );
  }

  async finishTaskWithoutOutput(taskId: string, agentId: string, input: FinishInput): Promise<string | undefined> {
    const r = await this.db.one(
      `UPDATE tasks SET status = ?, exit_code = ?, signal = ?, reason = ?, finished_at = ?, lease_expires_at = NULL, output_digest = NULL,
        started_at = COALESCE(started_at, ?)
      WHERE id = ? AND agent_id = ? AND status = 'running' AND output_bytes = 0${NOTHING_HELD}
      RETURNING org_id`,
      [input.status, input.exitCode, input.signal, input.reason, input.now, input.now, taskId, agentId],
    );
    return r ? String(r.org_id) : undefined;
  }

  async markLost(taskId: string, agentId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, (sql, held) =>
      sql.run(
        `UPDATE tasks SET status = 'lost', finished_at = ?, lease_expires_at = NULL, reason = ?, output_digest = NULL
        WHERE id = ? AND agent_id = ? AND status = 'running' AND started_at IS NOT NULL AND lease_expires_at < ?${held}`,
        [now, reason, taskId, agentId, now],
      ),
    );
  }

  async approveTask(decision: ReviewDecisionRow, needed: number): Promise<ApproveResult> {
    return this.db.tx(async (sql): Promise<ApproveResult> => {
      // The task row is locked first, so approvals racing each other count one at a time.
      if (!(await sql.one("SELECT 1 FROM tasks WHERE id = ? AND status = 'pending_review' FOR UPDATE", [decision.taskId]))) return 'not_pending';
      if (!(await insertDecision(sql, decision))) return 'duplicate';
      const count = num((await sql.one("SELECT COUNT(*) AS n FROM task_reviews WHERE task_id = ? AND decision = 'approve'", [decision.taskId]))?.n);
      if (count < needed) return 'recorded';
      const queued = await sql.run("UPDATE tasks SET status = 'queued', review_expires_at = NULL WHERE id = ? AND status = 'pending_review'", [
        decision.taskId,
      ]);
      return queued === 1 ? 'approved' : 'not_pending';
    });
  }

  async rejectTask(decision: ReviewDecisionRow, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    // Not the one-statement way (endTask): the decision is written with the ending.
    return this.endTask(decision.taskId, flush, async (sql, held) => {
      if (held !== '') return 0;
      const n = await sql.run(
        `UPDATE tasks SET status = 'rejected', finished_at = ?, reason = ?, review_expires_at = NULL, output_digest = NULL WHERE id = ? AND status = 'pending_review'`,
        [decision.at, reason, decision.taskId],
      );
      if (n === 1) await insertDecision(sql, decision);
      return n;
    });
  }

  async expireReview(taskId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, (sql, held) =>
      sql.run(
        `UPDATE tasks SET status = 'rejected', finished_at = ?, reason = ?, review_expires_at = NULL, output_digest = NULL
        WHERE id = ? AND status = 'pending_review' AND review_expires_at <= ?${held}`,
        [now, reason, taskId, now],
      ),
    );
  }

  async listExpiredReviews(now: number): Promise<TaskRow[]> {
    return (
      await this.db.all(`${TASK_SELECT} WHERE t.status = 'pending_review' AND t.review_expires_at <= ? ORDER BY t.review_expires_at LIMIT 1000`, [now])
    ).map(toTask);
  }

  async listReviewDecisions(taskId: string): Promise<ReviewDecisionRow[]> {
    return (await this.db.all('SELECT * FROM task_reviews WHERE task_id = ? ORDER BY at, principal_id', [taskId])).map((r) => ({
      taskId: String(r.task_id),
      principalId: String(r.principal_id),
      actor: String(r.actor),
      decision: r.decision === 'reject' ? 'reject' : 'approve',
      comment: strOrNull(r.comment),
      binding: String(r.binding),
      at: num(r.at),
    }));
  }

  async isGroupMember(groupId: string, principalId: string): Promise<boolean> {
    return (await this.db.one('SELECT 1 FROM group_members WHERE group_id = ? AND principal_id = ?', [groupId, principalId])) !== undefined;
  }

  async cancelUnclaimed(orgId: string, taskId: string, now: number, reason: string, flush: HeldOutputFlush): Promise<boolean> {
    return this.endTask(taskId, flush, (sql, held) =>
      sql.run(
        `UPDATE tasks SET status = 'cancelled', finished_at = ?, cancel_requested_at = ?, reason = ?, output_digest = NULL
        WHERE id = ? AND org_id = ? AND status IN ('queued','pending_review','approved')${held}`,
        [now, now, reason, taskId, orgId],
      ),
    );
  }

  /**
   * An ending's conditional write and, only if it won, the held-back output: one transaction.
   * Every ending's write also clears `output_digest`: the digest state holds the last few raw
   * (unredacted) bytes of the output, and once the task has ended nothing checks it any more,
   * so it goes, as the redactor's held-back text does (in the write itself: one round trip less).
   *
   * Most endings have nothing held back (no output, or redaction `none`): the write is first
   * tried alone, as one statement (one round trip and its commit, instead of BEGIN, the write,
   * the read of the held state and COMMIT), on the condition that nothing is held
   * (`held`, appended to its WHERE). If that wins, the ending is done; if not (something is held, or
   * the compare-and-set lost), the transaction runs as before and decides. `write` must return
   * 0 without writing when it cannot take the condition.
   */
  private async endTask(taskId: string, flush: HeldOutputFlush, write: (sql: Sql, held: string) => Promise<number>): Promise<boolean> {
    if ((await write(this.db, NOTHING_HELD)) === 1) return true;
    return this.db.tx(async (sql) => {
      if ((await write(sql, '')) !== 1) return false;
      await flushHeldOutput(sql, taskId, flush);
      return true;
    });
  }

  async appendOutput(
    taskId: string,
    agentId: string,
    offset: number,
    frames: readonly OutputFrame[],
    transform: OutputTransform,
    digestState: string | null = null,
  ): Promise<AppendResult | 'not_held'> {
    // Not in a transaction of ours: the append is one conditional statement (postgres/output.ts).
    return appendOutput(this.db, taskId, agentId, offset, frames, transform, digestState);
  }

  async readOutput(taskId: string, offset: number, maxBytes: number, maxFrames = Infinity): Promise<OutputFrame[]> {
    return readOutput(this.db, taskId, offset, maxBytes, maxFrames);
  }

  async expireOutput(before: number, now: number, maxTasks: number): Promise<ExpiredOutput[]> {
    return this.db.tx((sql) => expireOutput(sql, before, now, maxTasks));
  }

  async orgOutputBytes(orgId: string): Promise<number> {
    const r = await this.db.one('SELECT output_bytes FROM orgs WHERE id = ?', [orgId]);
    return r ? num(r.output_bytes) : 0;
  }

  async setTargetKey(targetId: string, publicKeyPem: string, keyId: string): Promise<boolean> {
    return (
      (await this.db.run('UPDATE targets SET public_key = ?, key_id = ? WHERE id = ? AND public_key IS NULL AND deleted_at IS NULL', [
        publicKeyPem,
        keyId,
        targetId,
      ])) === 1
    );
  }

  async putSecret(row: SecretRow): Promise<'ok' | 'too_many' | 'key_changed' | NameConflict> {
    return this.db.tx(async (sql): Promise<'ok' | 'too_many' | 'key_changed' | NameConflict> => {
      // Compare-and-set on the key, with the target row locked so a rotation cannot pass in between.
      const target = await sql.one('SELECT settings FROM targets WHERE id = ? AND key_id = ? FOR UPDATE', [row.targetId, row.kid]);
      if (!target) return 'key_changed';
      if (Object.hasOwn(JSON.parse(String(target.settings)) as object, row.name)) return { conflict: [row.name] };
      const existing = await sql.one('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM secrets WHERE target_id = ? AND name <> ?', [
        row.targetId,
        row.name,
      ]);
      if (num(existing?.n) + 1 > MAX_SECRETS_PER_TARGET || num(existing?.b) + row.bytes > MAX_SECRET_BYTES_PER_TARGET) return 'too_many';
      await sql.run(
        `INSERT INTO secrets (target_id, name, org_id, kid, sealed, bytes, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (target_id, name) DO UPDATE SET kid = excluded.kid, sealed = excluded.sealed, bytes = excluded.bytes, set_by = excluded.set_by, set_at = excluded.set_at`,
        [row.targetId, row.name, row.orgId, row.kid, JSON.stringify(row.sealed), row.bytes, row.setBy, row.setAt],
      );
      return 'ok';
    });
  }

  async listSecrets(targetId: string): Promise<SecretRow[]> {
    return (await this.db.all('SELECT * FROM secrets WHERE target_id = ? ORDER BY name', [targetId])).map(toSecret);
  }

  async deleteSecret(targetId: string, name: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM secrets WHERE target_id = ? AND name = ?', [targetId, name])) === 1;
  }

  async targetsNeedingKeys(agent: AgentRow): Promise<TargetRow[]> {
    return (
      await this.db.all(
        `SELECT g.* FROM targets g JOIN agents a ON a.id = ? WHERE g.deleted_at IS NULL AND g.public_key IS NULL AND ${agentMayServeSql('a', 'g')}`,
        [agent.id],
      )
    ).map(toTarget);
  }

  async getTargetById(targetId: string): Promise<TargetRow | undefined> {
    const r = await this.db.one('SELECT * FROM targets WHERE id = ? AND deleted_at IS NULL', [targetId]);
    return r ? toTarget(r) : undefined;
  }

  async setAgentIdentityKey(agentId: string, publicKeyPem: string, keyId: string, now: number): Promise<void> {
    await this.db.tx((sql) => keys.setAgentIdentityKey(sql, agentId, publicKeyPem, keyId, now));
  }

  async replaceHeldKeys(agent: AgentRow, held: readonly { targetId: string; keyId: string }[], now: number): Promise<void> {
    await this.db.tx((sql) => keys.replaceHeldKeys(sql, agent, held, now));
  }

  async addKeyHolder(targetId: string, agentId: string, keyId: string, now: number): Promise<boolean> {
    return keys.addKeyHolder(this.db, targetId, agentId, keyId, now);
  }

  async targetKeyState(targetId: string): Promise<TargetKeyState> {
    return keys.targetKeyState(this.db, targetId);
  }

  async keyHoldings(orgId: string): Promise<Map<string, string[]>> {
    return keys.keyHoldings(this.db, orgId);
  }

  async keyHandoversFor(agent: AgentRow, limit: number): Promise<KeyHandoverWork[]> {
    return keys.keyHandoversFor(this.db, agent, limit);
  }

  async keyDeliveriesFor(agent: AgentRow, limit: number): Promise<KeyDelivery[]> {
    return keys.keyDeliveriesFor(this.db, agent, limit);
  }

  async keyRotationsFor(agent: AgentRow): Promise<KeyRotationWork[]> {
    return keys.keyRotationsFor(this.db, agent);
  }

  async putKeyHandover(targetId: string, agentId: string, keyId: string, fromAgentId: string, wrapped: SealedSecret, now: number): Promise<boolean> {
    return keys.putKeyHandover(this.db, targetId, agentId, keyId, fromAgentId, wrapped, now);
  }

  async requestKeyRotation(targetId: string, now: number): Promise<boolean> {
    return (
      (await this.db.run(
        'UPDATE targets SET key_rotation_requested_at = COALESCE(key_rotation_requested_at, ?) WHERE id = ? AND key_id IS NOT NULL AND deleted_at IS NULL',
        [now, targetId],
      )) === 1
    );
  }

  async rotateTargetKey(rotation: KeyRotation): Promise<'ok' | 'key_changed' | 'secrets_changed'> {
    return this.db.tx((sql) => keys.rotateTargetKey(sql, rotation));
  }

  async resetTargetKey(targetId: string, keyId: string): Promise<string[] | undefined> {
    return this.db.tx((sql) => keys.resetTargetKey(sql, targetId, keyId));
  }

  async targetsOnlyHeldBy(agentId: string): Promise<TargetRow[]> {
    return (await keys.targetsOnlyHeldBy(this.db, agentId)).map(toTarget);
  }

  async appendAudit(entry: AuditInput): Promise<AuditRow> {
    // One writer at a time, on every replica, in one round trip: the lock, then the insert,
    // whose statement starts (and takes its snapshot) once the lock is held, so the head it
    // reads is the true head. The hash is computed by the database over the same bytes as
    // auditHash (JSON of [prevHash, …entry]): the entry's part is made here, the head's in SQL.
    // So the lock is held for the insert and the commit only, not for two more round trips and
    // the server's turns between them; every task state change is audited, so under load the
    // chain's lock is what tasks queue on.
    const tail = JSON.stringify([entry.orgId, entry.at, entry.actor, entry.action, entry.subject, entry.details]).slice(1);
    const rows = await this.db.batch(
      AUDIT_APPEND,
      [entry.orgId, entry.at, entry.actor, entry.action, entry.subject, JSON.stringify(entry.details), tail],
      (execute) => `SELECT pg_advisory_xact_lock(${LOCK_AUDIT}); ${execute}`,
    );
    const r = rows[0];
    const row = { ...entry, seq: num(r?.seq), prevHash: String(r?.prev_hash), hash: String(r?.hash) };
    // The database's hash must be auditHash's: a difference would break the chain for every verifier.
    if (row.hash !== auditHash(row.prevHash, entry)) throw new Error(`audit entry ${row.seq}: the database's hash differs from auditHash`);
    return row;
  }

  async allAudit(): Promise<AuditRow[]> {
    return (await this.db.all('SELECT * FROM audit_log ORDER BY seq')).map(toAudit);
  }

  async listAudit(orgId: string, limit: number, instance = false, filter: AuditFilter = {}): Promise<AuditRow[]> {
    const where = [instance ? '(org_id = ? OR org_id IS NULL)' : 'org_id = ?'];
    const args: unknown[] = [orgId];
    const add = (sql: string, ...values: unknown[]): void => {
      where.push(sql);
      args.push(...values);
    };
    // As SQLite's (sqlite/index.ts): plain string comparisons, no LIKE, so % and _ mean themselves.
    if (filter.actorContains !== undefined) add('strpos(lower(actor), lower(?)) > 0', filter.actorContains);
    if (filter.actionPrefix !== undefined) add('left(action, length(?)) = ?', filter.actionPrefix, filter.actionPrefix);
    if (filter.target !== undefined) {
      // The target's own entries, its secrets' (`name/SECRET`), those naming it in details
      // (`target`, or join tokens' `targets`, a list or, as SQLite's json_each takes it, one
      // value), and its tasks'. details is JSON text.
      add(
        `((left(action, 7) = 'target.' AND subject = ?) OR (left(action, 7) = 'secret.' AND left(subject, length(?) + 1) = ? || '/')
          OR details::jsonb ->> 'target' = ? OR details::jsonb ->> 'targets' = ?
          OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(details::jsonb -> 'targets') = 'array' THEN details::jsonb -> 'targets' ELSE '[]'::jsonb END) v WHERE v = ?)
          OR subject IN (SELECT t.id FROM tasks t JOIN targets g ON g.id = t.target_id WHERE g.org_id = ? AND g.name = ?))`,
        filter.target,
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
    return (await this.db.all(`SELECT * FROM audit_log WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`, [...args, limit])).map(toAudit);
  }
}

/** The columns a new task is written with, and its values in that order. */
const TASK_COLUMNS = `id, org_id, target_id, script, status, created_by, created_at, timeout_seconds, stdin, args, env,
  created_by_principal, review, review_expires_at, runbook`;

function taskValues(row: TaskRow): unknown[] {
  return [
    row.id,
    row.orgId,
    row.targetId,
    row.script,
    row.status,
    row.createdBy,
    row.createdAt,
    row.timeoutSeconds,
    bytes(row.stdin),
    JSON.stringify(row.args),
    JSON.stringify(row.env),
    row.createdByPrincipal,
    row.review ? JSON.stringify(row.review) : null,
    row.review ? row.review.expiresAt : null,
    row.runbook ? JSON.stringify(row.runbook) : null,
  ];
}

/**
 * insertTask: the task (taskValues, typed: a SELECT list has no column types to infer them
 * from), written only while the organization's stored output is under the quota (0: none); then
 * whether it was written, its target's key state (keys.ts KEY_STATE_COLUMNS) and its online
 * runners (as countOnlineRunners counts them).
 */
const INSERT_TASK = `WITH ins AS (
    INSERT INTO tasks (${TASK_COLUMNS})
    SELECT ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::bigint, ?::double precision, ?::bytea, ?::text, ?::text,
      ?::text, ?::text, ?::bigint, ?::text
    WHERE ?::bigint <= 0 OR COALESCE((SELECT o.output_bytes FROM orgs o WHERE o.id = ?), 0) < ?::bigint
    RETURNING id)
  SELECT EXISTS (SELECT 1 FROM ins) AS inserted, ${keys.KEY_STATE_COLUMNS},
    (SELECT COUNT(*) FROM agents a WHERE a.last_seen_at >= ? AND g.deleted_at IS NULL AND ${agentMayRunSql('a', 'g')}) AS runners
  FROM targets g WHERE g.id = ?`;

/** The tasks `agent` (parameter) may run that are queued, oldest first. */
const QUEUED_FOR_AGENT = `FROM tasks t JOIN targets g ON g.id = t.target_id JOIN agents a ON a.id = ?
  WHERE t.status = 'queued' AND ${agentMayRunSql('a', 'g')}`;

/**
 * The claim: SKIP LOCKED passes over a row another replica is claiming right now instead of
 * waiting for it, and the outer condition re-checks `queued` on the row as it is when locked
 * (the compare-and-set). One row always comes back: the claimed task (TASK_SELECT's columns) or
 * nulls, its target's secrets (JSON, as the secrets rows), and `more`, whether eligible queued
 * tasks existed when the statement began (read from its snapshot, so it also counts rows that
 * were skipped as locked).
 */
const CLAIM_CTES = `claimed AS (
    UPDATE tasks SET status = 'running', agent_id = ?, claimed_at = ?, lease_expires_at = ?
    WHERE id = (SELECT t.id ${QUEUED_FOR_AGENT} ORDER BY t.created_at, t.id LIMIT 1 FOR UPDATE OF t SKIP LOCKED)
      AND status = 'queued'
    RETURNING *),
  task AS (${taskSelectFrom('claimed')})`;
const CLAIM_COLUMNS = `task.*, EXISTS (SELECT 1 ${QUEUED_FOR_AGENT}) AS more,
    (SELECT COALESCE(json_agg(s ORDER BY s.name), '[]') FROM secrets s WHERE s.target_id = task.target_id) AS claim_secrets`;
const CLAIM = `WITH ${CLAIM_CTES} SELECT ${CLAIM_COLUMNS} FROM (SELECT 1) AS one LEFT JOIN task ON true`;

/**
 * A lease renewal (renewLeases): the agent's running tasks `held`, those whose lease is renewed
 * (`renewed`, written only where the lease would move by more than the slack), and `renewals`,
 * every held task with its cancel request. Parameters: see renewalParams.
 */
const FRESH_LEASE = 'lease_expires_at BETWEEN ? AND ?';
const RENEW_CTES = `held AS (SELECT id, cancel_requested_at, lease_expires_at FROM tasks WHERE id = ANY(?::text[]) AND agent_id = ? AND status = 'running'),
  renewed AS (UPDATE tasks SET lease_expires_at = ?
    WHERE id IN (SELECT id FROM held WHERE NOT COALESCE(${FRESH_LEASE}, false)) AND agent_id = ? AND status = 'running'
    RETURNING id, cancel_requested_at),
  renewals AS (SELECT id, cancel_requested_at FROM renewed UNION ALL SELECT id, cancel_requested_at FROM held WHERE ${FRESH_LEASE})`;
const RENEW = `WITH ${RENEW_CTES} SELECT id, cancel_requested_at FROM renewals`;

/**
 * The claim and the renewal of a poll that has room for a task and tasks running, in one
 * statement (they touch different rows: queued tasks, and this agent's running ones): the
 * claim's row, with the renewals as JSON.
 */
const CLAIM_RENEWING = `WITH ${RENEW_CTES}, ${CLAIM_CTES}
  SELECT ${CLAIM_COLUMNS},
    (SELECT COALESCE(json_agg(json_build_object('id', r.id, 'cancel', r.cancel_requested_at IS NOT NULL)), '[]') FROM renewals r) AS renewals
  FROM (SELECT 1) AS one LEFT JOIN task ON true`;

/**
 * RENEW_CTES's parameters. An agent renews on every poll and heartbeat, often many times a
 * second under load: a lease that already ends between `leaseUntil` less a slack (a tenth of
 * the lease, at most RENEW_SLACK_MS) and `leaseUntil` is left as it is, so most renewals write
 * nothing and commit nothing (no fsync on the poll's answer). Rows renewed answer as the UPDATE
 * left them; the others (far from lapsing, so no sweep races them) as the statement read them.
 */
function renewalParams(agentId: string, taskIds: readonly string[], leaseUntil: number): unknown[] {
  const slack = Math.min(RENEW_SLACK_MS, Math.max(0, Math.floor((leaseUntil - Date.now()) / 10)));
  return [[...taskIds], agentId, leaseUntil, leaseUntil - slack, leaseUntil, agentId, leaseUntil - slack, leaseUntil];
}

/** What renewLeases answers, from the renewals' rows. */
function renewalAnswer(taskIds: readonly string[], rows: readonly { id: unknown; cancel: boolean }[]): { held: string[]; cancel: string[] } {
  const byId = new Map(rows.map((r) => [String(r.id), r.cancel]));
  const held = taskIds.filter((id) => byId.has(id));
  return { held, cancel: held.filter((id) => byId.get(id) === true) };
}

function claimedFrom(r: Row): ClaimedTask {
  return { ...toTask(r), secrets: (r.claim_secrets as Row[]).map(toSecret) };
}

/** TASK_SELECT over `source` (a CTE of task rows) instead of the tasks table. */
function taskSelectFrom(source: string): string {
  const from = 'FROM tasks t ';
  if (!TASK_SELECT.includes(from)) throw new Error('TASK_SELECT changed: taskSelectFrom needs updating');
  return TASK_SELECT.replace(from, `FROM ${source} t `);
}

/**
 * An agent with the targets it serves, in one round trip: every agent request looks its agent
 * up (by token, then its standing), so a second query per lookup sat on the dispatch path.
 */
const AGENT_SELECT = 'SELECT a.*, ARRAY(SELECT x.target_id FROM agent_targets x WHERE x.agent_id = a.id) AS target_ids FROM agents a';

function agentFromRow(r: Row): AgentRow {
  return toAgent(r, (r.target_ids as string[]).map(String));
}

async function agentById(sql: Sql, id: string): Promise<AgentRow | undefined> {
  const r = await sql.one(`${AGENT_SELECT} WHERE a.id = ?`, [id]);
  return r ? agentFromRow(r) : undefined;
}

async function insertDecision(sql: Sql, d: ReviewDecisionRow): Promise<boolean> {
  const n = await sql.run(
    `INSERT INTO task_reviews (task_id, principal_id, actor, decision, comment, binding, at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    [d.taskId, d.principalId, d.actor, d.decision, d.comment, d.binding, d.at],
  );
  return n === 1;
}

/** Applies the migrations this database lacks, one replica at a time, all in one transaction. */
async function migrate(db: Db): Promise<void> {
  await db.tx(async (sql) => {
    await sql.one('SELECT pg_advisory_xact_lock(?)', [LOCK_MIGRATE]);
    await sql.run('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const applied = new Set((await sql.all('SELECT version FROM schema_migrations')).map((r) => num(r.version)));
    for (const m of pgMigrations) {
      if (applied.has(m.version)) continue;
      await sql.run(m.sql);
      await sql.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, Date.now()]);
    }
  });
}
