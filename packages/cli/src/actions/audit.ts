import { AuditQuery } from '@ferry/protocol';
import { printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { countFlag, parseOrUsage } from '../validate.js';

export async function listAudit(opts: { limit: string; json?: boolean }): Promise<void> {
  const query = parseOrUsage(AuditQuery, { limit: countFlag('--limit', opts.limit, 1, 10000) }, '--limit');
  await withClient(async (client, routes) => {
    const { entries } = await client.call(routes.listAudit, { query });
    if (opts.json) return printJson(entries);
    printTable(
      ['SEQ', 'AT', 'ACTOR', 'ACTION', 'SUBJECT'],
      entries.map((e) => [String(e.seq), e.at, e.actor, e.action, e.subject]),
    );
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
