import { ListTasksQuery, TaskStatus } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { ago, printFields, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { streamOutput } from '../stream-output.js';
import { parseOrUsage } from '../validate.js';

export async function listTasks(opts: { target?: string; status?: string; limit: string; json?: boolean }): Promise<void> {
  if (opts.status && !TaskStatus.safeParse(opts.status).success) throw new UsageError(`--status must be one of: ${TaskStatus.options.join(', ')}`);
  const query = parseOrUsage(ListTasksQuery, { limit: opts.limit, target: opts.target, status: opts.status }, 'task filter');
  await withClient(async (client, routes) => {
    const { tasks } = await client.call(routes.listTasks, { query });
    if (opts.json) return printJson(tasks);
    printTable(
      ['ID', 'TARGET', 'STATUS', 'EXIT', 'AGENT', 'CREATED'],
      tasks.map((t) => [t.id, t.target, t.status, t.exitCode === null ? '-' : String(t.exitCode), t.agent ?? '-', ago(t.createdAt)]),
    );
  });
}

export async function showTask(id: string, opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const t = await client.call(routes.getTask, { params: { id } });
    if (opts.json) return printJson(t);
    printFields([
      ['Id', t.id],
      ['Target', t.target],
      ['Status', t.status],
      ['Exit code', t.exitCode === null ? '-' : String(t.exitCode)],
      ['Reason', t.reason ?? '-'],
      ['Agent', t.agent ?? '-'],
      ['Created', `${t.createdAt} by ${t.createdBy}`],
      ['Started', t.startedAt ?? '-'],
      ['Finished', t.finishedAt ?? '-'],
      ['Timeout', `${t.timeoutSeconds} s`],
      ['Output', t.outputExpiredAt ? `removed by the server's output retention on ${t.outputExpiredAt}` : `${t.outputBytes} bytes`],
    ]);
  });
}

export async function taskLogs(id: string, opts: { follow?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const task = await client.call(routes.getTask, { params: { id } }); // a clear "no such task" before any output
    if (task.outputExpiredAt) {
      process.stderr.write(`ferry: the output of task ${task.id} was removed by the server's output retention on ${task.outputExpiredAt}\n`);
      return;
    }
    await streamOutput(client, id, { follow: opts.follow === true });
  });
}

export async function cancelTask(id: string): Promise<void> {
  await withClient(async (client, routes) => {
    const t = await client.call(routes.cancelTask, { params: { id } });
    process.stdout.write(t.status === 'cancelled' ? `Cancelled task ${t.id}.\n` : `Asked the agent to stop task ${t.id}.\n`);
  });
}
