/**
 * Webhooks against a real HTTPS receiver on loopback (its own certificate, trusted through the
 * server's `webhookCa`): the signature verifies with the README's own recipe (the code block is
 * read from README.md and run); a receiver that fails three times then recovers gets the event
 * exactly once more; a receiver that hangs delays no task; a server killed with deliveries
 * queued delivers them after its restart. Tasks run for real on the embedded agent.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ROOT, startFerryServer, tempDir, waitFor, waitForAgents, type CliResult, type ServerHandle } from '../helpers/ferry.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from '../helpers/webhook-receiver.js';

type Verify = (secret: string, headers: ReceivedRequest['headers'], body: string, nowSeconds?: number) => boolean;

const lastLine = (r: CliResult): string => r.stdout.trimEnd().split('\n').at(-1) ?? '';
const header = (r: ReceivedRequest, name: string): string => String(r.headers[name] ?? '');
const payload = (r: ReceivedRequest): { event: string; task: { id: string; status: string; scriptExcerpt: string } } =>
  JSON.parse(r.body) as { event: string; task: { id: string; status: string; scriptExcerpt: string } };

/** The README's receiver recipe, as written there. */
async function readmeRecipe(): Promise<Verify> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const code = /<!-- webhook-recipe -->\n```js\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code, 'README.md has the webhook-recipe code block');
  const file = join(tempDir('recipe'), 'verify.mjs');
  writeFileSync(file, code);
  return ((await import(pathToFileURL(file).href)) as { verifyFerryWebhook: Verify }).verifyFerryWebhook;
}

describe('webhooks: signed deliveries from a durable queue', () => {
  let receiver: WebhookReceiver;
  let server: ServerHandle;
  const env = (): NodeJS.ProcessEnv => ({ FERRY_WEBHOOK_CA: receiver.caFile, FERRY_WEBHOOK_RETRY_BASE: '200ms' });
  const ok = async (s: ServerHandle, args: readonly string[]): Promise<CliResult> => {
    const r = await s.cli(args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const forTask = (id: string): ReceivedRequest[] => receiver.requests.filter((r) => r.body.includes(id));

  before(async () => {
    receiver = await startWebhookReceiver();
    server = await startFerryServer({ env: env() });
    await waitForAgents(server, 1);
    await ok(server, ['target', 'create', 'box', '--type', 'shell']);
  });
  after(async () => {
    await server?.stop();
    await receiver?.close();
  });

  it("the signature verifies with the README's recipe; a changed body or an old timestamp does not", async () => {
    const secret = lastLine(await ok(server, ['webhook', 'create', receiver.url, '--events', 'task.finished']));
    assert.match(secret, /^whsec_/);
    const run = await ok(server, ['run', 'box', '--detach', '-c', 'echo signed; echo token=ghp_abcdefghijklmnopqrstuvwxyz0123456789']);
    const id = lastLine(run);
    const [got] = await waitFor(() => (forTask(id).length > 0 ? forTask(id) : undefined), 20_000, 'the delivery');
    assert.ok(got);
    assert.equal(header(got, 'ferry-webhook-event'), 'task.finished');
    const body = payload(got);
    assert.deepEqual([body.event, body.task.id, body.task.status], ['task.finished', id, 'succeeded']);
    assert.doesNotMatch(got.body, /ghp_abcdefghijklmnopqrstuvwxyz0123456789/, 'the script excerpt is redacted like output');
    assert.match(body.task.scriptExcerpt, /echo signed/);

    const verify = await readmeRecipe();
    assert.equal(verify(secret, got.headers, got.body), true);
    assert.equal(verify(secret, got.headers, got.body.replace('succeeded', 'failed')), false);
    assert.equal(verify('whsec_another', got.headers, got.body), false);
    const ts = Number(header(got, 'ferry-webhook-timestamp'));
    assert.equal(verify(secret, got.headers, got.body, ts + 301), false, 'outside the replay window');
    await ok(server, ['webhook', 'delete', (JSON.parse((await ok(server, ['webhook', 'list', '--json'])).stdout) as { id: string }[])[0]!.id]);
  });

  it('a receiver that fails three times then recovers gets the event exactly once more', async () => {
    const hook = JSON.parse((await ok(server, ['webhook', 'create', receiver.url, '--events', 'task.finished', '--json'])).stdout) as { id: string };
    const failures = new Map<string, number>();
    receiver.answer = (r) => {
      const n = failures.get(header(r, 'ferry-webhook-id')) ?? 0;
      failures.set(header(r, 'ferry-webhook-id'), n + 1);
      return n < 3 ? 500 : 200;
    };
    const id = lastLine(await ok(server, ['run', 'box', '--detach', '-c', 'echo retried']));
    await waitFor(() => forTask(id).length >= 4, 30_000, 'four attempts');
    await new Promise((r) => setTimeout(r, 2000)); // time for a wrong fifth attempt to arrive
    const seen = forTask(id);
    assert.equal(seen.length, 4, 'three failures, then exactly one success');
    assert.equal(new Set(seen.map((r) => header(r, 'ferry-webhook-id'))).size, 1, 'the same delivery each time');
    const [delivery] = JSON.parse((await ok(server, ['webhook', 'deliveries', hook.id, '--json'])).stdout) as {
      status: string;
      attempts: { httpStatus: number | null }[];
    }[];
    assert.equal(delivery?.status, 'delivered');
    assert.deepEqual(
      delivery?.attempts.map((a) => a.httpStatus),
      [500, 500, 500, 200],
    );
    // Backoff: each wait is longer than the one before (base 200 ms, doubling, jitter ±50%).
    const gaps = seen.slice(1).map((r, i) => r.at - seen[i]!.at);
    assert.ok(gaps[2]! > gaps[0]!, `backoff grows: ${gaps.join(', ')} ms`);
    await ok(server, ['webhook', 'delete', hook.id]);
    receiver.answer = () => 200;
  });

  it('a receiver that hangs delays no task', async () => {
    const hook = JSON.parse((await ok(server, ['webhook', 'create', receiver.url, '--events', 'task.finished', '--json'])).stdout) as { id: string };
    receiver.answer = () => 'hang';
    const first = lastLine(await ok(server, ['run', 'box', '--detach', '-c', 'echo first']));
    await waitFor(() => forTask(first).length > 0, 20_000, 'the first delivery to reach the hanging receiver');
    // While that delivery hangs, tasks run and end as fast as ever.
    const started = Date.now();
    for (let i = 0; i < 3; i++) {
      const r = await ok(server, ['run', 'box', '-c', `echo while-hanging-${i}`]);
      assert.match(r.stdout, new RegExp(`while-hanging-${i}`));
    }
    const took = Date.now() - started;
    assert.ok(took < 8000, `three tasks took ${took} ms with a hanging receiver (an attempt waits 10 s)`);
    await ok(server, ['webhook', 'delete', hook.id]);
    receiver.answer = () => 200;
  });

  it('review events reach the receiver: pending_review (slack, with approve and reject links), approved, rejected; all audited', async () => {
    await ok(server, ['target', 'create', 'gate', '--type', 'shell', '--review', 'any']);
    const reviewer = lastLine(await ok(server, ['token', 'create', 'hook-reviewer', '--role', 'admin']));
    const slack = JSON.parse(
      (await ok(server, ['webhook', 'create', receiver.url, '--events', 'task.pending_review', '--format', 'slack', '--json'])).stdout,
    ) as { id: string };
    const json = JSON.parse((await ok(server, ['webhook', 'create', receiver.url, '--events', 'task.approved,task.rejected', '--json'])).stdout) as {
      id: string;
    };
    const approved = lastLine(await ok(server, ['run', 'gate', '--detach', '-c', 'echo gated']));
    const rejected = lastLine(await ok(server, ['run', 'gate', '--detach', '-c', 'echo refused']));
    const message = await waitFor(() => forTask(approved).find((r) => header(r, 'ferry-webhook-event') === 'task.pending_review'), 20_000, 'the Slack message');
    const blocks = JSON.stringify((JSON.parse(message.body) as { blocks: unknown[] }).blocks);
    assert.match(blocks, new RegExp(`/ui/tasks/${approved}\\?review=approve`));
    assert.match(blocks, /echo gated/);
    assert.equal((await server.cli(['task', 'approve', approved], { env: { FERRY_TOKEN: reviewer } })).code, 0);
    assert.equal((await server.cli(['task', 'reject', rejected, '--comment', 'no'], { env: { FERRY_TOKEN: reviewer } })).code, 0);
    const events = async (id: string): Promise<string[]> =>
      waitFor(
        () => {
          const got = forTask(id).map((r) => header(r, 'ferry-webhook-event'));
          return got.length >= 2 ? got : undefined;
        },
        20_000,
        `events of ${id}`,
      );
    assert.deepEqual(await events(approved), ['task.pending_review', 'task.approved']);
    assert.deepEqual(await events(rejected), ['task.pending_review', 'task.rejected']);
    for (const id of [slack.id, json.id]) await ok(server, ['webhook', 'delete', id]);
    const audit = JSON.parse((await ok(server, ['audit', 'list', '--json', '--limit', '1000'])).stdout) as { action: string; details: { origin?: string } }[];
    const created = audit.filter((e) => e.action === 'webhook.create');
    assert.ok(created.length >= 2 && created.every((e) => e.details.origin === new URL(receiver.url).origin), 'the origin only');
    assert.ok(audit.some((e) => e.action === 'webhook.delete'));
  });

  it('a server killed with deliveries queued delivers them after its restart', async () => {
    const dataDir = tempDir('webhook-restart');
    let s = await startFerryServer({ embeddedAgent: false, dataDir, env: env() });
    try {
      await ok(s, ['target', 'create', 'gated', '--type', 'shell', '--review', 'any']);
      await ok(s, ['webhook', 'create', receiver.url, '--events', 'task.pending_review']);
      receiver.answer = () => 503;
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(lastLine(await ok(s, ['run', 'gated', '--detach', '-c', `echo queued-${i}`])));
      await waitFor(() => ids.every((id) => forTask(id).length > 0), 20_000, 'a failed attempt of each');
      await s.proc.stop('SIGKILL');
      receiver.answer = () => 200;
      const before = new Map(ids.map((id) => [id, forTask(id).length]));
      s = await startFerryServer({ embeddedAgent: false, dataDir, env: env() });
      await waitFor(
        () => ids.every((id) => forTask(id).some((r, i) => i >= before.get(id)! && payload(r).event === 'task.pending_review')),
        30_000,
        'every event after the restart',
      );
      for (const id of ids) {
        const ok200 = forTask(id).slice(before.get(id));
        assert.equal(new Set(ok200.map((r) => header(r, 'ferry-webhook-id'))).size, 1, `one delivery for ${id}`);
      }
    } finally {
      await s.stop();
    }
  });
});
