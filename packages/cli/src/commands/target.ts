import type { Command } from 'commander';
import type { Target } from '@ferry/protocol';
import { ago, printFields, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';

export function registerTargetCommands(program: Command): void {
  const target = program.command('target').description('targets: what tasks run against');

  target.command('create <name>')
    .description('register a target')
    .requiredOption('--type <type>', 'target type: shell')
    .option('--agent <mode>', 'who runs its tasks: hosted (default) or self-hosted', 'hosted')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { type: string; agent: string; json?: boolean }) => withClient(async (client) => {
      const t = await client.json<Target>('POST', '/v1/targets', { name, type: opts.type, agent: opts.agent });
      if (opts.json) return printJson(t);
      process.stdout.write(`Created target ${t.name} (${t.type}, ${t.agent === 'hosted' ? 'hosted pool' : 'self-hosted agents'}).\n`);
      if (t.agent === 'self-hosted') process.stdout.write(`Start its agent with a token from: ferry agent token create --target ${t.name}\n`);
    }));

  target.command('list')
    .description('list targets')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => withClient(async (client) => {
      const { targets } = await client.json<{ targets: Target[] }>('GET', '/v1/targets');
      if (opts.json) return printJson(targets);
      printTable(['NAME', 'TYPE', 'AGENT', 'AGENTS ONLINE', 'CREATED'], targets.map((t) => [t.name, t.type, t.agent, String(t.agentsOnline), ago(t.createdAt)]));
    }));

  target.command('show <name>')
    .description('show one target')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => withClient(async (client) => {
      const t = await client.json<Target>('GET', `/v1/targets/${encodeURIComponent(name)}`);
      if (opts.json) return printJson(t);
      printFields([['Name', t.name], ['Type', t.type], ['Agent', t.agent], ['Agents online', String(t.agentsOnline)], ['Created', t.createdAt], ['Id', t.id]]);
    }));

  target.command('delete <name>')
    .description('delete a target (refused while it has queued or running tasks)')
    .action(async (name: string) => withClient(async (client) => {
      await client.json('DELETE', `/v1/targets/${encodeURIComponent(name)}`);
      process.stdout.write(`Deleted target ${name}.\n`);
    }));
}
