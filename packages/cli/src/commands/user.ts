import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/user.js');

export function registerUserCommands(program: Command): void {
  const user = program.command('user').description('people: invite them by e-mail, change their role, remove them');
  user
    .command('invite <email>')
    .description('invite a person (admins); prints a one-time invitation URL, valid for 7 days, as the last line')
    .requiredOption('--role <role>', "the person's role: admin, operator or viewer")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'inviteUser'));
  user
    .command('accept <url>')
    .description('accept an invitation: set your password (hidden prompt, or stdin) and sign in')
    .option('--ca-fingerprint <sha256>', "SHA-256 fingerprint of the server's CA, as `ferry server` prints it")
    .option('--ca-file <file>', "the server's CA certificate (ca.pem in its data folder)")
    .action(lazyAction(actions, 'acceptInvitation'));
  user.command('list').description('list people and pending invitations (admins)').option('--json', 'print JSON').action(lazyAction(actions, 'listUsers'));
  user
    .command('set-role <email> <role>')
    .description("change a person's role: admin, operator or viewer (admins)")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'setUserRole'));
  user
    .command('remove <email>')
    .description('remove a person (admins): their tokens and sessions stop working at once')
    .action(lazyAction(actions, 'removeUser'));
}
