import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/secret.js');

export function registerSecretCommands(program: Command): void {
  const secret = program.command('secret').description("write-only secrets, sealed on this machine for the target's agents");

  secret
    .command('set <target> <key>')
    .argument('[value]', 'refused, with the reason: a value here would stay in shell history and show in `ps`')
    .description('set a secret from a hidden prompt or stdin (never from the command line)')
    .action(lazyAction(actions, 'setSecret'));

  secret
    .command('list <target>')
    .description("list a target's secrets: names, who set them and when (never values)")
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listSecrets'));

  secret.command('delete <target> <key>').description('delete a secret').action(lazyAction(actions, 'deleteSecret'));
}
