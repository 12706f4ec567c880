import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

export function registerRunCommand(program: Command): void {
  program
    .command('run <target>')
    .description('run a script on a target, stream its output, exit with its exit code')
    .option('-c, --command <script>', 'the script, inline')
    .option('-f, --file <file>', 'read the script from a file')
    .option('--timeout <duration>', 'stop the task after this long (e.g. 90s, 5m, 1h)')
    .option('--detach', 'print the task id and return without waiting')
    .option('--no-wait', 'fail instead of queueing when no agent of the target is online')
    .action(lazyAction(() => import('../actions/run.js'), 'runTask'));
}
