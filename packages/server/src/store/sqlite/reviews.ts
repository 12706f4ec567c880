/**
 * Reviews in SQLite: reviewers' decisions and the compare-and-set writes that move a task out
 * of pending_review. The store runs each inside its transaction, so an approval that completes
 * the count and the move to `queued` are one write, and a second approval racing it finds the
 * task queued already.
 */
import type Database from 'better-sqlite3';
import type { ApproveResult, ReviewDecisionRow } from '../types.js';
import type { Statements } from './output.js';
import { num, strOrNull, type Row } from './rows.js';

function insertDecision(stmt: Statements, d: ReviewDecisionRow): boolean {
  const r = stmt(
    `INSERT INTO task_reviews (task_id, principal_id, actor, decision, comment, binding, at) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING`,
  ).run(d.taskId, d.principalId, d.actor, d.decision, d.comment, d.binding, d.at);
  return r.changes === 1;
}

export function approveTask(stmt: Statements, decision: ReviewDecisionRow, needed: number): ApproveResult {
  if (!stmt("SELECT 1 FROM tasks WHERE id = ? AND status = 'pending_review'").get(decision.taskId)) return 'not_pending';
  if (!insertDecision(stmt, decision)) return 'duplicate';
  const count = num((stmt("SELECT COUNT(*) AS n FROM task_reviews WHERE task_id = ? AND decision = 'approve'").get(decision.taskId) as Row).n);
  if (count < needed) return 'recorded';
  const queued = stmt("UPDATE tasks SET status = 'queued', review_expires_at = NULL WHERE id = ? AND status = 'pending_review'").run(decision.taskId);
  return queued.changes === 1 ? 'approved' : 'not_pending';
}

/** The conditional write of a rejection; the decision is recorded only if it won. */
export function rejectTask(stmt: Statements, decision: ReviewDecisionRow, reason: string): Database.RunResult {
  const r = stmt(
    `UPDATE tasks SET status = 'rejected', finished_at = ?, reason = ?, review_expires_at = NULL
    WHERE id = ? AND status = 'pending_review'`,
  ).run(decision.at, reason, decision.taskId);
  if (r.changes === 1) insertDecision(stmt, decision);
  return r;
}

export function listDecisions(stmt: Statements, taskId: string): ReviewDecisionRow[] {
  return stmt('SELECT * FROM task_reviews WHERE task_id = ? ORDER BY at, principal_id')
    .all(taskId)
    .map((raw) => {
      const r = raw as Row;
      return {
        taskId: String(r.task_id),
        principalId: String(r.principal_id),
        actor: String(r.actor),
        decision: r.decision === 'reject' ? 'reject' : 'approve',
        comment: strOrNull(r.comment),
        binding: String(r.binding),
        at: num(r.at),
      };
    });
}
