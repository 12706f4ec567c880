/**
 * An agent's life beyond its first start, with the real CLI, server and agent processes: a new
 * join token wins over a stored (revoked) credential in the same folder, and the folder's keys
 * keep the secrets working; revoked and orphaned agents say what to do and stop; join tokens
 * for deleted targets are refused; `agent prune`; default names are unique.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { CLI, FerryProcess, cleanEnv, startFerryServer, taskShow, tempDir, waitFor, type ServerHandle } from '../helpers/ferry.js';

interface AgentJson {
  id: string;
  name: string;
  online: boolean;
  revoked: boolean;
}

async function ok(server: ServerHandle, args: string[], input?: string): Promise<string> {
  const r = await server.cli(args, input === undefined ? undefined : { input });
  assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function agents(server: ServerHandle): Promise<AgentJson[]> {
  return JSON.parse(await ok(server, ['agent', 'list', '--json'])) as AgentJson[];
}

/** `ferry agent start ARGS…` as its own process, for agents expected to stop by themselves. */
function spawnAgent(args: string[]): FerryProcess {
  return new FerryProcess(spawn(process.execPath, [CLI, 'agent', 'start', ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
}

async function exitOf(agent: FerryProcess, timeoutMs = 15_000): Promise<number | null> {
  const timer = setTimeout(() => agent.child.kill('SIGKILL'), timeoutMs);
  const code = await agent.exited;
  clearTimeout(timer);
  return code;
}

async function sealingKey(server: ServerHandle, name: string): Promise<void> {
  await waitFor(async () => (JSON.parse(await ok(server, ['target', 'show', name, '--json'])) as { keyId: string | null }).keyId, 20_000, 'a sealing key');
}

describe('agent lifecycle', () => {
  let server: ServerHandle;

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
  });
  after(async () => {
    await server?.stop();
  });

  it('a new join token over a revoked credential registers (with its --name) and the secrets still work; the same token again reuses the credential', async () => {
    await ok(server, ['target', 'create', 'life', '--type', 'shell', '--agent', 'self-hosted']);
    const dataDir = tempDir('agent-life');
    const first = await server.startAgent(await server.joinToken(['--target', 'life']), { dataDir, name: 'first' });
    await sealingKey(server, 'life');
    await ok(server, ['secret', 'set', 'life', 'API_TOKEN'], 'value-9f8e7d6c');
    assert.equal((await server.cli(['run', 'life', '-c', 'test "$API_TOKEN" = value-9f8e7d6c && echo secret-ok'])).stdout, 'secret-ok\n');

    const firstId = (await agents(server)).find((a) => a.name === 'first')?.id ?? '';
    // The only key holder: revoking it needs --force. Its folder keeps the key, which the agent
    // registered next in this folder brings along, so the secrets keep working.
    await ok(server, ['agent', 'revoke', firstId, '--force']);
    assert.notEqual(await exitOf(first), 0);
    const told = /this agent was revoked; start it with a new join token: ferry agent token create --target life, then ferry agent start --join-token TOKEN/;
    assert.match(first.stderr, told);
    assert.match(first.stderr, new RegExp(`data folder: ${dataDir}`));

    // Started again without a token, it says the same.
    const again = spawnAgent(['--data-dir', dataDir]);
    assert.notEqual(await exitOf(again), 0);
    assert.match(again.stderr, told);
    assert.doesNotMatch(again.stderr, /\n\s+at /, 'no stack trace');

    const token = await server.joinToken(['--target', 'life']);
    const second = await server.startAgent(token, { dataDir, name: 'second' });
    assert.match(second.stderr, /registered with the new join token; it replaced the stored credential of agent first/);
    const listed = await agents(server);
    assert.deepEqual(
      listed.map((a) => [a.name, a.revoked]),
      [
        ['first', true],
        ['second', false],
      ],
    );
    const r = await server.cli(['run', 'life', '-c', 'test "$API_TOKEN" = value-9f8e7d6c && echo secret-ok']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'secret-ok\n');

    // A service that passes the (now used) token on every start keeps running as the same agent.
    await second.stop('SIGTERM');
    const third = await server.startAgent(token, { dataDir, name: 'second' });
    assert.doesNotMatch(third.stderr, /registered/);
    assert.equal((await agents(server)).length, 2, 'no new agent was registered');
    await third.stop('SIGTERM');
  });

  it('an agent whose targets were all deleted is told and stops; a join token for a deleted target is refused', async () => {
    await ok(server, ['target', 'create', 'doomed', '--type', 'shell', '--agent', 'self-hosted']);
    const unused = await server.joinToken(['--target', 'doomed']);
    const agent = await server.startAgent(await server.joinToken(['--target', 'doomed']), { name: 'orphan' });
    await sealingKey(server, 'doomed');
    const deletedAt = Date.now();
    await ok(server, ['target', 'delete', 'doomed']);
    assert.notEqual(await exitOf(agent), 0);
    assert.ok(Date.now() - deletedAt < 10_000, 'told at once, not after its long poll');
    assert.match(agent.stderr, /every target agent orphan served was deleted, so it has nothing to serve and stops/);

    const late = spawnAgent(['--join-token', unused, '--data-dir', tempDir('agent-late')]);
    assert.notEqual(await exitOf(late), 0);
    assert.match(late.stderr, /Every target this join token names was deleted since it was made/);
    assert.match(late.stderr, /FERRY_E_JOIN_TOKEN_TARGET_DELETED/);
  });

  it('agent prune takes revoked agents off the list, keeps online ones, and task history still names them', async () => {
    await ok(server, ['target', 'create', 'prn', '--type', 'shell', '--agent', 'self-hosted']);
    const old = await server.startAgent(await server.joinToken(['--target', 'prn']), { name: 'old-one' });
    await sealingKey(server, 'prn');
    const taskId = (await ok(server, ['run', 'prn', '-c', 'echo hi', '--detach'])).trim();
    await waitFor(async () => (await taskShow(server, taskId)).status === 'succeeded', 20_000, 'the task');
    assert.equal((await taskShow(server, taskId)).agent, 'old-one');
    const keep = await server.startAgent(await server.joinToken(['--target', 'prn']), { name: 'keeper' });

    const oldId = (await agents(server)).find((a) => a.name === 'old-one')?.id ?? '';
    await ok(server, ['agent', 'revoke', oldId]);
    await exitOf(old);
    const out = await ok(server, ['agent', 'prune']);
    assert.match(out, new RegExp(`${oldId} +old-one +revoked`));
    const names = (await agents(server)).map((a) => a.name);
    assert.ok(!names.includes('old-one'), 'pruned agents leave the list');
    assert.ok(names.includes('keeper'), 'an online agent stays');
    assert.equal((await taskShow(server, taskId)).agent, 'old-one', 'the task still names the agent that ran it');
    const audit = JSON.parse(await ok(server, ['audit', 'list', '--json'])) as { action: string; details: { pruned?: { name: string }[] } }[];
    assert.ok(audit.some((e) => e.action === 'agent.prune' && e.details.pruned?.some((p) => p.name === 'old-one')));
    assert.match(await ok(server, ['agent', 'prune']), /No agent to prune/);
    const bad = await server.cli(['agent', 'prune', '--offline-for', '5s']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /a minute or more/);
    await keep.stop('SIGTERM');
  });

  it('default agent names are the host name and a short random suffix, so two agents on one host differ', async () => {
    await ok(server, ['target', 'create', 'twins', '--type', 'shell', '--agent', 'self-hosted']);
    const started = [];
    for (let i = 0; i < 2; i++) {
      const agent = spawnAgent(['--join-token', await server.joinToken(['--target', 'twins']), '--data-dir', tempDir('agent-twin')]);
      await waitFor(() => {
        if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.stderr}`);
        return agent.stderr.includes('"agent started"');
      });
      started.push(agent);
    }
    const pattern = new RegExp(`^${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-[0-9a-f]{4}$`);
    const names = (await agents(server)).filter((a) => pattern.test(a.name)).map((a) => a.name);
    assert.equal(names.length, 2, `two default-named agents: ${names.join(', ')}`);
    assert.notEqual(names[0], names[1]);
    await Promise.all(started.map((a) => a.stop('SIGTERM')));
  });
});
