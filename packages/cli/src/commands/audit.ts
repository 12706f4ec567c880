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
}
