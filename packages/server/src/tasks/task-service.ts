/**
 * The task lifecycle. This service decides every step a task takes and what follows each one;
 * the store only makes the conditional writes it is asked for (each one compare-and-set on
 * status, holder and lease, so at most one agent runs a task), and routes only translate HTTP.
 *
 *                           create (user)
 *                                |
 *                                v
 *                                |  target has a review rule
 *                                |-----------------------> [pending_review] -- reject (user), expiry (sweeper) --> rejected
 *                                v                               |        \
 *    +------- requeue ------> [queued] <--- last approval (user) -+         +-- cancel (user) --> cancelled
 *    |                         |  \
 *    |                         |   +------ cancel (user) ------> cancelled
 *    |                         | claim (agent's poll)
 *    |                         v
 *    +------------- [running, not started]
 *                      |              |
 *                      |              +-- finish (agent), e.g. error: could not start --+
 *                      | confirm start (agent)                                          |
 *                      v                                                                v
 *              [running, started] ----- finish (agent) -----> succeeded | failed | cancelled
 *                      |                                      | timed_out | error
 *                      +----- lease lapsed (sweeper) -----> lost
 *
 * Transitions, who triggers them, and the method that makes them:
 * - create          user                              `create`
 * - claim           the agent's poll                  `claim`; a claim whose answer cannot be
 *                                                      delivered (the agent hung up) is released
 * - confirm start   agent, before it runs anything     `confirmStart`
 * - finish          agent, with its final status       `finish`
 * - cancel          user                               `cancel`: a task nobody runs yet ends
 *                   `cancelled` at once; a running one is asked to stop (its agent hears at its
 *                   next heartbeat or poll, stops the process and finishes it as `cancelled`)
 * - lease lapsed    the sweeper                        `sweepLeases`: a claimed task that never
 *                   started is queued again (requeue: nothing ran), or ends `cancelled` if a
 *                   cancel was asked meanwhile; a started one becomes `lost`, because runs are
 *                   not repeated behind the user's back
 * - review          a task of a target with a review rule is created `pending_review`; no agent
 *                   can claim it (claims take `queued` only). `approve` records one principal's
 *                   approval; the one that completes the count moves it to `queued` in the same
 *                   write. `reject` (a reviewer, with a comment) and the sweeper's `sweepReviews`
 *                   (the review expired) end it `rejected`, saying who and why. Who may review is
 *                   authz.ts `authorizeReview`; what an approval binds is reviews.ts `bindingOf`.
 *                   (`approved` exists in the schema for older clients; an approved task is queued.)
 * Lease renewals (`renewLeases`) and output uploads (`appendOutput`) change no state; both
 * need the agent to hold the running task.
 *
 * Every ending goes through `end`: the conditional write, which stores the redactor's held-back
 * bytes in the same transaction; then the task's raw digest is forgotten, output readers are
 * woken and the audit entry is written.
 */
import {
  FerryError,
  formatDuration,
  formatSize,
  isTerminal,
  type CreateTaskRequest,
  type FinishTaskRequest,
  type OutputFrame,
  type WebhookEvent,
} from '@ferry/protocol';
import type { Logger } from 'pino';
import type { UserPrincipal } from '../auth.js';
import type { ServerConfig } from '../config.js';
import type { DispatchHub } from '../dispatch.js';
import { newId } from '../ids.js';
import { keyNeedFrom, keyNeedOf } from '../keys.js';
import { checkLimits, resolveLimits } from '../limits.js';
import { onlineSince } from '../presence.js';
import { findHeldTask, findTarget, findTask, leaseLost } from '../lookup.js';
import { heldOutputFlush } from '../redaction/task-state.js';
import type { AgentRow, AuditInput, HeldOutputFlush, ReviewDecisionRow, Store, TargetRow, TaskReviewRow, TaskRow, TaskRunbookRow } from '../store/types.js';
import { authorizeReview, taskFor } from '../authz.js';
import { bindingOf, expiryReason, newTaskReview, rejectionReason } from './reviews.js';
import { RawOutputDigests } from './raw-digests.js';
import { TaskOutput, type ReadOutputQuery } from './task-output.js';
import { taskInputFor } from './task-input.js';

