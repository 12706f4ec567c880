/**
 * Nothing lost. Real processes on loopback, real kills: a vanished agent is noticed
 * within the lease bound, the server can be killed and restarted mid-stream without losing a
 * byte, an agent restarted mid-task reports what it cannot account for, and SIGTERM drains.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startFerryServer, taskShow, taskSucceeded, tempDir, waitFor, type FerryProcess, type ServerHandle } from '../helpers/ferry.js';

const FAST_LEASES = { FERRY_LEASE_SECONDS: '3', FERRY_HEARTBEAT_SECONDS: '0.5' };

function expectedLines(n: number): string {
  return Array.from({ length: n }, (_, i) => `line ${i + 1} ${'x'.repeat(100)}\n`).join('');
}
const printLines = (n: number, pause: number): string => `for i in $(seq 1 ${n}); do echo "line $i $(printf 'x%.0s' $(seq 1 100))"; sleep ${pause}; done`;

describe('faults: kills, restarts, outages, drain', () => {
  let server: ServerHandle;
  let port = 0;
  let dataDir = '';
  const agentDir = tempDir('fault-agent');
  let agent: FerryProcess;
  let joinToken = '';

  const startServer = async (): Promise<ServerHandle> => startFerryServer({ embeddedAgent: false, dataDir, port, env: FAST_LEASES });
  const startAgent = async (): Promise<FerryProcess> => server.startAgent(joinToken, { dataDir: agentDir, concurrency: 2 });

  before(async () => {
    port = await freePort();
    dataDir = tempDir('fault-server');
    server = await startServer();
    assert.equal((await server.cli(['target', 'create', 'f', '--type', 'shell'])).code, 0);
    joinToken = await server.joinToken(['--hosted']);
    agent = await startAgent();
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop();
  });

  it('kill -9 of the server mid-stream and a restart: the task finishes and not one byte is lost', async () => {
    const id = (await server.cli(['run', 'f', '--detach', '-c', printLines(60, 0.1)])).stdout.trim();
    await waitFor(async () => (await server.cli(['task', 'logs', id])).stdout.includes('line 5 '), 15_000, 'some output');
    await server.proc.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 2000)); // the outage itself: what the test is about
    server = await startServer();
    const done = await taskSucceeded(server, id, 60_000, 'task to succeed after the restart');
    assert.equal(done.exitCode, 0);
    assert.equal((await server.cli(['task', 'logs', id])).stdout, expectedLines(60));
  });

  it('the server unreachable for 20 s while a task prints: everything arrives on reconnection', async () => {
    const id = (await server.cli(['run', 'f', '--detach', '-c', printLines(250, 0.1)])).stdout.trim();
    await waitFor(async () => (await server.cli(['task', 'logs', id])).stdout.includes('line 3 '), 15_000, 'some output');
    await server.proc.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 20_000));
    server = await startServer();
    await waitFor(async () => (await taskShow(server, id)).status === 'succeeded', 90_000, 'task to succeed');
    assert.equal((await server.cli(['task', 'logs', id])).stdout, expectedLines(250));
  });

  it('kill -9 of an agent mid-task: the task becomes lost within the lease bound, its output kept', async () => {
    const id = (await server.cli(['run', 'f', '--detach', '-c', 'echo before-the-kill; sleep 300'])).stdout.trim();
    await waitFor(async () => (await server.cli(['task', 'logs', id])).stdout.includes('before-the-kill'), 15_000, 'task running');
    const killedAt = Date.now();
    await agent.stop('SIGKILL');
    const lost = await waitFor(
      async () => {
        const t = await taskShow(server, id);
        return t.status === 'lost' ? t : undefined;
      },
      30_000,
      'lost',
    );
    const detectMs = Date.now() - killedAt;
    assert.ok(detectMs < 3000 + 2000 + 1500, `lost after ${detectMs} ms (lease 3 s)`);
    assert.ok(lost.agent);
    assert.match(lost.reason ?? '', /stopped reporting/);
    assert.equal((await server.cli(['task', 'logs', id])).stdout, 'before-the-kill\n');
    // The agent comes back with the same data folder: no new token needed, and it finds nothing to redo.
    agent = await startAgent();
    const after = await server.cli(['run', 'f', '-c', 'echo back']);
    assert.equal(after.stdout, 'back\n');
  });

  it('an agent restarted mid-task delivers what it spooled and reports the task it cannot account for', async () => {
    const id = (await server.cli(['run', 'f', '--detach', '-c', 'echo spooled-before-crash; sleep 300'])).stdout.trim();
    await waitFor(async () => (await server.cli(['task', 'logs', id])).stdout.includes('spooled-before-crash'), 15_000, 'running');
    await agent.stop('SIGKILL');
    assert.ok(readdirSync(join(agentDir, 'spool')).includes(`${id}.frames`), 'the task is in the spool');
    // The sandbox keeps no task folder on the host (everything is tmpfs inside it), so a killed agent leaves none.
    const leftBehind = (): string[] => readdirSync(join(agentDir, 'sandboxes')).filter((n) => n.startsWith('ferry-t_'));
    assert.deepEqual(leftBehind(), [], 'no task folder on the host, even after kill -9');
    agent = await startAgent();
    const t = await waitFor(
      async () => {
        const s = await taskShow(server, id);
        return s.status === 'error' || s.status === 'lost' ? s : undefined;
      },
      30_000,
      'reported',
    );
    if (t.status === 'error') assert.match(t.reason ?? '', /agent restarted while this task ran/);
    assert.match((await server.cli(['task', 'logs', id])).stdout, /^spooled-before-crash\n/);
    await waitFor(() => !readdirSync(join(agentDir, 'spool')).some((name) => name.startsWith(id)), 10_000, 'spool cleaned');
  });

  it('SIGTERM drains: the running task finishes, no new work is taken, the agent exits 0', async () => {
    const id = (await server.cli(['run', 'f', '--detach', '-c', 'sleep 2; echo finished-during-drain'])).stdout.trim();
    await waitFor(async () => (await taskShow(server, id)).status === 'running', 15_000, 'running');
    agent.child.kill('SIGTERM');
    const queued = (await server.cli(['run', 'f', '--detach', '-c', 'echo should-wait'])).stdout.trim();
    assert.equal(await agent.exited, 0);
    const t = await taskShow(server, id);
    assert.equal(t.status, 'succeeded');
    assert.equal((await server.cli(['task', 'logs', id])).stdout, 'finished-during-drain\n');
    assert.equal((await taskShow(server, queued)).status, 'queued', 'a draining agent takes no new work');
    agent = await startAgent();
    await waitFor(async () => (await taskShow(server, queued)).status === 'succeeded', 15_000, 'queued task runs on the next agent');
  });
});
