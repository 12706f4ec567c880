/**
 * Wire schemas of reviews: a target may require that a task be approved before any agent gets
 * it (`none`: no review; `any`: anyone but the author who may run tasks on the target; `group`:
 * members of a group who may at least read the target). What was reviewed is what runs: an
 * approval binds the task's script hash, target, arguments, environment and stdin.
 */
import { z } from 'zod';
import { TeamName } from './teams.js';

export const REVIEW_RULES = ['none', 'any', 'group'] as const;
export const ReviewRule = z.enum(REVIEW_RULES);
export type ReviewRule = z.infer<typeof ReviewRule>;

/** At most ten distinct approvals, and a pending task waits at most thirty days. */
export const MAX_APPROVALS = 10;
export const MAX_REVIEW_EXPIRY_SECONDS = 30 * 24 * 3600;
/** How long a task waits for its approvals when the target does not say. */
export const DEFAULT_REVIEW_EXPIRY_SECONDS = 24 * 3600;

/** A target's review rule as `target create|update` sets it; what is left out keeps its value (or default). */
export const ReviewPolicyRequest = z
  .object({
    /** Left out (on update): the target keeps its rule, and only the count or expiry change. */
    rule: ReviewRule.optional(),
    /** With rule `group`: the group whose members review. */
    group: TeamName.optional(),
    approvals: z.number().int().min(1).max(MAX_APPROVALS).optional(),
    expirySeconds: z.number().int().min(1).max(MAX_REVIEW_EXPIRY_SECONDS).optional(),
  })
  .strict()
  .refine((r) => (r.rule === 'group') === (r.group !== undefined), {
    message: 'a review by a group names the group (group:NAME), and only that rule names one',
  });
export type ReviewPolicyRequest = z.infer<typeof ReviewPolicyRequest>;

/** A target's review rule as the server shows it. */
export const ReviewPolicy = z.object({
  rule: ReviewRule,
  group: z.string().nullable(),
  approvals: z.number().int(),
  expirySeconds: z.number().int(),
});
export type ReviewPolicy = z.infer<typeof ReviewPolicy>;

export const ReviewDecision = z.object({
  by: z.string(),
  decision: z.enum(['approve', 'reject']),
  comment: z.string().nullable(),
  at: z.string(),
});

/** A task's review: the rule it was created under, who decided, and until when it waits. */
export const TaskReview = z.object({
  rule: ReviewRule,
  group: z.string().nullable(),
  approvalsNeeded: z.number().int(),
  decisions: z.array(ReviewDecision),
  /** When a pending task is rejected for want of approvals. */
  expiresAt: z.string(),
  /** sha256 over the script, target and parameters that an approval binds. */
  binding: z.string(),
});
export type TaskReview = z.infer<typeof TaskReview>;

const Comment = z.string().trim().min(1).max(2000);
export const ApproveTaskRequest = z.object({ comment: Comment.optional() }).strict();
export const RejectTaskRequest = z.object({ comment: Comment }).strict();