export interface TaskServiceDeps {
  store: Store;
  hub: DispatchHub;
  config: ServerConfig;
  log: Logger;
  audit(entry: Omit<AuditInput, 'at'>): Promise<void>;
  /** Told of what the metrics count (http/metrics.ts); optional for tests that need none. */
  events?: TaskEvents;
  /** Told of the steps webhooks announce (webhooks/service.ts queues them); must not throw or wait. */
  notify?: (event: WebhookEvent, task: Pick<TaskRow, 'id' | 'orgId'>) => void;
}

/** What the service reports as it happens, for the metrics. */
export interface TaskEvents {
  claimed(createdAt: number, now: number): void;
  leaseLapsed(outcome: 'requeued' | 'lost' | 'cancelled'): void;
  outputUploaded(bytes: number): void;
}

/** How a task ends: the conditional write that ends it, and the audit entry that records it. */
interface Ending {
  write(flush: HeldOutputFlush): Promise<boolean>;
  actor: string;
  action: string;
  details: Record<string, unknown>;
  /** The webhook event of this ending (default task.finished). */
  event?: WebhookEvent;
}

const LOST_REASON = 'the agent stopped reporting while the task ran';
const CANCELLED_REASON = 'cancelled before it started';
/** A task changes state a handful of times in its life; more tries than that means something is wrong. */
const CANCEL_ATTEMPTS = 5;

function notPending(taskId: string, status: string): FerryError {
  return new FerryError('FERRY_E_NOT_PENDING_REVIEW', `Task ${taskId} is not waiting for review (it is ${status}).`, { details: { status } });
}

export class TaskService {
  private readonly digests = new RawOutputDigests();
  private readonly output: TaskOutput;
  private readonly log: Logger;

  constructor(private readonly deps: TaskServiceDeps) {
    this.output = new TaskOutput(deps, this.digests);
    this.log = deps.log.child({ part: 'tasks' });
  }

  /**
   * `runbook`: the runbook the script comes from, recorded in the task (runbooks/service.ts).
   * `looked`: the target as the caller's route just read it (by the request's name, in the
   * user's organization) to authorize the request; used instead of reading it once more (a
   * statement per task on PostgreSQL). A row for another name or organization is ignored.
   */
  async create(
    user: UserPrincipal,
    request: CreateTaskRequest,
    runbook: TaskRunbookRow | null = null,
    looked?: TargetRow,
  ): Promise<{ task: TaskRow; target: TargetRow; runners: number }> {
    if (request.script.trim() === '') throw new FerryError('FERRY_E_EMPTY_SCRIPT');
    const known = looked && looked.name === request.target && looked.orgId === user.orgId ? looked : undefined;
    const target = known ?? (await findTarget(this.deps.store, user.orgId, request.target));
    checkLimits(this.deps.config, { timeoutSeconds: request.timeoutSeconds });
    const task = this.withReview(target, { ...this.newTaskRow(user, target, request), ...(await taskInputFor(this.deps.store, target, request)), runbook });
    // The organization's output quota is checked by the write itself, and who may run the task
    // (the key need) comes back with it (on PostgreSQL one statement, where there were three),
    // so the wake-up follows the insert at once; the audit entry comes after it, off the dispatch path.
    const quota = this.deps.config.orgOutputQuota;
    const written = await this.deps.store.insertTask(task, quota, onlineSince(this.deps.config));
    if (written === 'quota_reached') throw this.quotaReached(await this.deps.store.orgOutputBytes(user.orgId), quota);
    if (task.status === 'queued') this.deps.hub.notifyTask(target, keyNeedFrom(written.keyState));
    else this.deps.notify?.('task.pending_review', task);
    await this.deps.audit({
      orgId: user.orgId,
      actor: user.actor,
      action: 'task.create',
      subject: task.id,
      details: {
        target: target.name,
        scriptBytes: Buffer.byteLength(request.script),
        stdinBytes: task.stdin?.length ?? 0,
        args: task.args.length,
        env: Object.keys(task.env),
        ...(runbook ? { runbook: { source: runbook.source, name: runbook.name, commit: runbook.commit, params: Object.keys(runbook.params) } } : {}),
        ...(task.review
          ? { review: { rule: task.review.rule, group: task.review.groupName, approvals: task.review.approvals, binding: task.review.binding } }
          : {}),
      },
    });
    return { task, target, runners: written.runners };
  }

