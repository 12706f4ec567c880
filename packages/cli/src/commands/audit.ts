import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/audit.js');

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit trail');
  audit
    .command('list')
    .description('list audit entries, newest first')
    .option('--limit <n>', 'at most this many', '100')
    .option('--actor <text>', 'only entries whose actor contains this (case-insensitive)')
    .option('--action <prefix>', 'only entries whose action starts with this (secret. or task.create)')
    .option('--target <name>', 'only entries about this target: itself, its secrets, grants, keys and tasks')
    .option('--since <time>', 'only entries at or after this time (ISO 8601, e.g. 2026-01-31T09:00:00Z)')
    .option('--until <time>', 'only entries before this time (ISO 8601)')
    .option('--before <seq>', 'only entries with a sequence number below this (the next page)')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listAudit'));

  audit
    .command('verify')
    .description("recompute the audit log's hash chain and report whether it is intact")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'verifyAudit'));
}
