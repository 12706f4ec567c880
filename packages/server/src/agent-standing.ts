/**
 * Whether an agent may still ask for work, and if not, what it is told: the answer an agent
 * acts on, so it names the command that gets the agent going again.
 * - revoked (or pruned): FERRY_E_AGENT_REVOKED, with the `agent token create` line for what it served;
 * - a self-hosted agent whose targets were all deleted: FERRY_E_AGENT_ORPHANED (it stops).
 */
import { FerryError } from '@ferry/protocol';
import type { AgentRow, Store } from './store/types.js';

async function liveTargetNames(store: Store, agent: AgentRow): Promise<string[]> {
  const targets = await Promise.all(agent.targetIds.map((id) => store.getTargetById(id)));
  return targets.flatMap((t) => (t ? [t.name] : []));
}

export async function revokedError(store: Store, agent: AgentRow): Promise<FerryError> {
  const names = agent.hosted ? [] : await liveTargetNames(store, agent);
  const tokenFor = agent.hosted ? '--hosted' : names.length > 0 ? names.map((n) => `--target ${n}`).join(' ') : '--target NAME';
  return new FerryError(
    'FERRY_E_AGENT_REVOKED',
    `this agent was revoked; start it with a new join token: ferry agent token create ${tokenFor}, then ferry agent start --join-token TOKEN (the new token replaces the stored credential)`,
  );
}

/** Throws what the agent is told when it may no longer poll. */
export async function checkStanding(store: Store, agentId: string): Promise<void> {
  const agent = await store.getAgent(agentId);
  if (!agent) throw new FerryError('FERRY_E_UNAUTHENTICATED', 'Missing or invalid agent credential.');
  await checkStandingOf(store, agent);
}

/** `checkStanding` of an agent row just read (the request's own authentication): no second read of it. */
export async function checkStandingOf(store: Store, agent: AgentRow): Promise<void> {
  if (agent.revokedAt !== null) throw await revokedError(store, agent);
  if (agent.hosted || agent.targetIds.length === 0) return;
  if ((await liveTargetNames(store, agent)).length === 0) {
    throw new FerryError(
      'FERRY_E_AGENT_ORPHANED',
      `every target agent ${agent.name} served was deleted, so it has nothing to serve and stops; to serve another target, start it with a new join token: ferry agent token create --target NAME, then ferry agent start --join-token TOKEN`,
    );
  }
}