  /** A task of a target with a review rule waits for it, bound to what it was created with. */
  private withReview(target: TargetRow, task: TaskRow): TaskRow {
    if (!target.review) return task;
    return { ...task, status: 'pending_review', review: newTaskReview(target.review, task, task.createdAt) };
  }

  /**
   * One principal's approval. The one that completes the count queues the task in the same
   * write, and wakes an agent that may run it. Returns the task as it is now.
   */
  async approve(user: UserPrincipal, taskId: string, comment: string | null): Promise<TaskRow> {
    const { task, review } = await this.pendingReview(user, taskId, 'approve');
    const decision = this.decision(user, task, review, 'approve', comment);
    const result = await this.deps.store.approveTask(decision, review.approvals);
    if (result === 'duplicate') throw new FerryError('FERRY_E_ALREADY_REVIEWED', `You already approved task ${task.id}; another reviewer must add theirs.`);
    if (result === 'not_pending') throw notPending(task.id, (await this.deps.store.getTask(task.orgId, task.id))?.status ?? task.status);
    const approvals = (await this.deps.store.listReviewDecisions(task.id)).filter((d) => d.decision === 'approve').length;
    await this.deps.audit({
      orgId: task.orgId,
      actor: user.actor,
      action: 'task.approve',
      subject: task.id,
      details: { approvals, needed: review.approvals, queued: result === 'approved', binding: review.binding, comment },
    });
    if (result === 'approved') {
      await this.wakeAgentsFor(task, 'one');
      this.deps.notify?.('task.approved', task);
    }
    return (await this.deps.store.getTask(task.orgId, task.id)) ?? task;
  }

  /** A reviewer's rejection: final, with the comment saying why. */
  async reject(user: UserPrincipal, taskId: string, comment: string): Promise<TaskRow> {
    const { task, review } = await this.pendingReview(user, taskId, 'reject');
    const decision = this.decision(user, task, review, 'reject', comment);
    const ended = await this.end(task, {
      write: (flush) => this.deps.store.rejectTask(decision, rejectionReason(user.actor, comment), flush),
      actor: user.actor,
      action: 'task.reject',
      details: { comment, binding: review.binding },
      event: 'task.rejected',
    });
    if (!ended) throw notPending(task.id, (await this.deps.store.getTask(task.orgId, task.id))?.status ?? task.status);
    return (await this.deps.store.getTask(task.orgId, task.id)) ?? task;
  }

  /** The sweeper: pending tasks whose review expired end `rejected`. */
  async sweepReviews(now = Date.now()): Promise<void> {
    for (const task of await this.deps.store.listExpiredReviews(now)) {
      if (!task.review) continue;
      const approvals = (await this.deps.store.listReviewDecisions(task.id)).filter((d) => d.decision === 'approve').length;
      const reason = expiryReason(task.review, approvals);
      await this.end(task, {
        write: (flush) => this.deps.store.expireReview(task.id, now, reason, flush),
        actor: 'server',
        action: 'task.review_expired',
        details: { reason, approvals, needed: task.review.approvals },
        event: 'task.rejected',
      });
    }
  }

  /** The caller's task, waiting for review, if the caller has the review right on it. */
  private async pendingReview(user: UserPrincipal, taskId: string, action: 'approve' | 'reject'): Promise<{ task: TaskRow; review: TaskReviewRow }> {
    const task = await taskFor(this.deps.store, user, taskId, 'read');
    const review = task.review;
    if (!review || task.status !== 'pending_review') throw notPending(task.id, task.status);
    const member = review.groupId !== null && (await this.deps.store.isGroupMember(review.groupId, user.principalId));
    authorizeReview(user, task, review, member, action);
    // Nothing changes a pending task; this holds the promise should that ever stop being so.
    if (bindingOf(task) !== review.binding)
      throw new FerryError('FERRY_E_NOT_PENDING_REVIEW', `Task ${task.id} no longer matches what was submitted for review; it cannot be approved.`);
    return { task, review };
  }

