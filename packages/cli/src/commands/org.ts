import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/org.js');

export function registerOrgCommands(program: Command): void {
  const org = program.command('org').description('organizations: each one isolated from the others');
  org
    .command('create <name>')
    .description("create an organization (instance administrators only); prints its admin's token once, as the last line")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'createOrg'));
  org
    .command('list')
    .description('list organizations (instance administrators see all, others their own)')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listOrgs'));
}
