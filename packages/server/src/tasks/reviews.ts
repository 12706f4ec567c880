/**
 * Reviews: what a target's review rule is made of, what an approval binds, and how both are
 * shown. The steps themselves (a task created as pending_review, approve, reject, expiry) are
 * TaskService's, one compare-and-set each; who may review is authz.ts `authorizeReview`.
 */
import { createHash } from 'node:crypto';
import { DEFAULT_REVIEW_EXPIRY_SECONDS, FerryError, formatDuration, type ReviewPolicy, type ReviewPolicyRequest, type TaskReview } from '@ferry/protocol';
import type { ReviewDecisionRow, ReviewPolicyRow, Store, TaskReviewRow, TaskRow } from '../store/types.js';

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/**
 * What an approval signs off: the script (its hash), the target and every parameter. Nothing
 * changes a pending task, and the binding is checked again at each decision, so what was
 * reviewed is what runs.
 */
export function bindingOf(task: Pick<TaskRow, 'script' | 'targetId' | 'args' | 'env' | 'stdin'>): string {
  const env = Object.fromEntries(Object.entries(task.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return sha256(
    JSON.stringify({
      script: sha256(task.script),
      target: task.targetId,
      args: task.args,
      env,
      stdin: task.stdin ? sha256(task.stdin) : null,
    }),
  );
}

/**
 * A target's rule after `request` (create: over none; update: over its current rule): what is
 * left out keeps its value. The group is looked up now and kept by id.
 */
export async function reviewPolicyAfter(
  store: Store,
  orgId: string,
  request: ReviewPolicyRequest | undefined,
  current: ReviewPolicyRow | null,
): Promise<ReviewPolicyRow | null> {
  if (!request) return current;
  const rule = request.rule ?? current?.rule ?? 'none';
  if (rule === 'none') {
    if (request.approvals !== undefined || request.expirySeconds !== undefined)
      throw new FerryError('FERRY_E_BAD_REQUEST', 'A target without review takes no --approvals or --review-expiry; give --review any or --review group:NAME.');
    return null;
  }
  let groupId: string | null = null;
  let groupName: string | null = null;
  if (rule === 'group') {
    if (request.group !== undefined) {
      const group = await store.teams.findGroup(orgId, request.group);
      if (!group) throw new FerryError('FERRY_E_GROUP_NOT_FOUND', `No group named "${request.group}". \`ferry group list\` shows the groups.`);
      groupId = group.id;
      groupName = group.name;
    } else {
      groupId = current?.groupId ?? null;
      groupName = current?.groupName ?? null;
    }
  }
  return {
    rule,
    groupId,
    groupName,
    approvals: request.approvals ?? current?.approvals ?? 1,
    expirySeconds: request.expirySeconds ?? current?.expirySeconds ?? DEFAULT_REVIEW_EXPIRY_SECONDS,
  };
}

/** The review a new task of a target with `policy` waits for. */
export function newTaskReview(policy: ReviewPolicyRow, task: Parameters<typeof bindingOf>[0], now: number): TaskReviewRow {
  return { ...policy, expiresAt: now + policy.expirySeconds * 1000, binding: bindingOf(task) };
}

export function reviewPolicyView(policy: ReviewPolicyRow | null): ReviewPolicy {
  if (!policy) return { rule: 'none', group: null, approvals: 0, expirySeconds: 0 };
  return { rule: policy.rule, group: policy.groupName, approvals: policy.approvals, expirySeconds: policy.expirySeconds };
}

export function taskReviewView(review: TaskReviewRow, decisions: readonly ReviewDecisionRow[]): TaskReview {
  return {
    rule: review.rule,
    group: review.groupName,
    approvalsNeeded: review.approvals,
    decisions: decisions.map((d) => ({ by: d.actor, decision: d.decision, comment: d.comment, at: new Date(d.at).toISOString() })),
    expiresAt: new Date(review.expiresAt).toISOString(),
    binding: review.binding,
  };
}

/** The reason a rejected task gives: who and why. */
export function rejectionReason(actor: string, comment: string): string {
  return `rejected by ${actor}: ${comment}`;
}

export function expiryReason(review: TaskReviewRow, approvals: number): string {
  return `the review expired: ${approvals} of ${review.approvals} approval${review.approvals === 1 ? '' : 's'} within ${formatDuration(review.expirySeconds)}`;
}
