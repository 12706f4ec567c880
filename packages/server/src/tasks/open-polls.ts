/**
 * Each agent's open long polls, at most its registered concurrency.
 *
 * A real agent holds one poll at a time, but its next poll can arrive before the server has
 * seen the last one end: the agent aborted it to poll again with a freed slot, or a proxy or
 * a dead network path still holds its connection. So the newest poll always gets in, and a poll
 * past the agent's concurrency ends that agent's oldest open poll at once: the old one answers
 * as a poll whose client went away does (empty, any claim it was making given back), and only
 * the newest, whose connection is surely alive, waits. An agent gets neither an error nor a wait
 * it did not ask for, and nobody can hold more than `concurrency` waiting polls on one agent.
 *
 * States of a poll: open (counted) → ended (answered, its client went away, or ended by a newer
 * poll); every path removes it, exactly once, through the `leave` that `enter` returned.
 */
import type { AgentRow } from '../store/types.js';

export class OpenPolls {
  private readonly open = new Map<string, AbortController[]>();

  /**
   * Counts a poll of `agent`, ending its oldest ones past the agent's concurrency by aborting
   * their `ending`. Returns the function to call once the poll has answered.
   */
  enter(agent: AgentRow, ending: AbortController): () => void {
    const polls = this.open.get(agent.id) ?? [];
    this.open.set(agent.id, polls);
    while (polls.length >= Math.max(1, agent.concurrency)) polls.shift()?.abort();
    polls.push(ending);
    return () => {
      const i = polls.indexOf(ending);
      if (i >= 0) polls.splice(i, 1);
      if (polls.length === 0 && this.open.get(agent.id) === polls) this.open.delete(agent.id);
    };
  }
}
