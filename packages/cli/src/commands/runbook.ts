import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/runbook.js');
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerRunbookCommands(program: Command): void {
  const runbook = program.command('runbook').description('runbooks: vetted, parameterized scripts from Git repositories');
  const source = runbook.command('source').description('Git repositories of runbooks (admins add and sync them)');
  source
    .command('add <name>')
    .description('register a repository and sync it now')
    .requiredOption('--git <url>', 'https://…, ssh://…, user@host:path, or a path on the server')
    .option('--ref <ref>', 'branch, tag or commit (default: the repository HEAD)', 'HEAD')
    .option('--path <dir>', 'the folder holding the runbooks (default: the top)', '')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'addSource'));
  source.command('list').description('sources, their commit and the last sync error').option('--json', 'print JSON').action(lazyAction(actions, 'listSources'));
  source.command('sync <name>').description('fetch the source now').option('--json', 'print JSON').action(lazyAction(actions, 'syncSource'));

  runbook.command('list').description('runbooks of every source').option('--json', 'print JSON').action(lazyAction(actions, 'listRunbooks'));
  runbook
    .command('show <name>')
    .description('a runbook: its parameters, target type, commit and script')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'showRunbook'));
  runbook
    .command('run <name>')
    .description('run a runbook: parameters are checked, then given to the script as environment variables; streams like ferry run')
    .option('--target <target>', "the target (default: the runbook's default target)")
    .option('--param <k=v>', 'a parameter; repeatable', collect)
    .option('--detach', 'print the task id and return')
    .action(lazyAction(actions, 'runRunbook'));
}
