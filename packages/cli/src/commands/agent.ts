import type { Command } from 'commander';
import { AGENT_START_FLAGS } from '@ferry/agent/flags';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/agent.js');

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('agents: join tokens, listing, revoking, running one');
  const token = agent.command('token').description('join tokens');

  token
    .command('create')
    .description('print a one-time join token for a new agent')
    .option('--target <name...>', 'the self-hosted target(s) the agent serves')
    .option('--hosted', "an agent for the hosted pool: your organization's own")
    .option('--shared', 'with --hosted: the pool every organization shares (instance administrators only)')
    .option('--ttl <duration>', 'how long the token stays valid', '24h')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'createJoinToken'));

  agent.command('list').description('list agents').option('--json', 'print JSON').action(lazyAction(actions, 'listAgents'));

  agent
    .command('revoke <id>')
    .description("revoke an agent's credential (refused if it is the only agent holding a target's key, unless --force)")
    .option('--force', "revoke even if that loses a target's key (its secrets must then be set again)")
    .action(lazyAction(actions, 'revokeAgent'));

  agent
    .command('prune')
    .description('remove revoked agents, and agents offline for longer than --offline-for, from the list (task history keeps their names)')
    .option('--offline-for <duration>', 'how long an agent must have been offline to be pruned', '7d')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'pruneAgents'));

  // The flags are the agent's own table (shared with `ferry-agent start`), so they are written once.
  const start = agent.command('start').description('run an agent: register with a join token (first time), then poll for work');
  for (const f of AGENT_START_FLAGS) start.option(`--${f.flag} <${f.value}>`, f.description);
  start.action(lazyAction(actions, 'startAgent'));

  // A systemd service on a Linux host (actions/install.ts).
  const install = (): Promise<Record<string, unknown>> => import('../actions/install.js');
  agent
    .command('install')
    .description('install this agent as a systemd service (ferry-agent.service), enable and start it; run as root')
    .option('--join-token <TOKEN>', 'one-time join token (kept in /etc/ferry/agent.env, mode 0600, for the first start)')
    .option('--data-dir <DIR>', "the agent's data folder (default /var/lib/ferry-agent)")
    .option('--name <NAME>', 'agent name (default: host name)')
    .option('--concurrency <N>', 'tasks to run at once')
    .option('--executor <sandbox|process>', 'executor (default: sandbox where available)')
    .option('--root <DIR>', 'write the files under DIR and do not run systemctl (for images and checks)')
    .action(lazyAction(install, 'installAgent'));
  agent
    .command('uninstall')
    .description('stop, disable and remove the ferry-agent service (its data stays unless --purge)')
    .option('--purge', "also remove the agent's data folder (its credential and keys)")
    .option('--root <DIR>', 'as for install')
    .action(lazyAction(install, 'uninstallAgent'));
}
