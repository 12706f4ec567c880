/**
 * Reviews from outside, as a user runs them: a target created with `--review any`; `ferry run
 * --detach` prints the id last and the task waits as pending_review; its author's `ferry task
 * approve` fails; a service account made with `ferry token create … --role operator`, in a
 * group granted the target as operator, approves it and the task then succeeds. `ferry run`
 * on such a target says it waits for review and by whom, then streams; a rejected task exits
 * with 77. Tasks run for real on the embedded hosted agent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFerryServer, waitFor, waitForAgents, type CliResult, type ServerHandle } from '../helpers/ferry.js';

const lastLine = (r: CliResult): string => r.stdout.trimEnd().split('\n').at(-1) ?? '';

describe('reviews: the CLI contract', () => {
  let server: ServerHandle;
  let reviewer: string;
  const as = (token: string, args: readonly string[]): Promise<CliResult> => server.cli(args, { env: { FERRY_TOKEN: token } });
  const ok = async (args: readonly string[], token?: string): Promise<CliResult> => {
    const r = token ? await as(token, args) : await server.cli(args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const status = async (id: string): Promise<string> => (JSON.parse((await ok(['task', 'show', id, '--json'])).stdout) as { status: string }).status;

  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
  });
  after(async () => {
    await server?.stop();
  });

  it('target create --review any; run --detach waits as pending_review; the author may not approve, an operator of the granted group may', async () => {
    const created = await ok(['target', 'create', 'prod', '--type', 'shell', '--review', 'any']);
    assert.match(created.stdout, /Its tasks wait for review: any, 1 approval, expires after 1d\./);
    reviewer = lastLine(await ok(['token', 'create', 'reviewer-bot', '--role', 'operator']));
    assert.match(reviewer, /^ferry_u_/);
    await ok(['group', 'create', 'prod-ops']);
    await ok(['group', 'add', 'prod-ops', 'reviewer-bot']);
    await ok(['target', 'grant', 'prod', '--group', 'prod-ops', '--role', 'operator']);

    const run = await ok(['run', 'prod', '--detach', '-c', 'echo reviewed-output']);
    const id = lastLine(run);
    assert.match(id, /^t_/);
    assert.match(run.stderr, /is waiting for review: 1 more approval from anyone but its author who may run tasks on prod/);
    assert.equal(await status(id), 'pending_review');
    const pending = JSON.parse((await ok(['task', 'list', '--status', 'pending_review', '--json'])).stdout) as { id: string }[];
    assert.ok(pending.some((t) => t.id === id));

    const own = await server.cli(['task', 'approve', id]);
    assert.equal(own.code, 255, 'the CLI refuses with its own failure code');
    assert.match(own.stderr, /you cannot approve it.*\(FERRY_E_SELF_APPROVAL\)/);

    const waiting = JSON.parse((await ok(['review', 'list', '--json'], reviewer)).stdout) as { id: string }[];
    assert.deepEqual(
      waiting.map((t) => t.id),
      [id],
    );
    const approved = await ok(['task', 'approve', id, '--comment', 'lgtm'], reviewer);
    // Queued, or already taken by the waiting agent by the time the answer is written.
    assert.match(approved.stdout, new RegExp(`Approved task ${id}; it is (queued|running|succeeded) now\\.`));
    await waitFor(async () => (await status(id)) === 'succeeded', 30_000, 'the approved task to succeed');
    const shown = await ok(['task', 'show', id]);
    assert.match(shown.stdout, /Approved:\s+\S+ by service:reviewer-bot \(token [^)]+\): lgtm/);
    assert.match((await ok(['task', 'logs', id])).stdout, /reviewed-output/);
  });

  it('ferry run says it waits for review and by whom, keeps waiting, then streams', async () => {
    const run = server.spawnCli(['run', 'prod', '-c', 'echo streamed-after-approval']);
    const id = await waitFor(() => /task (t_\S+) is waiting for review/.exec(run.stderr)?.[1], 15_000, 'the waiting note');
    assert.match(run.stderr, /1 more approval from anyone but its author who may run tasks on prod/);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(run.child.exitCode, null, 'still waiting');
    await ok(['task', 'approve', id], reviewer);
    assert.equal(await run.exited, 0, run.stderr);
    assert.match(run.stdout, /streamed-after-approval/);
  });

  it('a rejected task ends ferry run with 77 and says who rejected it and why', async () => {
    const run = server.spawnCli(['run', 'prod', '-c', 'echo never']);
    const id = await waitFor(() => /task (t_\S+) is waiting for review/.exec(run.stderr)?.[1], 15_000, 'the waiting note');
    const noComment = await as(reviewer, ['task', 'reject', id]);
    assert.equal(noComment.code, 255);
    assert.match(noComment.stderr, /--comment/);
    await ok(['task', 'reject', id, '--comment', 'not during business hours'], reviewer);
    assert.equal(await run.exited, 77, run.stderr);
    assert.match(run.stderr, /was rejected: rejected by service:reviewer-bot \(token [^)]+\): not during business hours/);
    assert.doesNotMatch(run.stdout, /never/);
    const wait = await server.cli(['task', 'wait', id]);
    assert.equal(wait.code, 77);
  });

  it('target update changes the rule; bad review flags fail before any request', async () => {
    const updated = await ok(['target', 'update', 'prod', '--review', 'group:prod-ops', '--approvals', '2', '--review-expiry', '4h', '--json']);
    assert.deepEqual((JSON.parse(updated.stdout) as { review: unknown }).review, { rule: 'group', group: 'prod-ops', approvals: 2, expirySeconds: 14400 });
    assert.match((await ok(['target', 'show', 'prod'])).stdout, /Review:\s+group:prod-ops, 2 approvals, expires after 4h/);
    const badRule = await server.cli(['target', 'update', 'prod', '--review', 'everyone']);
    assert.equal(badRule.code, 255);
    assert.match(badRule.stderr, /--review everyone: give none, any .* or group:NAME/);
    const badCount = await server.cli(['target', 'update', 'prod', '--approvals', '0']);
    assert.match(badCount.stderr, /--approvals 0: give a whole number from 1 to 10/);
    const noGroup = await server.cli(['target', 'update', 'prod', '--review', 'group:nobody']);
    assert.match(noGroup.stderr, /No group named "nobody".*FERRY_E_GROUP_NOT_FOUND/);
    await ok(['target', 'update', 'prod', '--review', 'none']);
    const plain = await ok(['run', 'prod', '-c', 'echo no-review-now']);
    assert.match(plain.stdout, /no-review-now/);
  });
});
