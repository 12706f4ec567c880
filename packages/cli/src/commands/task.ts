import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/task.js');

export function registerTaskCommands(program: Command): void {
  const task = program.command('task').description('tasks: list, inspect, follow, wait for, cancel');

  task
    .command('list')
    .description('list recent tasks, newest first')
    .option('--target <name>', 'only this target')
    .option('--status <status>', 'only this status')
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listTasks'));

  task.command('show <id>').description('show one task').option('--json', 'print JSON').action(lazyAction(actions, 'showTask'));

  task
    .command('logs <id>')
    .description("print a task's output")
    .option('-f, --follow', "keep printing until the task ends, then exit with the task's exit code")
    .action(lazyAction(actions, 'taskLogs'));

  task
    .command('wait <id>')
    .description('wait until the task ends and exit with its exit code (a line on stderr unless it succeeded)')
    .action(lazyAction(actions, 'waitTask'));

  task.command('cancel <id>').description('cancel a queued or running task (SIGTERM, grace period, then SIGKILL)').action(lazyAction(actions, 'cancelTask'));
}
