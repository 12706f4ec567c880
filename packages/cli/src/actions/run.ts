import { readFileSync } from 'node:fs';
import type { FerryClient } from '@ferry/client';
import { Routes, parseDurationSeconds, type TaskWithAgents } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { withClient } from '../run-command.js';
import { streamOutput } from '../stream-output.js';
import { exitCodeFor } from '../exit-codes.js';
import { terminalSafeLines } from '../terminal.js';

interface RunOptions {
  command?: string;
  file?: string;
  timeout?: string;
  detach?: boolean;
  wait: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function scriptFrom(opts: RunOptions): Promise<string> {
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

function timeoutFrom(opts: RunOptions): number | undefined {
  if (opts.timeout === undefined) return undefined;
  const seconds = parseDurationSeconds(opts.timeout);
  if (seconds === undefined || seconds <= 0) throw new UsageError(`--timeout ${opts.timeout} is not a duration; use e.g. 30s, 5m or 1h.`);
  return seconds;
}

function waitingNote(task: TaskWithAgents): string {
  return (
    `ferry: task ${task.id} is queued, waiting for an agent of target ${task.target} (${task.agentsOnline} online).` +
    (task.agentsOnline ? '' : ' Start one with `ferry agent start --join-token …` or check `ferry agent list`.') +
    '\n'
  );
}

/** The first Ctrl-C asks the server to cancel; a second stops watching. */
function interruptHandler(client: FerryClient, taskId: string, detach: AbortController): () => void {
  let interrupts = 0;
  return () => {
    interrupts++;
    if (interrupts > 1) return detach.abort();
    process.stderr.write(`\nferry: cancelling task ${taskId} (Ctrl-C again to stop watching; the task keeps its cancel request)\n`);
    client
      .call(Routes.cancelTask, { params: { id: taskId } })
      .catch((err: unknown) => process.stderr.write(`ferry: cancel failed: ${terminalSafeLines((err as Error).message)}\n`));
  };
}

async function watch(client: FerryClient, task: TaskWithAgents): Promise<number> {
  process.stderr.write(`ferry: task ${task.id} on ${task.target}\n`);
  let warned = task.agentsOnline === 0;
  if (warned) process.stderr.write(waitingNote(task));
  const detach = new AbortController();
  const onSigint = interruptHandler(client, task.id, detach);
  process.on('SIGINT', onSigint);
  try {
    await streamOutput(client, task.id, {
      follow: true,
      signal: detach.signal,
      onWaiting: (t) => {
        if (!warned) process.stderr.write(waitingNote(t));
        warned = true;
      },
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (detach.signal.aborted) return 130;
  const final = await client.call(Routes.getTask, { params: { id: task.id } });
  if (final.status !== 'succeeded' && final.status !== 'failed') {
    process.stderr.write(`ferry: task ${final.id} ended as ${final.status}${final.reason ? `: ${terminalSafeLines(final.reason)}` : ''}\n`);
  }
  return exitCodeFor(final);
}

export async function runTask(target: string, opts: RunOptions): Promise<void> {
  const script = await scriptFrom(opts);
  const timeoutSeconds = timeoutFrom(opts);
  process.exitCode = await withClient(async (client, routes) => {
    if (!opts.wait) {
      const t = await client.call(routes.getTarget, { params: { name: target } });
      if (t.agentsOnline === 0) throw new UsageError(`No agent of target ${target} is online (--no-wait).`);
    }
    const task = await client.call(routes.createTask, { body: { target, script, ...(timeoutSeconds ? { timeoutSeconds } : {}) } });
    if (!opts.detach) return watch(client, task);
    process.stdout.write(`${task.id}\n`);
    return 0;
  });
}
