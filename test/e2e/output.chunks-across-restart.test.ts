/**
 * Output of many upload chunks, on two streams, crosses a server restart byte for byte: the
 * agent builds each upload from its spool file (frames merged in place, cut at digest block
 * edges) and carries the output digest the server checks, and after a kill -9 of the server
 * it resends from the offset the server expects.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, startFerryServer, taskShow, taskSucceeded, tempDir, waitFor, type FerryProcess, type ServerHandle } from '../helpers/ferry.js';

const seq = (from: number, to: number): string => Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join('');

describe('output chunks across a server restart', () => {
  let server: ServerHandle;
  let port = 0;
  let dataDir = '';
  let agent: FerryProcess;
  const startServer = (): Promise<ServerHandle> => startFerryServer({ embeddedAgent: false, dataDir, port });

  before(async () => {
    port = await freePort();
    dataDir = tempDir('chunks-server');
    server = await startServer();
    assert.equal((await server.cli(['target', 'create', 'c', '--type', 'shell'])).code, 0);
    agent = await server.startAgent(await server.joinToken(['--hosted']), { dataDir: tempDir('chunks-agent'), concurrency: 1 });
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop();
  });

  it('megabytes of interleaved stdout and stderr, the server killed mid-stream: every byte, in order', async () => {
    // ~1.9 MiB of stdout and ~0.3 MiB of stderr per round, 4 rounds a quarter second apart.
    const script = 'seq 1 300000 > /tmp/a; seq 300001 350000 > /tmp/b; for i in 1 2 3 4; do cat /tmp/a; cat /tmp/b >&2; sleep 0.25; done';
    const id = (await server.cli(['run', 'c', '--detach', '-c', script])).stdout.trim();
    await waitFor(async () => (await taskShow(server, id)).outputBytes > 0, 15_000, 'some output stored');
    await server.proc.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500)); // the agent keeps spooling meanwhile
    server = await startServer();
    const done = await taskSucceeded(server, id, 60_000, 'the task to succeed after the restart');
    const stdout = seq(1, 300000).repeat(4);
    const stderr = seq(300001, 350000).repeat(4);
    assert.equal(done.outputBytes, stdout.length + stderr.length);
    const logs = await server.cli(['task', 'logs', id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.ok(logs.stdout === stdout, `stdout is byte-exact (${logs.stdout.length} of ${stdout.length} bytes)`);
    assert.ok(logs.stderr.includes(stderr), 'stderr is byte-exact and in order');
  });
});
