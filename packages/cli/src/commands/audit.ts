import type { Command } from 'commander';
import type { AuditEntry } from '@ferry/protocol';
import { printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit trail');
  audit.command('list')
    .description('list audit entries, newest first')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'print JSON')
    .action(async (opts: { limit: string; json?: boolean }) => withClient(async (client) => {
      const { entries } = await client.json<{ entries: AuditEntry[] }>('GET', `/v1/audit?limit=${encodeURIComponent(opts.limit)}`);
      if (opts.json) return printJson(entries);
      printTable(['SEQ', 'AT', 'ACTOR', 'ACTION', 'SUBJECT'], entries.map((e) => [String(e.seq), e.at, e.actor, e.action, e.subject]));
    }));

  audit.command('verify')
    .description('recompute the audit log\'s hash chain and report whether it is intact')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => withClient(async (client) => {
      const res = await client.json<{ ok: boolean; entries: number; brokenAt: number | null }>('GET', '/v1/audit/verify');
      if (opts.json) printJson(res);
      else process.stdout.write(res.ok ? `Audit log intact: ${res.entries} entries, hash chain verified.\n` : `Audit log TAMPERED: the hash chain breaks at entry ${res.brokenAt ?? '?'}.\n`);
      if (!res.ok) process.exitCode = 1;
    }));
}