  private decision(user: UserPrincipal, task: TaskRow, review: TaskReviewRow, decision: 'approve' | 'reject', comment: string | null): ReviewDecisionRow {
    return { taskId: task.id, principalId: user.principalId, actor: user.actor, decision, comment, binding: review.binding, at: Date.now() };
  }

  /**
   * New tasks are refused once the organization's stored output reaches its quota. Running
   * tasks are not cut short: each may still store up to its own output cap, so the quota can
   * be passed by at most what the tasks admitted before it was reached write.
   */
  private quotaReached(used: number, quota: number): FerryError {
    const retention = this.deps.config.outputRetention;
    return new FerryError(
      'FERRY_E_OUTPUT_QUOTA_REACHED',
      `Your organization stores ${formatSize(used)} of task output, its quota of ${formatSize(quota)}, so new tasks are refused. ` +
        (retention > 0 ? `Output of tasks older than ${formatDuration(retention)} is removed automatically; ` : 'Output retention is off; ') +
        'an administrator can raise the quota (ferry server --org-output-quota) or shorten the retention (--output-retention).',
      { details: { usedBytes: used, quotaBytes: quota } },
    );
  }

  private newTaskRow(user: UserPrincipal, target: TargetRow, request: CreateTaskRequest): TaskRow {
    return {
      id: newId('t'),
      orgId: user.orgId,
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
      script: request.script,
      stdin: null,
      args: [],
      env: {},
      status: 'queued',
      exitCode: null,
      signal: null,
      reason: null,
      agentId: null,
      agentName: null,
      createdBy: user.actor,
      createdByPrincipal: user.principalId,
      review: null,
      runbook: null,
      createdAt: Date.now(),
      claimedAt: null,
      startedAt: null,
      finishedAt: null,
      timeoutSeconds: request.timeoutSeconds ?? resolveLimits(this.deps.config, target.limits).timeoutSeconds,
      leaseExpiresAt: null,
      cancelRequestedAt: null,
      outputBytes: 0,
      outputExpiredAt: null,
    };
  }

  /** The oldest task `agent` may run (with its secrets), claimed under a lease; released at once if `signal` says the agent hung up. */
  async claim(agent: AgentRow, signal: AbortSignal): ReturnType<Store['claimNextTask']> {
    return this.claimed(agent, await this.deps.store.claimNextTask(agent, Date.now(), this.leaseMs()), signal);
  }

  /**
   * A poll's writes: the claim (when `claim`) and the renewal of the leases of the tasks the
   * agent says it runs; as claim and renewLeases answer. Both at once are one statement on
   * PostgreSQL where they were two.
   */
  async claimAndRenew(
    agent: AgentRow,
    claim: boolean,
    running: readonly string[],
    signal: AbortSignal,
  ): Promise<{ task: Awaited<ReturnType<Store['claimNextTask']>>; held: string[]; cancel: string[] }> {
    if (!claim) return { task: undefined, ...(await this.renewLeases(agent, running)) };
    const now = Date.now();
    const { task, held, cancel } = await this.deps.store.claimNextTaskRenewing(agent, now, this.leaseMs(), running, now + this.leaseMs());
    return { task: await this.claimed(agent, task, signal), held, cancel };
  }

  /** A claim's aftermath: given back at once if the agent hung up meanwhile. */
  private async claimed(agent: AgentRow, task: Awaited<ReturnType<Store['claimNextTask']>>, signal: AbortSignal): ReturnType<Store['claimNextTask']> {
    if (!task) return undefined;
    if (signal.aborted) {
      // The answer cannot be delivered: give the task back now rather than after the lease.
      if (await this.deps.store.releaseClaim(task.id, agent.id)) await this.wakeAgentsFor(task, 'one');
      return undefined;
    }
    // Debug, not info: a line per task is a synchronous write inside the poll's answer, on the
    // dispatch path (~1 ms a claim under load in a profile); the task row records who claimed it.
    this.log.debug({ agentId: agent.id, taskId: task.id }, 'task claimed');
    this.deps.events?.claimed(task.createdAt, Date.now());
    return task;
  }

