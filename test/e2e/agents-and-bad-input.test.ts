/**
 * Two agents and 50 tasks (each runs exactly once), waiting for an agent,
 * and bad input at the API's edges (each a 4xx with a stable code; the server stays up).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJoinToken } from '@ferry/protocol';
import { api, startFerryServer, taskShow, tempDir, waitFor, type ServerHandle } from '../helpers/ferry.js';

describe('agents and bad input (no embedded agent)', () => {
  let server: ServerHandle;

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
    for (const [name, mode] of [
      ['pool', 'hosted'],
      ['private1', 'self-hosted'],
    ] as const) {
      const r = await server.cli(['target', 'create', name, '--type', 'shell', '--agent', mode]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => server?.stop());

  it('a task for a target with no agent online stays queued and `ferry run` says it is waiting', async () => {
    const run = server.spawnCli(['run', 'private1', '-c', 'echo finally-ran']);
    await waitFor(() => /waiting for an agent of target private1 \(0 online\)/.test(run.stderr), 10_000, 'waiting message');
    const id = /task (t_[0-9a-z]+)/.exec(run.stderr)?.[1] ?? '';
    assert.equal((await taskShow(server, id)).status, 'queued');
    const noWait = await server.cli(['run', 'private1', '--no-wait', '-c', 'true']);
    assert.equal(noWait.code, 255);
    assert.match(noWait.stderr, /No agent of target private1 is online/);
    // An agent for that target arrives: the waiting run completes.
    await server.startAgent(await server.joinToken(['--target', 'private1']), { executor: 'process' });
    assert.equal(await run.exited, 0);
    assert.equal(run.stdout, 'finally-ran\n');
  });

  it('two agents and 50 tasks: every task runs exactly once', async () => {
    const dir = tempDir('runs');
    const ledger = join(dir, 'runs');
    const a1 = await server.startAgent(await server.joinToken(['--hosted']), { executor: 'process', concurrency: 4 });
    const a2 = await server.startAgent(await server.joinToken(['--hosted']), { executor: 'process', concurrency: 4 });
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await server.cli(['run', 'pool', '--detach', '-c', `echo "$FERRY_TASK_ID" >> ${ledger}; echo task ${i}`]);
      assert.equal(r.code, 0, r.stderr);
      ids.push(r.stdout.trim());
    }
    const tasks = await waitFor(
      async () => {
        const list = JSON.parse((await server.cli(['task', 'list', '--target', 'pool', '--json', '--limit', '100'])).stdout) as {
          id: string;
          status: string;
          agent: string;
        }[];
        return list.filter((t) => ids.includes(t.id)).every((t) => t.status === 'succeeded') ? list : undefined;
      },
      60_000,
      '50 tasks to succeed',
    );
    const lines = readFileSync(ledger, 'utf8').trim().split('\n');
    assert.equal(lines.length, 50, 'exactly 50 executions');
    assert.deepEqual([...new Set(lines)].sort(), [...ids].sort(), 'each task once');
    assert.equal(new Set(tasks.filter((t) => ids.includes(t.id)).map((t) => t.agent)).size, 2, 'both agents took work');
    await a1.stop();
    await a2.stop();
  });

  it('unknown target: 404 FERRY_E_TARGET_NOT_FOUND, and the CLI says so', async () => {
    const res = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'nope', script: 'true' }) });
    assert.equal(res.status, 404);
    assert.deepEqual(Object.keys(res.json).sort(), ['code', 'error', 'message', 'statusCode']);
    assert.equal(res.json.code, 'FERRY_E_TARGET_NOT_FOUND');
    const cli = await server.cli(['run', 'nope', '-c', 'true']);
    assert.equal(cli.code, 255);
    assert.match(cli.stderr, /No target named "nope"/);
  });

  it('empty script: 400 FERRY_E_EMPTY_SCRIPT', async () => {
    const res = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'pool', script: '  \n' }) });
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'FERRY_E_EMPTY_SCRIPT');
    const cli = await server.cli(['run', 'pool', '-c', '']);
    assert.match(cli.stderr, /FERRY_E_EMPTY_SCRIPT/);
  });

  it('malformed JSON, unknown fields, wrong content type, unknown route', async () => {
    const bad = await api(server, 'POST', '/v1/tasks', { body: '{"target": "pool", "script":' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 'FERRY_E_INVALID_JSON');
    const extra = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'pool', script: 'true', runAs: 'root' }) });
    assert.equal(extra.status, 400);
    assert.equal(extra.json.code, 'FERRY_E_BAD_REQUEST');
    assert.match(String(extra.json.message), /unknown field\(s\) runAs/);
    const text = await api(server, 'POST', '/v1/tasks', { body: 'echo hi', contentType: 'text/plain' });
    assert.equal(text.status, 415);
    assert.equal(text.json.code, 'FERRY_E_UNSUPPORTED_MEDIA_TYPE');
    const route = await api(server, 'GET', '/v1/nothing-here');
    assert.equal(route.status, 404);
    assert.equal(route.json.code, 'FERRY_E_NOT_FOUND');
    const badId = await api(server, 'GET', '/v1/tasks/../../etc/passwd');
    assert.equal(badId.status, 404);
  });

  it('wrong or missing token: 401 FERRY_E_UNAUTHENTICATED; an agent token is not a user token', async () => {
    for (const token of ['ferry_u_not-a-real-token', null, 'garbage']) {
      const res = await api(server, 'GET', '/v1/tasks', { token });
      assert.equal(res.status, 401);
      assert.equal(res.json.code, 'FERRY_E_UNAUTHENTICATED');
    }
    const cli = await server.cli(['task', 'list'], { env: { FERRY_TOKEN: 'ferry_u_wrong' } });
    assert.equal(cli.code, 255);
    assert.match(cli.stderr, /FERRY_E_UNAUTHENTICATED/);
    const joined = decodeJoinToken(await server.joinToken(['--hosted']));
    const reg = await api(server, 'POST', '/v1/agents/register', {
      token: null,
      body: JSON.stringify({ joinSecret: joined?.secret, name: 'x', hostname: 'x', version: '0', platform: 'x', concurrency: 1 }),
    });
    assert.equal(reg.status, 201);
    const asUser = await api(server, 'GET', '/v1/tasks', { token: String(reg.json.token) });
    assert.equal(asUser.status, 401);
  });

  it('join tokens work once and expire', async () => {
    const register = (secret: string | undefined): Promise<Awaited<ReturnType<typeof api>>> =>
      api(server, 'POST', '/v1/agents/register', {
        token: null,
        body: JSON.stringify({ joinSecret: secret, name: 'probe', hostname: 'h', version: '0', platform: 'p', concurrency: 1 }),
      });
    const once = decodeJoinToken(await server.joinToken(['--hosted']));
    assert.equal((await register(once?.secret)).status, 201);
    const reused = await register(once?.secret);
    assert.equal(reused.status, 401);
    assert.equal(reused.json.code, 'FERRY_E_JOIN_TOKEN_USED');
    const created = await api(server, 'POST', '/v1/agent-tokens', { body: JSON.stringify({ hosted: true, ttlSeconds: 1 }) });
    assert.equal(created.status, 201);
    const short = decodeJoinToken(String(created.json.token));
    await waitFor(() => Date.now() > Date.parse(String(created.json.expiresAt)) + 50, 5000, 'expiry');
    const expired = await register(short?.secret);
    assert.equal(expired.status, 401);
    assert.equal(expired.json.code, 'FERRY_E_JOIN_TOKEN_EXPIRED');
    const forged = await register('ferry_j_forged');
    assert.equal(forged.json.code, 'FERRY_E_JOIN_TOKEN_INVALID');
    const agentCli = await server.cli(['agent', 'start', '--join-token', 'not-a-token', '--data-dir', tempDir('bad-agent')]);
    assert.equal(agentCli.code, 255);
    assert.match(agentCli.stderr, /join token is malformed/);
  });

  it('a body over the limit gets 413 FERRY_E_BODY_TOO_LARGE, even when it claims to be 1 GB', async () => {
    const big = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'pool', script: 'x'.repeat(3 * 1024 * 1024) }) });
    assert.equal(big.status, 413);
    assert.equal(big.json.code, 'FERRY_E_BODY_TOO_LARGE');
    // Announce 1 GB, send a few bytes: the server answers from the header without waiting for the body.
    const ca = readFileSync(join(server.dataDir, 'ca.pem'), 'utf8');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        new URL('/v1/tasks', server.url),
        {
          method: 'POST',
          ca,
          headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json', 'content-length': String(1024 ** 3) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
          req.destroy();
        },
      );
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.write('{"target":"pool","script":"');
    });
    assert.equal(status, 413);
  });

  it('the server is still up and answering after all of that', async () => {
    const health = await api(server, 'GET', '/v1/health', { token: null });
    assert.equal(health.status, 200);
    assert.equal(health.json.ok, true);
    assert.equal(server.proc.child.exitCode, null);
  });
});
