import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/token.js');

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('API tokens: service accounts for automation, and more tokens for yourself');
  token
    .command('create <name>')
    .description(
      'make a service account NAME with --role (never above yours), or with --personal another token for yourself; prints the token once, as the last line',
    )
    .option('--role <role>', "the service account's role: admin, operator or viewer")
    .option('--personal', 'a token for yourself instead of a new service account')
    .option('--expires <duration>', 'the token stops working after this long, e.g. 30d (default: never)')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'createToken'));
  token
    .command('list')
    .description('list tokens: name, principal, role, created, expires, last used')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listTokens'));
  token.command('revoke <id-or-name>').description('revoke a token at once').action(lazyAction(actions, 'revokeToken'));
}
