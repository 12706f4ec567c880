/**
 * Which agent may serve which target: the one rule, written twice side by side because it is
 * needed in two places. The dispatch hub asks it of agents waiting in memory (`mayServe`); the
 * store asks it inside SQL, where claiming a task, counting a target's online agents and finding
 * targets that still need a sealing key must each stay one query (`agentMayServeSql`). Change
 * both together: test/eligibility.test.ts checks that they agree for every kind of agent and
 * target.
 *
 * The rule:
 * - a revoked agent serves nothing;
 * - a hosted-pool target is served by hosted agents, either operator-wide ones (no organization,
 *   like the embedded agent) or ones joined for the target's organization;
 * - a self-hosted target is served only by self-hosted agents whose join token named it.
 */
import type { AgentRow, TargetRow } from './store/types.js';

export function mayServe(agent: AgentRow, target: TargetRow): boolean {
  if (agent.revokedAt !== null) return false;
  if (target.agentMode === 'hosted') return agent.hosted && (agent.orgId === null || agent.orgId === target.orgId);
  return !agent.hosted && agent.targetIds.includes(target.id);
}

/**
 * The same rule as a SQL condition on an `agents` row aliased `a` and a `targets` row aliased
 * `g` (SQLite; booleans are 0/1). The aliases are parameters so each query can name its own.
 */
export function agentMayServeSql(a: string, g: string): string {
  return `(${a}.revoked_at IS NULL AND (
    (${g}.agent_mode = 'hosted' AND ${a}.hosted = 1 AND (${a}.org_id IS NULL OR ${a}.org_id = ${g}.org_id))
    OR (${g}.agent_mode = 'self-hosted' AND ${a}.hosted = 0
        AND EXISTS (SELECT 1 FROM agent_targets served WHERE served.agent_id = ${a}.id AND served.target_id = ${g}.id))))`;
}
