import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/group.js');

export function registerGroupCommands(program: Command): void {
  const group = program.command('group').description('groups: granted roles on targets (`ferry target grant`), given to their members');
  group.command('create <name>').description('create a group (admins)').option('--json', 'print JSON').action(lazyAction(actions, 'createGroup'));
  group
    .command('add <group> <member>')
    .description("add a member: a person's e-mail or a service account's name")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'addGroupMember'));
  group
    .command('remove <group> <member>')
    .description("take a member out of a group: a person's e-mail or a service account's name")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'removeGroupMember'));
  group.command('list').description('list groups, their members and grants (admins)').option('--json', 'print JSON').action(lazyAction(actions, 'listGroups'));
}
