import { CreateTargetRequest, parseDurationSeconds, parseSizeBytes } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { ago, printFields, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { parseOrUsage } from '../validate.js';

interface TargetCreateOptions {
  type: string;
  agent: string;
  network?: string;
  redact?: string;
  timeout?: string;
  maxOutput?: string;
  maxProcesses?: string;
  memory?: string;
  json?: boolean;
}

function parseLimit(flag: string, value: string | undefined, parser: (v: string) => number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = parser(value);
  if (n === undefined || !(n > 0)) throw new UsageError(`${flag} ${value} is not valid.`);
  return n;
}

function limitsFrom(opts: TargetCreateOptions): Record<string, number> {
  const limits: Record<string, number | undefined> = {
    timeoutSeconds: parseLimit('--timeout', opts.timeout, parseDurationSeconds),
    maxOutputBytes: parseLimit('--max-output', opts.maxOutput, parseSizeBytes),
    maxProcesses: parseLimit('--max-processes', opts.maxProcesses, (v) => (/^\d+$/.test(v) ? Number(v) : undefined)),
    memoryBytes: parseLimit('--memory', opts.memory, parseSizeBytes),
  };
  return Object.fromEntries(Object.entries(limits).filter((e): e is [string, number] => e[1] !== undefined));
}

export async function createTarget(name: string, opts: TargetCreateOptions): Promise<void> {
  await withClient(async (client, routes) => {
    const body = parseOrUsage(
      CreateTargetRequest,
      {
        name,
        type: opts.type,
        agent: opts.agent,
        limits: limitsFrom(opts),
        ...(opts.network ? { network: opts.network } : {}),
        ...(opts.redact ? { redact: opts.redact } : {}),
      },
      'target',
    );
    const t = await client.call(routes.createTarget, { body });
    if (opts.json) return printJson(t);
    process.stdout.write(`Created target ${t.name} (${t.type}, ${t.agent === 'hosted' ? 'hosted pool' : 'self-hosted agents'}).\n`);
    if (t.agent === 'self-hosted') process.stdout.write(`Start its agent with a token from: ferry agent token create --target ${t.name}\n`);
  });
}

export async function listTargets(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { targets } = await client.call(routes.listTargets);
    if (opts.json) return printJson(targets);
    printTable(
      ['NAME', 'TYPE', 'AGENT', 'NETWORK', 'AGENTS ONLINE', 'CREATED'],
      targets.map((t) => [t.name, t.type, t.agent, t.network, String(t.agentsOnline), ago(t.createdAt)]),
    );
  });
}

export async function showTarget(name: string, opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const t = await client.call(routes.getTarget, { params: { name } });
    if (opts.json) return printJson(t);
    printFields([
      ['Name', t.name],
      ['Type', t.type],
      ['Agent', t.agent],
      ['Network', t.network],
      ['Redaction', t.redact],
      ['Sealing key', t.keyId ?? '(none yet)'],
      ['Timeout', `${t.limits.timeoutSeconds} s`],
      ['Max output', `${t.limits.maxOutputBytes} bytes`],
      ['Max processes', String(t.limits.maxProcesses)],
      ['Memory', `${t.limits.memoryBytes} bytes`],
      ['Agents online', String(t.agentsOnline)],
      ['Created', t.createdAt],
      ['Id', t.id],
    ]);
  });
}

export async function deleteTarget(name: string): Promise<void> {
  await withClient(async (client, routes) => {
    await client.call(routes.deleteTarget, { params: { name } });
    process.stdout.write(`Deleted target ${name}.\n`);
  });
}
