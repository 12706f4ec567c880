/**
 * The shared hosted pool holds the keys of every organization's hosted targets. An instance
 * administrator revoking its only key holder is refused, naming the other organization's target
 * whose secrets would be lost, unless --force.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFerryServer, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';
import { createOrg } from '../helpers/teams.js';

describe('revoking the shared pool', () => {
  let server: ServerHandle;
  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
  });
  after(async () => server?.stop());

  it("an instance administrator is refused when the agent is the only holder of another organization's key", async () => {
    const otherAdmin = await createOrg(server, 'other');
    const other = { env: { FERRY_TOKEN: otherAdmin } };
    assert.equal((await server.cli(['target', 'create', 'vault-b', '--type', 'shell'], other)).code, 0);
    const keyId = async (): Promise<string | null> =>
      (JSON.parse((await server.cli(['target', 'show', 'vault-b', '--json'], other)).stdout) as { keyId: string | null }).keyId;
    await waitFor(keyId, 20_000, 'the key of vault-b');
    const set = await server.cli(['secret', 'set', 'vault-b', 'TOKEN'], { ...other, input: 'value-of-the-other-org' });
    assert.equal(set.code, 0, set.stderr);
    const run = await server.cli(['run', 'vault-b', '-n', '-c', 'test "$TOKEN" = value-of-the-other-org && echo opened'], other);
    assert.equal(run.stdout, 'opened\n', run.stderr);

    const agents = JSON.parse((await server.cli(['agent', 'list', '--json'])).stdout) as { id: string; hosted?: boolean; targets?: unknown }[];
    const embedded = agents[0]?.id ?? '';
    const refused = await server.cli(['agent', 'revoke', embedded]);
    assert.equal(refused.code, 255);
    assert.match(refused.stderr, /only agent holding the sealing key of vault-b/);
    assert.match(refused.stderr, /FERRY_E_LAST_KEY_HOLDER/);
    assert.equal((await server.cli(['run', 'vault-b', '-n', '-c', 'echo still-served'], other)).stdout, 'still-served\n');
  });
});
