import type { Command } from 'commander';
import type { AgentInfo } from '@ferry/protocol';
import { parseDurationSeconds } from '@ferry/protocol';
import { loadAgentConfig, runAgent } from '@ferry/agent';
import { UsageError } from '../errors.js';
import { ago, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('agents: join tokens, listing, revoking, running one');
  const token = agent.command('token').description('join tokens');

  token.command('create')
    .description('print a one-time join token for a new agent')
    .option('--target <name...>', 'the self-hosted target(s) the agent serves')
    .option('--hosted', 'an agent for the hosted pool')
    .option('--ttl <duration>', 'how long the token stays valid', '24h')
    .option('--json', 'print JSON')
    .action(async (opts: { target?: string[]; hosted?: boolean; ttl: string; json?: boolean }) => withClient(async (client) => {
      if (!!opts.hosted === !!opts.target?.length) throw new UsageError('Give either --target NAME (a self-hosted agent for that target) or --hosted.');
      const ttlSeconds = parseDurationSeconds(opts.ttl);
      if (ttlSeconds === undefined) throw new UsageError(`--ttl ${opts.ttl} is not a duration; use e.g. 1h or 7d.`);
      const res = await client.json<{ id: string; token: string; expiresAt: string }>('POST', '/v1/agent-tokens', {
        hosted: !!opts.hosted, targets: opts.target ?? [], ttlSeconds: Math.round(ttlSeconds),
      });
      if (opts.json) return printJson(res);
      process.stdout.write(`${res.token}\n`);
      process.stderr.write(`Join token ${res.id}: works once, until ${res.expiresAt}. Start the agent with:\n  ferry agent start --join-token <token>\n`);
    }));

  agent.command('list')
    .description('list agents')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => withClient(async (client) => {
      const { agents } = await client.json<{ agents: AgentInfo[] }>('GET', '/v1/agents');
      if (opts.json) return printJson(agents);
      printTable(['ID', 'NAME', 'HOST', 'VERSION', 'TARGETS', 'STATUS', 'RUNNING', 'LAST CONTACT'], agents.map((a) => [
        a.id, a.name, a.hostname, a.version, a.targets.join(','), a.revoked ? 'revoked' : a.online ? 'online' : 'offline', String(a.runningTasks), ago(a.lastSeenAt),
      ]));
    }));

  agent.command('revoke <id>')
    .description('revoke an agent\'s credential')
    .action(async (id: string) => withClient(async (client) => {
      await client.json('DELETE', `/v1/agents/${encodeURIComponent(id)}`);
      process.stdout.write(`Revoked agent ${id}.\n`);
    }));

  agent.command('start')
    .description('run an agent: register with a join token (first time), then poll for work')
    .option('--join-token <token>', 'one-time join token (needed only the first time; also FERRY_JOIN_TOKEN)')
    .option('--data-dir <dir>', 'where the agent keeps its credential (default ./ferry-agent-data)')
    .option('--concurrency <n>', 'tasks to run at once (default 4)')
    .option('--executor <kind>', 'sandbox (bubblewrap) or process; default: sandbox where available')
    .option('--name <name>', 'agent name (default: host name)')
    .option('--config <file>', 'JSON config file (also FERRY_AGENT_CONFIG)')
    .action(async (opts: { joinToken?: string; dataDir?: string; concurrency?: string; executor?: string; name?: string; config?: string }) => {
      const config = loadAgentConfig({
        joinToken: opts.joinToken, dataDir: opts.dataDir, concurrency: opts.concurrency, executor: opts.executor, name: opts.name,
      }, process.env, opts.config ?? process.env.FERRY_AGENT_CONFIG);
      await runAgent(config);
    });
}
