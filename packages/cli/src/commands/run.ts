import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseDurationSeconds, type Task } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { withClient } from '../run-command.js';
import { streamOutput } from '../stream-output.js';
import { exitCodeFor } from '../exit-codes.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function scriptFrom(opts: { command?: string; file?: string }): Promise<string> {
  if (opts.command !== undefined && opts.file !== undefined) throw new UsageError('Give either -c SCRIPT or -f FILE, not both.');
  if (opts.command !== undefined) return opts.command;
  if (opts.file !== undefined) {
    try {
      return readFileSync(opts.file === '-' ? 0 : opts.file, 'utf8');
    } catch (err) {
      throw new UsageError(`Cannot read ${opts.file}: ${(err as Error).message}`);
    }
  }
  if (process.stdin.isTTY) throw new UsageError('No script: give -c SCRIPT, -f FILE, or pipe the script on stdin.');
  return readStdin();
}

function waitingNote(task: Task & { agentsOnline?: number }): string {
  return `ferry: task ${task.id} is queued, waiting for an agent of target ${task.target} (${task.agentsOnline ?? 0} online).`
    + (task.agentsOnline ? '' : ' Start one with `ferry agent start --join-token …` or check `ferry agent list`.') + '\n';
}

export function registerRunCommand(program: Command): void {
  program.command('run <target>')
    .description('run a script on a target, stream its output, exit with its exit code')
    .option('-c, --command <script>', 'the script, inline')
    .option('-f, --file <file>', 'read the script from a file')
    .option('--timeout <duration>', 'stop the task after this long (e.g. 90s, 5m, 1h)')
    .option('--detach', 'print the task id and return without waiting')
    .option('--no-wait', 'fail instead of queueing when no agent of the target is online')
    .action(async (target: string, opts: { command?: string; file?: string; timeout?: string; detach?: boolean; wait: boolean }) => {
      const script = await scriptFrom(opts);
      let timeoutSeconds: number | undefined;
      if (opts.timeout !== undefined) {
        timeoutSeconds = parseDurationSeconds(opts.timeout);
        if (timeoutSeconds === undefined || timeoutSeconds <= 0) throw new UsageError(`--timeout ${opts.timeout} is not a duration; use e.g. 30s, 5m or 1h.`);
      }
      const code = await withClient(async (client) => {
        if (!opts.wait) {
          const t = await client.json<{ agentsOnline: number; name: string }>('GET', `/v1/targets/${encodeURIComponent(target)}`);
          if (t.agentsOnline === 0) throw new UsageError(`No agent of target ${target} is online (--no-wait).`);
        }
        const task = await client.json<Task & { agentsOnline: number }>('POST', '/v1/tasks', { target, script, ...(timeoutSeconds ? { timeoutSeconds } : {}) });
        if (opts.detach) {
          process.stdout.write(`${task.id}\n`);
          return 0;
        }
        process.stderr.write(`ferry: task ${task.id} on ${task.target}\n`);
        if (task.agentsOnline === 0) process.stderr.write(waitingNote(task));
        let interrupts = 0;
        const detach = new AbortController();
        const onSigint = (): void => {
          interrupts++;
          if (interrupts === 1) {
            process.stderr.write(`\nferry: cancelling task ${task.id} (Ctrl-C again to stop watching; the task keeps its cancel request)\n`);
            client.json('POST', `/v1/tasks/${task.id}/cancel`).catch((err: unknown) => process.stderr.write(`ferry: cancel failed: ${(err as Error).message}\n`));
          } else detach.abort();
        };
        process.on('SIGINT', onSigint);
        let warned = task.agentsOnline === 0;
        try {
          await streamOutput(client, task.id, {
            follow: true, signal: detach.signal,
            onWaiting: (t) => {
              if (!warned) process.stderr.write(waitingNote(t));
              warned = true;
            },
          });
        } finally {
          process.off('SIGINT', onSigint);
        }
        if (detach.signal.aborted) return 130;
        const final = await client.json<Task>('GET', `/v1/tasks/${task.id}`);
        if (final.status !== 'succeeded' && final.status !== 'failed') {
          process.stderr.write(`ferry: task ${final.id} ended as ${final.status}${final.reason ? `: ${final.reason}` : ''}\n`);
        }
        return exitCodeFor(final);
      });
      process.exitCode = code;
    });
}
