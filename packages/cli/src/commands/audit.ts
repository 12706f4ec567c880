import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/audit.js');

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit trail');
  audit
    .command('list')
    .description('list audit entries, newest first')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listAudit'));

  audit
    .command('verify')
    .description("recompute the audit log's hash chain and report whether it is intact")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'verifyAudit'));
}
