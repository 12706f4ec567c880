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
 *
 * And which task an agent may run (`mayRun`, `agentMayRunSql`): one of a target it serves that
 * either needs no key (the target has no secret when the task is claimed) or whose current key
 * the agent holds (target_key_holders, with the target's key id). An agent without the key
 * still serves the target: it gets the key handed over and runs keyless tasks meanwhile.
 */
import type { AgentRow, TargetRow } from './store/types.js';

/** What of a target the rule looks at (what a wake-up carries between replicas). */
export type ServedTarget = Pick<TargetRow, 'id' | 'orgId' | 'agentMode'>;

export function mayServe(agent: AgentRow, target: ServedTarget): boolean {
  if (agent.revokedAt !== null) return false;
  if (target.agentMode === 'hosted') return agent.hosted && (agent.orgId === null || agent.orgId === target.orgId);
  return !agent.hosted && agent.targetIds.includes(target.id);
}

/** Whether running a task of a target needs the target's key, and which agents hold it. */
export type KeyNeed = { needed: false } | { needed: true; holders: ReadonlySet<string> };

export function mayRun(agent: AgentRow, target: ServedTarget, key: KeyNeed): boolean {
  return mayServe(agent, target) && (!key.needed || key.holders.has(agent.id));
}

/** `mayRun` as a SQL condition, aliases as in `agentMayServeSql`. */
export function agentMayRunSql(a: string, g: string): string {
  return `(${agentMayServeSql(a, g)} AND (
    NOT EXISTS (SELECT 1 FROM secrets s WHERE s.target_id = ${g}.id)
    OR EXISTS (SELECT 1 FROM target_key_holders h WHERE h.target_id = ${g}.id AND h.agent_id = ${a}.id AND h.key_id = ${g}.key_id)))`;
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
