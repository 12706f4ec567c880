import { ApiError, type FerryClient } from '@ferry/client';
import { CreateTaskRequest, MAX_STDIN_BYTES, Routes, base64Encode, envNameProblem, formatSize, type TaskWithAgents } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { readUserFile } from '../files.js';
import { withClient } from '../run-command.js';
import { reportFollowedEnding, streamOutput } from '../stream-output.js';
import { limitTooHigh, limitsFromFlags } from '../limit-flags.js';
import { terminalSafeLines } from '../terminal.js';
import { parseOrUsage } from '../validate.js';
import { awaitedReviewers } from '../review-flags.js';

interface RunOptions {
  command?: string;
  file?: string;
  env: string[];
  /** false with -n/--no-stdin. */
  stdin: boolean;
  timeout?: string;
  detach?: boolean;
  wait: boolean;
}

/** All of stdin, refusing more than `max` bytes (it is held in memory and sent in one request). */
async function readStdin(max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    total += (chunk as Buffer).length;
    if (total > max)
      throw new UsageError(
        `${what} is over ${formatSize(max)}, the most Ferry takes. ${what === 'stdin' ? 'Give the task an empty stdin with -n.' : ''}`.trim(),
      );
  }
  return Buffer.concat(chunks);
}

async function scriptFrom(opts: RunOptions): Promise<string> {
  if (opts.command !== undefined && opts.file !== undefined) throw new UsageError('Give either -c SCRIPT or -f FILE, not both.');
  if (opts.command !== undefined) return opts.command;
  if (opts.file !== undefined) {
    return readUserFile('-f', opts.file === '-' ? 0 : opts.file);
  }
  if (process.stdin.isTTY) throw new UsageError('No script: give -c SCRIPT, -f FILE, or pipe the script on stdin.');
  return (await readStdin(MAX_SCRIPT_STDIN_BYTES, 'the script on stdin')).toString('utf8');
}

const MAX_SCRIPT_STDIN_BYTES = 1024 * 1024;

/**
 * The task's stdin: this command's own, when the script came from -c or -f and stdin is not a
 * terminal (a terminal would wait for typing nobody means to do); none with -n. When the script
 * itself came from stdin, there is nothing left to give.
 */
async function taskStdin(opts: RunOptions): Promise<Buffer | undefined> {
  const scriptFromArgs = opts.command !== undefined || (opts.file !== undefined && opts.file !== '-');
  if (!scriptFromArgs || !opts.stdin || process.stdin.isTTY) return undefined;
  const bytes = await readStdin(MAX_STDIN_BYTES, 'stdin');
  return bytes.length > 0 ? bytes : undefined;
}

/** `--env K=V` (repeatable) as a map; names checked here so the message names the flag. */
function envFrom(pairs: readonly string[]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env ${pair} is not KEY=VALUE; write e.g. --env REGION=eu-west-1.`);
    const name = pair.slice(0, eq);
    const problem = envNameProblem(name);
    if (problem) throw new UsageError(`--env ${name}: ${problem}.`);
    if (Object.hasOwn(env, name)) throw new UsageError(`--env ${name} is given twice.`);
    env[name] = pair.slice(eq + 1);
  }
  return env;
}

/** Arguments must follow `--`, so `ferry run T echo hi` (a forgotten -c) is not taken as two arguments. */
function argsFrom(args: readonly string[]): string[] | undefined {
  if (args.length === 0) return undefined;
  if (!process.argv.includes('--'))
    throw new UsageError(`Put the script's arguments after --, e.g. ferry run TARGET -f script.sh -- ${args.join(' ')} (to run a command, give it with -c).`);
  return [...args];
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

/** Says who a task waiting for review waits for, and each decision as it comes. */
function reviewNotes(): (task: TaskWithAgents) => void {
  let said = -1;
  return (task) => {
    const review = task.review;
    if (!review) return;
    for (const d of review.decisions.slice(Math.max(said, 0))) {
      process.stderr.write(
        `ferry: task ${task.id} ${d.decision === 'approve' ? 'approved' : 'rejected'} by ${d.by}${d.comment ? `: ${terminalSafeLines(d.comment)}` : ''}\n`,
      );
    }
    if (task.status === 'pending_review' && said !== review.decisions.length) {
      process.stderr.write(`ferry: task ${task.id} is waiting for review: ${awaitedReviewers(review, task.target)}.\n`);
    }
    said = review.decisions.length;
  };
}

/** Streams the task until it ends and returns its exit code (also `ferry runbook run`). */
export async function watch(client: FerryClient, task: TaskWithAgents): Promise<number> {
  process.stderr.write(`ferry: task ${task.id} on ${task.target}\n`);
  const noteReview = reviewNotes();
  noteReview(task);
  let warned = task.status === 'queued' && task.agentsOnline === 0;
  if (warned) process.stderr.write(waitingNote(task));
  const detach = new AbortController();
  const onSigint = interruptHandler(client, task.id, detach);
  process.on('SIGINT', onSigint);
  let ended: string | undefined;
  try {
    ended = await streamOutput(client, task.id, {
      follow: true,
      signal: detach.signal,
      onWaiting: (t) => {
        noteReview(t);
        if (t.status !== 'queued' || warned) return;
        process.stderr.write(waitingNote(t));
        warned = true;
      },
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (detach.signal.aborted) return 130;
  return reportFollowedEnding(client, task.id, ended);
}

export async function runTask(target: string, rawArgs: string[], opts: RunOptions): Promise<void> {
  const args = argsFrom(rawArgs);
  const env = envFrom(opts.env);
  const { timeoutSeconds } = limitsFromFlags({ timeoutSeconds: opts.timeout });
  const script = await scriptFrom(opts);
  const stdin = await taskStdin(opts);
  const input = { ...(stdin ? { stdin: base64Encode(stdin) } : {}), ...(args ? { args } : {}), ...(env ? { env } : {}) };
  // Checked here against the API's own schema, so a problem is named by the flag that set it.
  const body = parseOrUsage(CreateTaskRequest, { target, script, ...input, ...(timeoutSeconds ? { timeoutSeconds } : {}) }, 'task', {
    target: 'TARGET',
    script: 'the script',
    args: 'the arguments after --',
    env: '--env',
    timeoutSeconds: '--timeout',
  });
  process.exitCode = await withClient(async (client, routes) => {
    if (!opts.wait) {
      const t = await client.call(routes.getTarget, { params: { name: target } });
      if (t.agentsOnline === 0) throw new UsageError(`No agent of target ${target} is online (--no-wait).`);
    }
    const task = await client.call(routes.createTask, { body }).catch((err: unknown) => {
      const tooHigh =
        err instanceof ApiError && err.code === 'FERRY_E_LIMIT_TOO_HIGH' ? limitTooHigh(err.details, { timeoutSeconds: opts.timeout }) : undefined;
      throw tooHigh ? new UsageError(tooHigh) : err;
    });
    if (!opts.detach) return watch(client, task);
    if (task.status === 'pending_review' && task.review)
      process.stderr.write(`ferry: task ${task.id} is waiting for review: ${awaitedReviewers(task.review, task.target)}.\n`);
    process.stdout.write(`${task.id}\n`);
    return 0;
  });
}
