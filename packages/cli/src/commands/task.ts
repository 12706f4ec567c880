import type { Command } from 'commander';
import { TaskStatus, type Task } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { ago, printFields, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { streamOutput } from '../stream-output.js';

export function registerTaskCommands(program: Command): void {
  const task = program.command('task').description('tasks: list, inspect, follow, cancel');

  task.command('list')
    .description('list recent tasks, newest first')
    .option('--target <name>', 'only this target')
    .option('--status <status>', 'only this status')
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action(async (opts: { target?: string; status?: string; limit: string; json?: boolean }) => withClient(async (client) => {
      if (opts.status && !TaskStatus.safeParse(opts.status).success) throw new UsageError(`--status must be one of: ${TaskStatus.options.join(', ')}`);
      const q = new URLSearchParams({ limit: opts.limit });
      if (opts.target) q.set('target', opts.target);
      if (opts.status) q.set('status', opts.status);
      const { tasks } = await client.json<{ tasks: Task[] }>('GET', `/v1/tasks?${q.toString()}`);
      if (opts.json) return printJson(tasks);
      printTable(['ID', 'TARGET', 'STATUS', 'EXIT', 'AGENT', 'CREATED'],
        tasks.map((t) => [t.id, t.target, t.status, t.exitCode === null ? '-' : String(t.exitCode), t.agent ?? '-', ago(t.createdAt)]));
    }));

  task.command('show <id>')
    .description('show one task')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => withClient(async (client) => {
      const t = await client.json<Task>('GET', `/v1/tasks/${encodeURIComponent(id)}`);
      if (opts.json) return printJson(t);
      printFields([
        ['Id', t.id], ['Target', t.target], ['Status', t.status], ['Exit code', t.exitCode === null ? '-' : String(t.exitCode)],
        ['Reason', t.reason ?? '-'], ['Agent', t.agent ?? '-'], ['Created', `${t.createdAt} by ${t.createdBy}`],
        ['Started', t.startedAt ?? '-'], ['Finished', t.finishedAt ?? '-'], ['Timeout', `${t.timeoutSeconds} s`], ['Output', `${t.outputBytes} bytes`],
      ]);
    }));

  task.command('logs <id>')
    .description('print a task\'s output')
    .option('-f, --follow', 'keep printing until the task ends')
    .action(async (id: string, opts: { follow?: boolean }) => withClient(async (client) => {
      await client.json<Task>('GET', `/v1/tasks/${encodeURIComponent(id)}`);
      await streamOutput(client, id, { follow: opts.follow === true });
    }));

  task.command('cancel <id>')
    .description('cancel a queued or running task (SIGTERM, grace period, then SIGKILL)')
    .action(async (id: string) => withClient(async (client) => {
      const t = await client.json<Task>('POST', `/v1/tasks/${encodeURIComponent(id)}/cancel`);
      process.stdout.write(t.status === 'cancelled' ? `Cancelled task ${t.id}.\n` : `Asked the agent to stop task ${t.id}.\n`);
    }));
}
