/** Whether agents are online: heard from within `agentOfflineSeconds` (polls and heartbeats touch them). */
import type { ServerConfig } from './config.js';
import type { Store, TargetRow } from './store/types.js';

export function onlineSince(config: ServerConfig): number {
  return Date.now() - config.agentOfflineSeconds * 1000;
}

/** How many agents that may serve `target` (eligibility.ts) are online now. */
export function agentsOnline(ctx: { store: Store; config: ServerConfig }, target: TargetRow): Promise<number> {
  return ctx.store.countOnlineAgents(target, onlineSince(ctx.config));
}

/** How many online agents could run a task of `target` now (eligibility.ts `mayRun`: with secrets, only key holders). */
export function runnersOnline(ctx: { store: Store; config: ServerConfig }, target: Pick<TargetRow, 'id'>): Promise<number> {
  return ctx.store.countOnlineRunners(target, onlineSince(ctx.config));
}
