/**
 * An agent's long poll. Agents only dial out, so this is how work reaches them: the poll
 * claims a task when the agent has room, and otherwise waits (up to `waitSeconds`) until the
 * dispatch hub wakes it for a new task or a cancellation, or until one of its targets needs a
 * sealing key. Every answer also renews the leases of what the agent runs and says which of
 * those to cancel. An agent holds at most its concurrency of polls (open-polls.ts).
 */
import type { ParsedBody, PollResponse, Routes } from '@ferry/protocol';
import { checkStanding, checkStandingOf } from '../agent-standing.js';
import type { ServerContext } from '../context.js';
import { acceptAgentKeys, hasKeyWork, keyWorkFor } from '../keys.js';
import type { AgentRow } from '../store/types.js';
import { assignmentView } from '../views.js';

export type PollRequest = ParsedBody<typeof Routes.poll>;

/** `ending` aborts when the agent went away or a newer poll of it took this one's place. */
export async function answerPoll(ctx: ServerContext, agent: AgentRow, poll: PollRequest, ending: AbortController): Promise<PollResponse> {
  // The row was read to authenticate this very request.
  await checkStandingOf(ctx.store, agent);
  const leave = ctx.polls.enter(agent, ending);
  try {
    return await pollUntilAnswer(ctx, agent, poll, ending.signal);
  } finally {
    leave();
  }
}

/**
 * A poll's arrival counts as a sign of life (presence.ts) only when the agent's row, read moments
 * ago to authenticate it, is older than this: an agent that polls again right after an answer
 * costs no write (on PostgreSQL a commit, so an fsync) ahead of its claim.
 */
const TOUCH_RESOLUTION_MS = 1000;

async function pollUntilAnswer(ctx: ServerContext, agent: AgentRow, poll: PollRequest, signal: AbortSignal): Promise<PollResponse> {
  const deadline = Date.now() + poll.waitSeconds * 1000;
  if (Date.now() - agent.lastSeenAt >= TOUCH_RESOLUTION_MS) await ctx.store.touchAgent(agent.id, Date.now());
  if (poll.keys) await acceptAgentKeys(ctx, agent, poll.keys);
  let waited = false;
  for (;;) {
    // Every answer renews the leases of what the agent runs, so the renewal (other tasks' rows)
    // goes alongside the claim rather than after it: a claimed task's answer waits for one round
    // trip, not two. (A poll woken after its agent was revoked may so renew its leases once
    // before it is told; the agent renewed them moments before anyway.)
    // On PostgreSQL the claim and the renewal are one statement (claimAndRenew).
    const claiming = poll.free > 0 && !signal.aborted && !ctx.hub.isReleasingAgents;
    // Key work rides on every answer: a holder kept busy with tasks must still hand its keys over.
    // The answer's parts are independent reads and writes: asked at once, not one after another
    // (the task's secrets came with its claim).
    const [{ task, cancel }, keyWork] = await Promise.all([ctx.tasks.claimAndRenew(agent, claiming, poll.running, signal), keyWorkFor(ctx, agent)]);
    if (task) return { task: assignmentView(ctx.config, task, task.secrets), cancel, ...keyWork };
    // An agent revoked, or left with no target, while its poll waited is told now. Looked at
    // after the claim, not before it: such an agent claims nothing (the claim's eligibility
    // reads its row), and a woken poll reaches its task one round trip sooner.
    if (waited) await checkStanding(ctx.store, agent.id);
    const needingKeys = await ctx.store.targetsNeedingKeys(agent);
    const keyRequests = needingKeys.map((t) => ({ targetId: t.id, targetName: t.name }));
    // A server shutting down answers at once (empty) rather than holding polls it cannot serve.
    if (cancel.length > 0 || keyRequests.length > 0 || hasKeyWork(keyWork) || Date.now() >= deadline || signal.aborted || ctx.hub.isReleasingAgents) {
      await ctx.store.touchAgent(agent.id, Date.now());
      return { task: null, cancel, keyRequests, ...keyWork };
    }
    await ctx.hub.waitForWork(agent, poll.free > 0, deadline - Date.now(), signal);
    waited = true;
  }
}
