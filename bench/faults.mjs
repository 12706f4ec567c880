/**
 * Issue 6 figures, with the default lease settings of `ferry server`:
 *   lost_agent_detect_ms      kill -9 of an agent mid-task → the API shows the task `lost`
 *   backlog_20mb_delivery_ms  a task writes 20 MiB while the server is down; from starting the
 *                             server again (its start-up included) to the task `succeeded` with
 *                             all 20 MiB stored
 * Real processes on loopback; every wait is bounded.
 */
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTarget, startAgent, startServer, waitFor } from './harness.mjs';

async function freePort() {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function taskStatus(server, id) {
  const { json } = await server.api.json('GET', `/v1/tasks/${id}`);
  return json;
}

async function runningTask(server, target, script) {
  const { json } = await server.api.json('POST', '/v1/tasks', { target, script });
  await waitFor(async () => (await taskStatus(server, json.id)).startedAt !== null, 30_000, 'the task to start');
  return json.id;
}

/** One run: ms from the agent's SIGKILL to the task reading `lost`. */
export async function lostAgentDetectMs(cleanup, root, run) {
  const server = await startServer(cleanup, root, { name: `server-lost-${run}` });
  try {
    await createTarget(server, 'lost');
    const agent = await startAgent(cleanup, server, root, { name: `lost-${run}`, concurrency: 1 });
    const id = await runningTask(server, 'lost', 'sleep 300');
    const killed = performance.now();
    agent.child.kill('SIGKILL');
    await waitFor(async () => (await taskStatus(server, id)).status === 'lost', 120_000, 'the task to be marked lost');
    return performance.now() - killed;
  } finally {
    await server.proc.stop();
  }
}

/** One run: ms from starting the server again to 20 MiB delivered and the task succeeded. */
export async function backlogDeliveryMs(cleanup, root, run) {
  const bytes = 20 * 1024 * 1024;
  const port = await freePort();
  const name = `server-backlog-${run}`;
  let server = await startServer(cleanup, root, { name, listen: `127.0.0.1:${port}` });
  try {
    await createTarget(server, 'backlog', 'hosted', { redact: 'none' });
    await startAgent(cleanup, server, root, { name: `backlog-${run}`, concurrency: 1 });
    const id = await runningTask(server, 'backlog', `sleep 1; head -c ${bytes} /dev/urandom`);
    await server.proc.stop('SIGKILL');
    await sleep(4000); // the task writes its 20 MiB into the agent's spool meanwhile
    const restarted = performance.now();
    server = await startServer(cleanup, root, { name, listen: `127.0.0.1:${port}` });
    await waitFor(
      async () => {
        const t = await taskStatus(server, id);
        if (['failed', 'lost', 'error'].includes(t.status)) throw new Error(`backlog task ended as ${t.status}`);
        return t.status === 'succeeded' && t.outputBytes === bytes;
      },
      120_000,
      'the backlog to arrive',
    );
    return performance.now() - restarted;
  } finally {
    await server.proc.stop();
  }
}
