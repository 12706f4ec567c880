import { AddRunbookSourceRequest, RunRunbookRequest, type RunbookInfo, type RunbookSourceInfo } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { ago, printFields, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { parseOrUsage } from '../validate.js';
import { watch } from './run.js';

function sourceLine(s: RunbookSourceInfo): string {
  const at = s.commit ? `commit ${s.commit.slice(0, 12)}, ${s.runbooks} runbook${s.runbooks === 1 ? '' : 's'}` : 'not synced yet';
  return `${s.name}: ${at}${s.lastError ? ` (${s.lastError})` : ''}`;
}

export async function addSource(name: string, opts: { git: string; ref: string; path: string; json?: boolean }): Promise<void> {
  const body = parseOrUsage(AddRunbookSourceRequest, { name, git: opts.git, ref: opts.ref, path: opts.path }, 'runbook source', {
    name: 'NAME',
    git: '--git',
    ref: '--ref',
    path: '--path',
  });
  await withClient(async (client, routes) => {
    const s = await client.call(routes.addRunbookSource, { body });
    if (opts.json) return printJson(s);
    process.stdout.write(`Added runbook source ${sourceLine(s)}.\n`);
  });
}

export async function listSources(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { sources } = await client.call(routes.listRunbookSources);
    if (opts.json) return printJson(sources);
    printTable(
      ['NAME', 'GIT', 'REF', 'COMMIT', 'RUNBOOKS', 'SYNCED', 'LAST ERROR'],
      sources.map((s) => [s.name, s.git, s.ref, s.commit?.slice(0, 12) ?? '-', String(s.runbooks), s.syncedAt ? ago(s.syncedAt) : '-', s.lastError ?? '-']),
    );
  });
}

export async function syncSource(name: string, opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const s = await client.call(routes.syncRunbookSource, { params: { name } });
    if (opts.json) return printJson(s);
    process.stdout.write(`${sourceLine(s)}\n`);
  });
}

export async function listRunbooks(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { runbooks } = await client.call(routes.listRunbooks);
    if (opts.json) return printJson(runbooks);
    printTable(
      ['NAME', 'TARGET TYPE', 'PARAMETERS', 'SOURCE', 'DESCRIPTION'],
      runbooks.map((r) => [r.name, r.targetType, r.params.map((p) => p.name).join(',') || '-', r.source, r.description ?? '-']),
    );
  });
}

function paramLine(p: RunbookInfo['params'][number]): string {
  const parts: string[] = [p.type, p.required ? 'required' : 'optional'];
  if (p.default !== null) parts.push(`default ${p.default}`);
  if (p.allowed) parts.push(`one of ${p.allowed.join('|')}`);
  if (p.pattern !== null) parts.push(`matching ${p.pattern}`);
  return `${parts.join(', ')}${p.description ? ` — ${p.description}` : ''}`;
}

export async function showRunbook(name: string, opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const r = await client.call(routes.getRunbook, { params: { name } });
    if (opts.json) return printJson(r);
    printFields([
      ['Name', r.name],
      ['Description', r.description ?? '-'],
      ['Target type', r.targetType],
      ['Default target', r.defaultTarget ?? '-'],
      ['Source', `${r.source}: ${r.file} at ${r.commit}`],
      ...r.params.map((p): [string, string] => [`Param ${p.name}`, paramLine(p)]),
    ]);
    process.stdout.write(`\n${r.script}${r.script.endsWith('\n') ? '' : '\n'}`);
  });
}

function paramsFrom(pairs: readonly string[] | undefined): Record<string, string> {
  const params: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param ${pair} is not NAME=VALUE.`);
    const key = pair.slice(0, eq);
    if (Object.hasOwn(params, key)) throw new UsageError(`--param ${key} is given twice.`);
    params[key] = pair.slice(eq + 1);
  }
  return params;
}

export async function runRunbook(name: string, opts: { target?: string; param?: string[]; detach?: boolean }): Promise<void> {
  const body = parseOrUsage(RunRunbookRequest, { ...(opts.target ? { target: opts.target } : {}), params: paramsFrom(opts.param) }, 'runbook run', {
    target: '--target',
    params: '--param',
  });
  process.exitCode = await withClient(async (client, routes) => {
    const task = await client.call(routes.runRunbook, { params: { name }, body });
    if (!opts.detach) return watch(client, task);
    process.stdout.write(`${task.id}\n`);
    return 0;
  });
}
