import { agentInstallCommands, parseDurationSeconds } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { ago, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';

export async function createJoinToken(opts: { target?: string[]; hosted?: boolean; shared?: boolean; ttl: string; json?: boolean }): Promise<void> {
  if (!!opts.hosted === !!opts.target?.length) throw new UsageError('Give either --target NAME (a self-hosted agent for that target) or --hosted.');
  if (opts.shared && !opts.hosted) throw new UsageError('--shared goes with --hosted (an agent of the pool every organization shares).');
  const ttlSeconds = parseDurationSeconds(opts.ttl);
  if (ttlSeconds === undefined) throw new UsageError(`--ttl ${opts.ttl} is not a duration; use e.g. 1h or 7d.`);
  await withClient(async (client, routes) => {
    const res = await client.call(routes.createJoinToken, {
      // `shared` only when asked for, so this client still talks to servers that predate it.
      body: { hosted: !!opts.hosted, ...(opts.shared ? { shared: true } : {}), targets: opts.target ?? [], ttlSeconds: Math.round(ttlSeconds) },
    });
    if (opts.json) return printJson(res);
    process.stdout.write(`${res.token}\n`);
    // The token is on the screen already when stdout is a terminal: then the commands carry it,
    // ready to paste (the web UI shows the same ones). Piped, it stays out of stderr.
    const commands = agentInstallCommands(process.stdout.isTTY ? res.token : '<token>');
    process.stderr.write(
      `Join token ${res.id}: works once, until ${res.expiresAt}. On the agent's host, start the agent with:\n  ${commands.start}\n` +
        `or install it as a systemd service:\n  ${commands.service}\n`,
    );
  });
}

export async function listAgents(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { agents } = await client.call(routes.listAgents);
    if (opts.json) return printJson(agents);
    printTable(
      ['ID', 'NAME', 'HOST', 'VERSION', 'TARGETS', 'STATUS', 'RUNNING', 'LAST CONTACT', 'HOLDS KEYS OF'],
      agents.map((a) => [
        a.id,
        a.name,
        a.hostname,
        a.version,
        a.targets.join(','),
        a.revoked ? 'revoked' : a.online ? 'online' : 'offline',
        String(a.runningTasks),
        ago(a.lastSeenAt),
        a.holdsKeys.join(',') || '-',
      ]),
    );
  });
}

export async function pruneAgents(opts: { offlineFor: string; json?: boolean }): Promise<void> {
  const seconds = parseDurationSeconds(opts.offlineFor);
  if (seconds === undefined || seconds < 60) throw new UsageError(`--offline-for ${opts.offlineFor} is not a duration of a minute or more; use e.g. 1h or 7d.`);
  await withClient(async (client, routes) => {
    const { pruned } = await client.call(routes.pruneAgents, { body: { offlineForSeconds: Math.round(seconds) } });
    if (opts.json) return printJson(pruned);
    if (pruned.length === 0) {
      process.stdout.write(`No agent to prune (none revoked or offline for longer than ${opts.offlineFor}).\n`);
      return;
    }
    printTable(
      ['ID', 'NAME', 'PRUNED BECAUSE'],
      pruned.map((a) => [a.id, a.name, a.why === 'revoked' ? 'revoked' : `offline for over ${opts.offlineFor}`]),
    );
  });
}

export async function revokeAgent(id: string, opts: { force?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    await client.call(routes.revokeAgent, { params: { id }, query: { force: opts.force ? 'true' : 'false' } });
    process.stdout.write(`Revoked agent ${id}.\n`);
  });
}

export async function startAgent(opts: Record<string, string | undefined>): Promise<void> {
  const { agentConfigFromFlags, runAgent } = await import('@ferry/agent');
  await runAgent(agentConfigFromFlags(opts, process.env));
}
