/** `--review none|any|group:G [--approvals N] [--review-expiry DUR]` on `target create|update`, and how a review reads. */
import { MAX_APPROVALS, MAX_REVIEW_EXPIRY_SECONDS, parseDurationSeconds, type ReviewPolicy, type ReviewPolicyRequest, type TaskReview } from '@ferry/protocol';
import { UsageError } from './errors.js';
import { formatDuration } from './exit-codes.js';
import { countFlag } from './validate.js';

export interface ReviewFlags {
  review?: string;
  approvals?: string;
  reviewExpiry?: string;
}

function ruleFrom(flag: string): Pick<ReviewPolicyRequest, 'rule' | 'group'> {
  if (flag === 'none' || flag === 'any') return { rule: flag };
  if (flag.startsWith('group:') && flag.length > 'group:'.length) return { rule: 'group', group: flag.slice('group:'.length) };
  throw new UsageError(`--review ${flag}: give none, any (anyone but the author who may run tasks on the target) or group:NAME.`);
}

/** The request's `review`, or undefined when no review flag is given. */
export function reviewFromFlags(opts: ReviewFlags): ReviewPolicyRequest | undefined {
  if (opts.review === undefined && opts.approvals === undefined && opts.reviewExpiry === undefined) return undefined;
  const review: ReviewPolicyRequest = opts.review !== undefined ? ruleFrom(opts.review) : {};
  if (opts.approvals !== undefined) review.approvals = countFlag('--approvals', opts.approvals, 1, MAX_APPROVALS);
  if (opts.reviewExpiry !== undefined) {
    const seconds = parseDurationSeconds(opts.reviewExpiry);
    if (seconds === undefined || seconds < 1 || seconds > MAX_REVIEW_EXPIRY_SECONDS)
      throw new UsageError(`--review-expiry ${opts.reviewExpiry}: give a duration from 1s to 30d, e.g. 30m or 2d.`);
    review.expirySeconds = Math.round(seconds);
  }
  return review;
}

/** `target show`'s line: `any, 2 approvals, expires after 1d`. */
export function reviewPolicyLine(review: ReviewPolicy | undefined): string {
  if (!review || review.rule === 'none') return 'none';
  const who = review.rule === 'any' ? 'any' : `group:${review.group ?? '?'}`;
  return `${who}, ${review.approvals} approval${review.approvals === 1 ? '' : 's'}, expires after ${formatDuration(review.expirySeconds)}`;
}

/** Who a pending task waits for, e.g. `1 more approval from a member of group dba`. */
export function awaitedReviewers(review: TaskReview, target: string): string {
  const have = review.decisions.filter((d) => d.decision === 'approve').length;
  const missing = Math.max(0, review.approvalsNeeded - have);
  const who = review.rule === 'group' ? `members of group ${review.group ?? '?'}` : `anyone but its author who may run tasks on ${target}`;
  return `${missing} more approval${missing === 1 ? '' : 's'} from ${who} (ferry task approve ID), until ${review.expiresAt}`;
}
