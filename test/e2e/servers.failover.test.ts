/**
 * Several server URLs, checked from outside with the real `ferry` processes: a server whose
 * --public-url names a replica too hands out join tokens carrying both URLs; an agent and the
 * CLI given a server that is down first fail over to the one that answers, register, and run a
 * task end to end. (Two servers cannot share one SQLite installation, so "the other replica" is
 * a port nothing listens on; the client tests cover a server stopped between calls.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { decodeJoinToken, joinTokenUrls } from '@ferry/protocol';
import { cleanEnv, freePort, runCli, startFerryServer, tempDir, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

describe('several server URLs', () => {
  let server: ServerHandle;
  let dead = '';
  before(async () => {
    const port = await freePort();
    dead = `https://127.0.0.1:${await freePort()}`;
    server = await startFerryServer({ embeddedAgent: false, port, env: { FERRY_PUBLIC_URL: `https://127.0.0.1:${port},${dead}` } });
    const created = await server.cli(['target', 'create', 'box', '--type', 'shell']);
    assert.equal(created.code, 0, created.stderr);
  });
  after(async () => server.stop());

  it("a join token carries every public URL, the server's own first", async () => {
    const payload = decodeJoinToken(await server.joinToken(['--hosted']));
    assert.ok(payload);
    assert.deepEqual(joinTokenUrls(payload), [server.url, dead]);
  });

  it('an agent whose first server is down fails over, registers and runs tasks; so does the CLI', async () => {
    // --server puts the dead one first: the token alone would try this server first.
    await server.startAgent(await server.joinToken(['--hosted']), { executor: 'process', env: { FERRY_SERVER: `${dead},${server.url}` } });
    await waitForAgents(server, 1);
    const env = { ...cleanEnv(), FERRY_CONFIG: join(tempDir('cli-failover'), 'config.json') };
    const login = await runCli(['login', '--server', `${dead},${server.url}`, '--token', server.adminToken, '--ca-fingerprint', server.fingerprint], env);
    assert.equal(login.code, 0, login.stderr);
    const run = await runCli(['run', 'box', '-c', 'echo over the other server'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'over the other server\n');
  });
});