  async confirmStart(agent: AgentRow, taskId: string): Promise<void> {
    if (!(await this.deps.store.markStarted(taskId, agent.id, Date.now()))) throw leaseLost(agent, taskId);
    // Readers hear of the start after the agent has its yes, which the task's script waits for.
    this.output.wakeReaders(taskId);
  }

  /** Renews the leases of the tasks the agent says it runs: which it still holds, which to cancel. */
  async renewLeases(agent: AgentRow, running: readonly string[]): Promise<{ held: string[]; cancel: string[] }> {
    if (running.length === 0) return { held: [], cancel: [] };
    return this.deps.store.renewLeases(agent.id, running, Date.now() + this.leaseMs());
  }

  /** `digest`: the upload's OutputDigest header, when the agent sent one. */
  appendOutput(agent: AgentRow, taskId: string, offset: number, frames: readonly OutputFrame[], digest?: string): Promise<number> {
    this.deps.events?.outputUploaded(frames.reduce((n, f) => n + f.data.length, 0));
    return this.output.append(agent, taskId, offset, frames, digest);
  }

  readOutput(user: UserPrincipal, taskId: string, query: ReadOutputQuery, signal: AbortSignal): ReturnType<TaskOutput['read']> {
    return this.output.read(user.orgId, taskId, query, signal);
  }

  async finish(agent: AgentRow, taskId: string, report: FinishTaskRequest): Promise<void> {
    const input = {
      status: report.status,
      exitCode: report.exitCode,
      signal: report.signal,
      reason: report.reason,
      now: Date.now(),
      outputBytes: report.outputBytes,
    };
    const record = { actor: `agent:${agent.name}`, action: 'task.finish', details: { status: report.status, exitCode: report.exitCode } };
    // No output reported (many short tasks): verifyFinal would check only that none was stored,
    // which the write's own condition does, so the task is not read first (on PostgreSQL one
    // statement, not two). If the write does not win, the task is read and decided as below.
    if (report.outputBytes === 0) {
      const orgId = await this.deps.store.finishTaskWithoutOutput(taskId, agent.id, input);
      if (orgId !== undefined) return this.ended({ id: taskId, orgId }, record);
    }
    const task = await findHeldTask(this.deps.store, agent, taskId);
    this.output.verifyFinal(task, report);
    const ended = await this.end(task, { ...record, write: (flush) => this.deps.store.finishTask(task.id, agent.id, input, flush) });
    if (!ended) {
      // Still held but refused: the stored output moved back since the check (FinishInput.outputBytes), so the agent resends.
      this.output.verifyFinal(await findHeldTask(this.deps.store, agent, taskId), report);
      throw leaseLost(agent, taskId);
    }
  }

  /**
   * Ends a task nobody runs yet; asks the agent running one to stop. Returns the task as it is
   * now. Each step is its own compare-and-set, so the task may move between them (claimed, or
   * requeued by the sweeper): then the steps run again until one applies or the task has ended.
   */
  async cancel(user: UserPrincipal, taskId: string): Promise<TaskRow> {
    const { store, hub } = this.deps;
    const before = await findTask(store, user.orgId, taskId);
    if (isTerminal(before.status)) throw new FerryError('FERRY_E_TASK_FINISHED', `Task ${before.id} already ended as ${before.status}.`);
    const audit = { actor: user.actor, action: 'task.cancel', details: { status: before.status } };
    for (let attempt = 0; attempt < CANCEL_ATTEMPTS; attempt++) {
      const now = Date.now();
      const ended = await this.end(before, { ...audit, write: (flush) => store.cancelUnclaimed(user.orgId, before.id, now, CANCELLED_REASON, flush) });
      if (ended) return (await store.getTask(user.orgId, before.id)) ?? before;
      // Claimed meanwhile, or already running: the agent stops it and reports `cancelled`.
      const asked = await store.requestStop(user.orgId, before.id, now);
      const after = (await store.getTask(user.orgId, before.id)) ?? before;
      if (asked || isTerminal(after.status) || after.cancelRequestedAt !== null) {
        if (after.status === 'running' && after.agentId !== null) hub.notifyAgent(after.agentId);
        await this.deps.audit({ orgId: user.orgId, subject: before.id, ...audit });
        return after;
      }
    }
    throw new FerryError('FERRY_E_UNAVAILABLE', `Task ${before.id} kept changing state; ask again.`);
  }

