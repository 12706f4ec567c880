/**
 * A real agent given two replicas on one PostgreSQL (`--server A,B`): it runs a task while
 * uploading its output to A; A is killed (`kill -9`) mid-task; the agent fails over to B, which
 * takes the rest of the uploads and the final status. B saw none of A's uploads, so the output's
 * digest is continued and checked from the state stored with the output: the task succeeds and
 * its output, read through B, is byte for byte what the task printed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type DbServer } from '../helpers/databases.js';
import { startFerryServer, taskShow, tempDir, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The agent API requests a server logged for task `id` (its debug log's request lines). */
function requests(server: ServerHandle, id: string): { method: string; url: string; statusCode: number }[] {
  return server.proc.stderr
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes(`/v1/agent/tasks/${id}/`))
    .map((line) => JSON.parse(line) as { method: string; url: string; statusCode: number });
}

describe('an agent fails over between PostgreSQL replicas in the middle of a task', () => {
  let db: DbServer;
  let a: ServerHandle;
  let b: ServerHandle;

  before(async () => {
    db = await startPostgres();
    const url = `postgres://${db.user}:${encodeURIComponent(db.password)}@${db.host}:${db.port}/${db.database}`;
    const dataDir = tempDir('pg-failover');
    // Debug logs a line per request: where each of the agent's calls went.
    const env = { FERRY_LOG_LEVEL: 'debug' };
    a = await startFerryServer({ dataDir, embeddedAgent: false, args: ['--database', url], env });
    b = await startFerryServer({ dataDir, embeddedAgent: false, args: ['--database', url], env });
    assert.equal((await a.cli(['target', 'create', 'box', '--type', 'shell'])).code, 0);
    // A first: the agent talks to A until A stops answering.
    await b.startAgent(await a.joinToken(['--hosted']), { executor: 'process', env: { FERRY_SERVER: `${a.url},${b.url}` } });
    await waitForAgents(b, 1);
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    await db?.stop();
  });

  it('A is killed after some of the output reached it; B takes the rest and verifies the final digest', { timeout: 120_000 }, async () => {
    // 3000 numbered lines with a pause after the first 1000, during which A is killed.
    const script = 'seq 1 1000; sleep 4; seq 1001 3000; echo end';
    const sub = await b.cli(['run', 'box', '--detach', '-c', script]);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    const first = `${Array.from({ length: 1000 }, (_, i) => i + 1).join('\n')}\n`;
    // The first part is stored (through A, the agent's first server): B reads it from the database.
    await waitFor(async () => (await b.cli(['task', 'logs', id])).stdout === first, 15_000, 'the first 1000 lines stored');
    assert.ok(
      requests(a, id).some((r) => r.url.includes('/output?offset=0') && r.statusCode === 200),
      'the first upload went to A',
    );
    await a.proc.stop('SIGKILL');
    await waitFor(async () => (await taskShow(b, id)).status !== 'running', 60_000, 'the task ends through B');
    const shown = await taskShow(b, id);
    assert.equal(shown.status, 'succeeded', JSON.stringify(shown));
    const expected = `${Array.from({ length: 3000 }, (_, i) => i + 1).join('\n')}\nend\n`;
    const logs = await b.cli(['task', 'logs', id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(sha256(logs.stdout), sha256(expected), 'every byte, once, in order');
    const onB = requests(b, id);
    assert.ok(
      onB.some((r) => /\/output\?offset=[1-9]/.test(r.url) && r.statusCode === 200),
      'later uploads went to B',
    );
    assert.ok(
      onB.some((r) => r.url.endsWith('/finish') && r.statusCode === 204),
      'and the final status, accepted there',
    );
    // Checked by its digest, not only by its length (which is what a server without the stored
    // digest state falls back to, and says so).
    assert.ok(!b.proc.stderr.includes('output checksum not verified'), 'the digest was verified on B');
  });
});
