import { AuditQuery } from '@ferry/protocol';
import { printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { countFlag, parseOrUsage } from '../validate.js';

interface AuditListOptions {
  limit: string;
  actor?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
  before?: string;
  json?: boolean;
}

export async function listAudit(opts: AuditListOptions): Promise<void> {
  const query = parseOrUsage(
    AuditQuery,
    {
      limit: countFlag('--limit', opts.limit, 1, 10000),
      actor: opts.actor,
      action: opts.action,
      target: opts.target,
      since: opts.since,
      until: opts.until,
      before: opts.before === undefined ? undefined : countFlag('--before', opts.before, 1, Number.MAX_SAFE_INTEGER),
    },
    'audit filter',
    { limit: '--limit', actor: '--actor', action: '--action', target: '--target', since: '--since', until: '--until', before: '--before' },
  );
  await withClient(async (client, routes) => {
    const { entries, nextBefore } = await client.call(routes.listAudit, { query });
    if (opts.json) return printJson(entries);
    printTable(
      ['SEQ', 'AT', 'ACTOR', 'ACTION', 'SUBJECT'],
      entries.map((e) => [String(e.seq), e.at, e.actor, e.action, e.subject]),
    );
    if (nextBefore) process.stderr.write(`More entries: add --before ${nextBefore}.\n`);
  });
}

export async function verifyAudit(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const res = await client.call(routes.verifyAudit);
    if (opts.json) printJson(res);
    else
      process.stdout.write(
        res.ok
          ? `Audit log intact: ${res.entries} entries, hash chain verified.\n`
          : `Audit log TAMPERED: the hash chain breaks at entry ${res.brokenAt ?? '?'}.\n`,
      );
    if (!res.ok) process.exitCode = 1;
  });
}