  /** The sweeper: what becomes of each task whose lease lapsed (see the diagram above). */
  async sweepLeases(now = Date.now()): Promise<void> {
    for (const task of await this.deps.store.listLapsedLeases(now)) {
      if (task.agentId === null) continue; // a running task always has a holder
      if (task.startedAt !== null) await this.loseTask(task, task.agentId, now);
      else if (task.cancelRequestedAt !== null) await this.cancelLapsed(task, task.agentId, now);
      else await this.requeueLapsed(task, task.agentId, now);
    }
  }

  private async requeueLapsed(task: TaskRow, agentId: string, now: number): Promise<void> {
    if (!(await this.deps.store.requeueLapsed(task.id, agentId, now))) return;
    this.log.warn({ taskId: task.id }, 'lease lapsed before the task started; queued again');
    this.deps.events?.leaseLapsed('requeued');
    await this.wakeAgentsFor(task, 'all');
  }

  /** A cancel request on a claimed task that never started: it ends here rather than running later. */
  private async cancelLapsed(task: TaskRow, agentId: string, now: number): Promise<void> {
    const cancelled = await this.end(task, {
      write: (flush) => this.deps.store.cancelLapsed(task.id, agentId, now, CANCELLED_REASON, flush),
      actor: 'server',
      action: 'task.cancel',
      details: { reason: CANCELLED_REASON },
    });
    if (cancelled) this.deps.events?.leaseLapsed('cancelled');
  }

  private async loseTask(task: TaskRow, agentId: string, now: number): Promise<void> {
    const lost = await this.end(task, {
      write: (flush) => this.deps.store.markLost(task.id, agentId, now, LOST_REASON, flush),
      actor: 'server',
      action: 'task.lost',
      details: { reason: LOST_REASON },
    });
    if (!lost) return;
    this.log.warn({ taskId: task.id }, 'lease lapsed while the task ran; marked lost');
    this.deps.events?.leaseLapsed('lost');
  }

  /** The one way a task ends; false when the conditional write found the task elsewhere. */
  private async end(task: TaskRow, ending: Ending): Promise<boolean> {
    if (!(await ending.write(heldOutputFlush(task.targetRedact)))) return false;
    await this.ended(task, ending);
    return true;
  }

  /** What follows every ending's write: the raw digest forgotten, readers woken, the audit entry, the webhook event. */
  private async ended(task: Pick<TaskRow, 'id' | 'orgId'>, ending: Omit<Ending, 'write'>): Promise<void> {
    this.digests.forget(task.id);
    this.deps.hub.notifyOutput(task.id);
    await this.deps.audit({ orgId: task.orgId, actor: ending.actor, action: ending.action, subject: task.id, details: ending.details });
    this.deps.notify?.(ending.event ?? 'task.finished', task);
  }

  /** A task is claimable again: wake one waiting agent that may run it, or (after a sweep) all. */
  private async wakeAgentsFor(task: TaskRow, how: 'one' | 'all'): Promise<void> {
    const target = await this.deps.store.getTargetById(task.targetId);
    if (!target) return;
    const key = await keyNeedOf(this.deps.store, target);
    if (how === 'one') this.deps.hub.notifyTask(target, key);
    else this.deps.hub.notifyTaskAll(target, key);
  }

  private leaseMs(): number {
    return this.deps.config.leaseSeconds * 1000;
  }
}
