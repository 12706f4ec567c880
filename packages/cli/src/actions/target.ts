import { ApiError } from '@ferry/client';
import { CreateTargetRequest, formatSize } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { formatDuration } from '../exit-codes.js';
import { ago, printFields, printJson, printTable } from '../format.js';
import { limitTooHigh, limitsFromFlags } from '../limit-flags.js';
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

function limitFlags(opts: TargetCreateOptions): Record<string, string | undefined> {
  return { timeoutSeconds: opts.timeout, maxOutputBytes: opts.maxOutput, maxProcesses: opts.maxProcesses, memoryBytes: opts.memory };
}

export async function createTarget(name: string, opts: TargetCreateOptions): Promise<void> {
  await withClient(async (client, routes) => {
    const body = parseOrUsage(
      CreateTargetRequest,
      {
        name,
        type: opts.type,
        agent: opts.agent,
        limits: limitsFromFlags(limitFlags(opts)),
        ...(opts.network ? { network: opts.network } : {}),
        ...(opts.redact ? { redact: opts.redact } : {}),
      },
      'target',
      { name: 'NAME', type: '--type', agent: '--agent', network: '--network', redact: '--redact' },
    );
    const t = await client.call(routes.createTarget, { body }).catch((err: unknown) => {
      const tooHigh = err instanceof ApiError && err.code === 'FERRY_E_LIMIT_TOO_HIGH' ? limitTooHigh(err.details, limitFlags(opts)) : undefined;
      throw tooHigh ? new UsageError(tooHigh) : err;
    });
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
      ['Timeout', formatDuration(t.limits.timeoutSeconds)],
      ['Max output', formatSize(t.limits.maxOutputBytes)],
      ['Max processes', String(t.limits.maxProcesses)],
      ['Memory', formatSize(t.limits.memoryBytes)],
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
