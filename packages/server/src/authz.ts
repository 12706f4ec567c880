/**
 * Who may do what: the one module every user route asks.
 *
 * - Roles, per organization: `admin` (everything in its organization), `operator` (runs tasks
 *   on the targets its groups are granted, sees those tasks and their output), `viewer` (reads
 *   what its groups are granted).
 * - A target's grants give a group `operator` or `viewer` on it. A principal's role on a target
 *   is the best grant of its groups, capped by its own role (a viewer in a group granted
 *   operator still only reads). A target without grants is seen by admins only.
 * - Tenancy: a target or task the caller may not see, of its organization or any other, is
 *   "not found" (404), never "forbidden", so ids and names are no existence oracle. One it may
 *   see but not act on is 403, with a message that names the role and grant it lacks.
 * - Instance administrators (the first start's admin) may also create organizations and add
 *   agents to the hosted pool every organization shares.
 */
import { FerryError, type GrantRole, type Role } from '@ferry/protocol';
import type { UserPrincipal } from './auth.js';
import { findTarget, findTask } from './lookup.js';
import type { ReviewPolicyRow, Store, TargetRow, TaskRow } from './store/types.js';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function roleAtLeast(role: Role, least: Role): boolean {
  return RANK[role] >= RANK[least];
}

/** What can be done to a target, and the least role each needs. */
export type TargetAction = 'read' | 'run' | 'manage';
const NEEDS: Record<TargetAction, Role> = { read: 'viewer', run: 'operator', manage: 'admin' };

/** What a target looks like to authorization: its id and organization (a task names both). */
interface TargetRef {
  id: string;
  orgId: string;
}

/** The caller's role on a target, or undefined when it may not even see it. */
function roleOnTarget(user: UserPrincipal, target: TargetRef): Role | undefined {
  if (target.orgId !== user.orgId) return undefined;
  if (user.role === 'admin') return 'admin';
  const granted: GrantRole | undefined = user.grants.get(target.id);
  if (granted === undefined) return undefined;
  return roleAtLeast(user.role, granted) ? granted : user.role;
}

function may(user: UserPrincipal, action: TargetAction, target: TargetRef): boolean {
  const role = roleOnTarget(user, target);
  return role !== undefined && roleAtLeast(role, NEEDS[action]);
}

function describe(action: TargetAction, name: string): string {
  switch (action) {
    case 'read':
      return `reading ${name}`;
    case 'run':
      return `running tasks on ${name}`;
    case 'manage':
      return `changing ${name}`;
  }
}

/** The 403 for a caller that sees the target but may not do `action` on it. */
function forbidden(user: UserPrincipal, action: TargetAction, name: string, role: Role): FerryError {
  const needed = NEEDS[action];
  const how = needed === 'admin' ? '' : ` through a group granted on ${name}`;
  const cap = role !== user.role ? ` (its groups are granted ${role} on ${name})` : '';
  return new FerryError('FERRY_E_FORBIDDEN', `${describe(action, name)} needs the ${needed} role${how}; your token has ${user.role}${cap}.`, {
    details: { needed, has: role },
  });
}

/** Throws the 404 or 403 for a target the caller may not see or not act on. */
function authorizeTarget(user: UserPrincipal, target: TargetRow, action: TargetAction): void {
  const role = roleOnTarget(user, target);
  if (role === undefined) throw new FerryError('FERRY_E_TARGET_NOT_FOUND', `No target named "${target.name}". \`ferry target list\` shows the targets.`);
  if (!roleAtLeast(role, NEEDS[action])) throw forbidden(user, action, target.name, role);
}

/** The named target of the caller's organization, if the caller may do `action` on it. */
export async function targetFor(store: Store, user: UserPrincipal, name: string, action: TargetAction): Promise<TargetRow> {
  const target = await findTarget(store, user.orgId, name);
  authorizeTarget(user, target, action);
  return target;
}

/** The task, if the caller may do `action` on its target; a task on a target it cannot see is "not found". */
export async function taskFor(store: Store, user: UserPrincipal, id: string, action: TargetAction): Promise<TaskRow> {
  const task = await findTask(store, user.orgId, id);
  const role = roleOnTarget(user, { id: task.targetId, orgId: task.orgId });
  if (role === undefined) throw new FerryError('FERRY_E_TASK_NOT_FOUND', `No task with id "${id}". \`ferry task list\` shows the tasks.`);
  if (!roleAtLeast(role, NEEDS[action])) throw forbidden(user, action, task.targetName, role);
  return task;
}

/** The targets of a list the caller may see. */
export function visibleTargets(user: UserPrincipal, targets: readonly TargetRow[]): TargetRow[] {
  return targets.filter((t) => may(user, 'read', t));
}

/** For list queries: the ids of the targets whose tasks the caller may see, or undefined for all of its organization. */
export function visibleTargetIds(user: UserPrincipal): string[] | undefined {
  return user.role === 'admin' ? undefined : [...user.grants.keys()];
}

/** A route's least role (route-guard.ts asks this of every user route before its body is read). */
export function requireRole(user: UserPrincipal, least: Role): void {
  if (!roleAtLeast(user.role, least)) throw new FerryError('FERRY_E_FORBIDDEN', `This needs the ${least} role; your token has ${user.role}.`);
}

/** Organizations and the shared hosted pool are the instance's, not one organization's. */
export function requireInstanceAdmin(user: UserPrincipal, what: string): void {
  if (!user.instanceAdmin)
    throw new FerryError('FERRY_E_FORBIDDEN', `${what} needs an instance administrator (the first start's admin token); yours is not one.`);
}

/**
 * The review right on a task (the caller already sees it): with rule `any`, whoever may run
 * tasks on its target; with `group`, members of the group who may at least read the target.
 * The author never approves their own task, whatever token they use.
 */
export function authorizeReview(user: UserPrincipal, task: TaskRow, review: ReviewPolicyRow, isMember: boolean, decision: 'approve' | 'reject'): void {
  if (!hasReviewRight(user, task, review, isMember)) {
    const who =
      review.rule === 'any'
        ? `anyone other than its author who may run tasks on ${task.targetName}`
        : `members of group ${review.groupName ?? '?'} who may read ${task.targetName}`;
    throw new FerryError('FERRY_E_NOT_A_REVIEWER', `Tasks on ${task.targetName} are reviewed by ${who}; you are not one of them.`, {
      details: { rule: review.rule, group: review.groupName },
    });
  }
  if (decision === 'approve' && isAuthor(user, task))
    throw new FerryError('FERRY_E_SELF_APPROVAL', `You created task ${task.id}, so you cannot approve it; someone else with the review right must.`);
}

/** The review right alone (authorship aside); `isMember`: the caller is in the rule's group. */
export function hasReviewRight(user: UserPrincipal, task: TaskRow, review: ReviewPolicyRow, isMember: boolean): boolean {
  const target = { id: task.targetId, orgId: task.orgId };
  return review.rule === 'any' ? may(user, 'run', target) : isMember && may(user, 'read', target);
}

/** Tasks made before reviews recorded only the actor (principal and token). */
export function isAuthor(user: UserPrincipal, task: TaskRow): boolean {
  return task.createdByPrincipal !== null ? task.createdByPrincipal === user.principalId : task.createdBy === user.actor;
}
