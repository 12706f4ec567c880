/**
 * Output retention and the output quota from the outside, through the CLI and the raw API: a
 * task that passes the quota keeps all of its output, the next task is refused with a clear
 * 409, the server stays up; a restart with a short retention removes the old output, says so
 * in `task show` and `task logs`, audits it and makes room again.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { api, startFerryServer, taskShow, tempDir, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

describe('output retention and quota', () => {
  const dataDir = tempDir('retention');
  let server: ServerHandle | undefined;
  after(async () => server?.stop());

  it('a quota refuses new tasks clearly, never cuts a running one; retention removes old output and frees room', async () => {
    // Port 0 (the kernel's pick): a port found free beforehand can be taken by another test's
    // process before the server binds it. The restart below comes back on the same port.
    server = await startFerryServer({ dataDir, env: { FERRY_ORG_OUTPUT_QUOTA: '2KiB' } });
    const port = Number(new URL(server.url).port);
    await waitForAgents(server, 1);
    assert.equal((await server.cli(['target', 'create', 'box', '--type', 'shell'])).code, 0);

    // 4 KiB of output from a task admitted below the 2 KiB quota: every byte is kept.
    const big = await server.cli(['run', 'box', '-c', 'head -c 4096 /dev/zero | tr "\\0" x; echo']);
    assert.equal(big.code, 0, big.stderr);
    assert.equal(big.stdout, `${'x'.repeat(4096)}\n`);

    const refused = await server.cli(['run', 'box', '-c', 'echo never']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /stores 4 KiB of task output, its quota of 2 KiB, so new tasks are refused/);
    assert.match(refused.stderr, /FERRY_E_OUTPUT_QUOTA_REACHED/);
    assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace');
    const raw = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'box', script: 'echo never' }) });
    assert.equal(raw.status, 409);
    assert.equal(raw.json.code, 'FERRY_E_OUTPUT_QUOTA_REACHED');
    assert.equal((await api(server, 'GET', '/v1/health', { token: null })).status, 200, 'the server stays up');

    const listed = await server.cli(['task', 'list', '--json']);
    const [task] = JSON.parse(listed.stdout) as { id: string }[];
    assert.ok(task, 'the 4 KiB task is listed');
    await server.stop();

    // Restarted with a retention of one second: the start-up pass removes that output.
    await new Promise((r) => setTimeout(r, 1100));
    server = await startFerryServer({ dataDir, port, env: { FERRY_ORG_OUTPUT_QUOTA: '2KiB', FERRY_OUTPUT_RETENTION: '1s' } });
    const expired = async (): Promise<string | null> => (await taskShow(server!, task.id)).outputExpiredAt;
    await waitFor(expired, 15_000, 'the start-up retention pass');
    const shown = await server.cli(['task', 'show', task.id]);
    assert.match(shown.stdout, /Status:\s+succeeded/);
    assert.match(shown.stdout, /Output:\s+removed by the server's output retention on \d{4}-/);
    const logs = await server.cli(['task', 'logs', task.id]);
    assert.equal(logs.code, 0);
    assert.equal(logs.stdout, '');
    assert.match(logs.stderr, /was removed by the server's output retention/);
    const audit = await server.cli(['audit', 'list', '--json']);
    assert.match(audit.stdout, /"output\.expire"/);

    await waitForAgents(server, 1);
    const again = await server.cli(['run', 'box', '-c', 'echo room again']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'room again\n');
  });
});
