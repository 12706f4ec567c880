import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/task.js');

export function registerTaskCommands(program: Command): void {
  const task = program.command('task').description('tasks: list, inspect, follow, wait for, approve or reject, cancel');

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

  task
    .command('approve <id>')
    .description('approve a task waiting for review (not your own); the last approval it needs queues it')
    .option('--comment <text>', 'why, for the audit trail and the task')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'approveTask'));

  task
    .command('reject <id>')
    .description('reject a task waiting for review: it ends rejected, with your comment as the reason')
    .requiredOption('--comment <text>', 'why')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'rejectTask'));

  task.command('cancel <id>').description('cancel a queued or running task (SIGTERM, grace period, then SIGKILL)').action(lazyAction(actions, 'cancelTask'));
}

export function registerReviewCommands(program: Command): void {
  const review = program.command('review').description('reviews: tasks on targets with --review wait for approval');
  review
    .command('list')
    .description('tasks waiting for a review you may give (not your own, not approved by you yet)')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listReviews'));
}
