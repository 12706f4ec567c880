import { withRetry, type FerryClient } from '@ferry/client';
import { ApproveTaskRequest, ListTasksQuery, RejectTaskRequest, Routes, TaskStatus, formatSize, isTerminal, type Task } from '@ferry/protocol';
import { UsageError } from '../errors.js';
import { formatDuration, reportEnding } from '../exit-codes.js';
import { ago, printFields, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { reportFollowedEnding, streamOutput } from '../stream-output.js';
import { countFlag, parseOrUsage } from '../validate.js';
import { awaitedReviewers } from '../review-flags.js';

export async function listTasks(opts: { target?: string; status?: string; limit: string; json?: boolean }): Promise<void> {
  if (opts.status && !TaskStatus.safeParse(opts.status).success) throw new UsageError(`--status must be one of: ${TaskStatus.options.join(', ')}`);
  const limit = countFlag('--limit', opts.limit, 1, 1000);
  const query = parseOrUsage(ListTasksQuery, { limit, target: opts.target, status: opts.status }, 'task filter', { target: '--target', status: '--status' });
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
      ['Timeout', formatDuration(t.timeoutSeconds)],
      ['Output', t.outputExpiredAt ? `removed by the server's output retention on ${t.outputExpiredAt}` : formatSize(t.outputBytes)],
      ...inputFields(t),
      ...reviewFields(t),
    ]);
  });
}

/** The review a task waits for or went through: the rule, each decision, and who is still awaited. */
function reviewFields(t: Task): [string, string][] {
  const review = t.review;
  if (!review) return [];
  const rule = review.rule === 'group' ? `group:${review.group ?? '?'}` : review.rule;
  const fields: [string, string][] = [['Review', `${rule}, ${review.approvalsNeeded} approval${review.approvalsNeeded === 1 ? '' : 's'} needed`]];
  for (const d of review.decisions) fields.push([d.decision === 'approve' ? 'Approved' : 'Rejected', `${d.at} by ${d.by}${d.comment ? `: ${d.comment}` : ''}`]);
  if (t.status === 'pending_review') fields.push(['Waiting for', awaitedReviewers(review, t.target)]);
  fields.push(['Reviewed binding', review.binding]);
  return fields;
}

export async function approveTask(id: string, opts: { comment?: string; json?: boolean }): Promise<void> {
  const body = parseOrUsage(ApproveTaskRequest, opts.comment === undefined ? {} : { comment: opts.comment }, 'approval', { comment: '--comment' });
  await withClient(async (client, routes) => {
    const t = await client.call(routes.approveTask, { params: { id }, body });
    if (opts.json) return printJson(t);
    if (t.status === 'pending_review' && t.review) process.stdout.write(`Approved task ${t.id}; it still needs ${awaitedReviewers(t.review, t.target)}.\n`);
    else process.stdout.write(`Approved task ${t.id}; it is ${t.status} now.\n`);
  });
}

export async function rejectTask(id: string, opts: { comment: string; json?: boolean }): Promise<void> {
  const body = parseOrUsage(RejectTaskRequest, { comment: opts.comment }, 'rejection', { comment: '--comment' });
  await withClient(async (client, routes) => {
    const t = await client.call(routes.rejectTask, { params: { id }, body });
    if (opts.json) return printJson(t);
    process.stdout.write(`Rejected task ${t.id}.\n`);
  });
}

/** `ferry review list`: the tasks waiting for a review the caller may give. */
export async function listReviews(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { tasks } = await client.call(routes.listReviews);
    if (opts.json) return printJson(tasks);
    printTable(
      ['ID', 'TARGET', 'AUTHOR', 'APPROVALS', 'EXPIRES', 'CREATED'],
      tasks.map((t) => {
        const have = t.review?.decisions.filter((d) => d.decision === 'approve').length ?? 0;
        return [t.id, t.target, t.createdBy, `${have}/${t.review?.approvalsNeeded ?? 0}`, t.review?.expiresAt ?? '-', ago(t.createdAt)];
      }),
    );
  });
}

/** Arguments, plain environment and stdin, when the task had any. */
function inputFields(t: Task): [string, string][] {
  const fields: [string, string][] = [];
  if (t.args?.length) fields.push(['Arguments', t.args.map((a) => JSON.stringify(a)).join(' ')]);
  for (const [k, v] of Object.entries(t.env ?? {})) fields.push([`Env ${k}`, v]);
  if (t.stdinBytes) fields.push(['Stdin', formatSize(t.stdinBytes)]);
  return fields;
}

/** With --follow, the command ends when the task does, with its exit code and, for any ending but success, a line on stderr. */
export async function taskLogs(id: string, opts: { follow?: boolean }): Promise<void> {
  process.exitCode = await withClient(async (client, routes) => {
    const task = await client.call(routes.getTask, { params: { id } }); // a clear "no such task" before any output
    if (task.outputExpiredAt) {
      process.stderr.write(`ferry: the output of task ${task.id} was removed by the server's output retention on ${task.outputExpiredAt}\n`);
      if (!opts.follow) return 0;
      return reportEnding(task);
    }
    const ended = await streamOutput(client, id, { follow: opts.follow === true });
    if (!opts.follow) return 0;
    return reportFollowedEnding(client, id, ended);
  });
}

/**
 * An output offset past any task's end: a long poll there gets no output, and the server answers
 * it when the task ends (output arriving meanwhile does not answer it).
 */
const PAST_THE_END = Number.MAX_SAFE_INTEGER;
const LONG_POLL_SECONDS = 20;

/**
 * Waits until the task has ended: the server wakes a long poll on the task's output the moment
 * its final status is stored, so the end is known at once (it was a poll every 2 s).
 */
async function untilEnded(client: FerryClient, id: string): Promise<Task> {
  for (;;) {
    const task = await withRetry(() => client.call(Routes.getTask, { params: { id } }), { maxAttempts: 40 });
    if (isTerminal(task.status)) return task;
    const asked = Date.now();
    const page = await withRetry(
      () => client.call(Routes.readOutput, { params: { id }, query: { offset: PAST_THE_END, waitSeconds: LONG_POLL_SECONDS, maxBytes: 1 } }),
      { maxAttempts: 40 },
    );
    // A server shutting down answers at once without the end: do not spin against it.
    if (!page.complete && Date.now() - asked < 1000) await new Promise((r) => setTimeout(r, 500));
  }
}

/** `ferry task wait ID`: no output; exits with the task's code, with a line on stderr for any ending but success. */
export async function waitTask(id: string): Promise<void> {
  process.exitCode = await withClient(async (client) => reportEnding(await untilEnded(client, id)));
}

export async function cancelTask(id: string): Promise<void> {
  await withClient(async (client, routes) => {
    const t = await client.call(routes.cancelTask, { params: { id } });
    process.stdout.write(t.status === 'cancelled' ? `Cancelled task ${t.id}.\n` : `Asked the agent to stop task ${t.id}.\n`);
  });
}
