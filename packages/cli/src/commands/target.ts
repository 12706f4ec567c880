import type { Command } from 'commander';
import { parseDurationSeconds, parseSizeBytes, type Target } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { ago, printFields, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';

interface TargetCreateOptions {
  type: string; agent: string; network?: string; redact?: string; timeout?: string; maxOutput?: string; maxProcesses?: string; memory?: string; json?: boolean;
}

function limitsFrom(opts: TargetCreateOptions): Record<string, number> {
  const limits: Record<string, number> = {};
  const parse = (flag: string, value: string | undefined, parser: (v: string) => number | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const n = parser(value);
    if (n === undefined || !(n > 0)) throw new UsageError(`${flag} ${value} is not valid.`);
    return n;
  };
  const timeout = parse('--timeout', opts.timeout, parseDurationSeconds);
  const output = parse('--max-output', opts.maxOutput, parseSizeBytes);
  const procs = parse('--max-processes', opts.maxProcesses, (v) => (/^\d+$/.test(v) ? Number(v) : undefined));
  const memory = parse('--memory', opts.memory, parseSizeBytes);
  if (timeout !== undefined) limits.timeoutSeconds = timeout;
  if (output !== undefined) limits.maxOutputBytes = output;
  if (procs !== undefined) limits.maxProcesses = procs;
  if (memory !== undefined) limits.memoryBytes = memory;
  return limits;
}

export function registerTargetCommands(program: Command): void {
  const target = program.command('target').description('targets: what tasks run against');

  target.command('create <name>')
    .description('register a target')
    .requiredOption('--type <type>', 'target type: shell')
    .option('--agent <mode>', 'who runs its tasks: hosted (default) or self-hosted', 'hosted')
    .option('--network <policy>', 'none (private loopback only; default for shell) or host')
    .option('--timeout <duration>', 'default task timeout, e.g. 30m (server default otherwise)')
    .option('--max-output <size>', 'output kept per task, e.g. 100MiB; the rest is cut with a notice')
    .option('--max-processes <n>', 'processes a task may have at once')
    .option('--memory <size>', 'memory a task may use, e.g. 1GiB')
    .option('--redact <level>', 'server-side redaction before storage: secrets (default), all (also personal data), none')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: TargetCreateOptions) => withClient(async (client) => {
      const t = await client.json<Target>('POST', '/v1/targets', {
        name, type: opts.type, agent: opts.agent, ...(opts.network ? { network: opts.network } : {}), ...(opts.redact ? { redact: opts.redact } : {}), limits: limitsFrom(opts),
      });
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
      printTable(['NAME', 'TYPE', 'AGENT', 'NETWORK', 'AGENTS ONLINE', 'CREATED'], targets.map((t) => [t.name, t.type, t.agent, t.network, String(t.agentsOnline), ago(t.createdAt)]));
    }));

  target.command('show <name>')
    .description('show one target')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => withClient(async (client) => {
      const t = await client.json<Target>('GET', `/v1/targets/${encodeURIComponent(name)}`);
      if (opts.json) return printJson(t);
      printFields([
        ['Name', t.name], ['Type', t.type], ['Agent', t.agent], ['Network', t.network], ['Redaction', t.redact], ['Sealing key', t.keyId ?? '(none yet)'], ['Timeout', `${t.limits.timeoutSeconds} s`],
        ['Max output', `${t.limits.maxOutputBytes} bytes`], ['Max processes', String(t.limits.maxProcesses)], ['Memory', `${t.limits.memoryBytes} bytes`],
        ['Agents online', String(t.agentsOnline)], ['Created', t.createdAt], ['Id', t.id],
      ]);
    }));

  target.command('delete <name>')
    .description('delete a target (refused while it has queued or running tasks)')
    .action(async (name: string) => withClient(async (client) => {
      await client.json('DELETE', `/v1/targets/${encodeURIComponent(name)}`);
      process.stdout.write(`Deleted target ${name}.\n`);
    }));
}
