import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerRunCommand(program: Command): void {
  program
    .command('run <target> [args...]')
    .description('run a script on a target, stream its output, exit with its exit code')
    .option('-c, --command <script>', 'the script, inline')
    .option('-f, --file <file>', 'read the script from a file')
    .option('-e, --env <KEY=VALUE>', 'a plain (unmasked) environment variable for the task; repeatable', collect, [])
    .option('-n, --no-stdin', "with -c or -f: give the task an empty stdin instead of this command's stdin")
    .option('--timeout <duration>', 'stop the task after this long (e.g. 90s, 5m, 1h)')
    .option('--detach', 'print the task id and return without waiting')
    .option('--no-wait', 'fail instead of queueing when no agent of the target is online')
    .addHelpText(
      'after',
      `
With -c or -f, what this command reads on stdin (up to 1 MiB) is the task's stdin: echo data | ferry run T -c cat
Without them, stdin is the script. Arguments after -- are the script's $1 $2 …: ferry run T -f deploy.sh -- v1.2 eu`,
    )
    .action(lazyAction(() => import('../actions/run.js'), 'runTask'));
}
