/**
 * `ferry server migrate`, end to end with real processes: a server on SQLite (embedded agent)
 * runs tasks with output and a secret, is stopped, and its database is moved with
 * `ferry server migrate --from sqlite:… --to postgres://…` into a real PostgreSQL 15. The same
 * data folder then serves on PostgreSQL: `ferry audit verify` passes, every task's output is
 * byte for byte what it was, and the secret still reaches new tasks (the agent kept its key).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type DbServer } from '../helpers/databases.js';
import { cleanEnv, freePort, runCli, startFerryServer, tempDir, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

describe('ferry server migrate: SQLite to PostgreSQL', () => {
  let db: DbServer;
  let url: string;
  let server: ServerHandle | undefined;
  const dataDir = tempDir('migrate');
  const outputs = new Map<string, string>();
  // The embedded agent keeps the server's URL: the moved server comes back on the same port.
  let port: number;

  before(async () => {
    db = await startPostgres();
    url = `postgres://${db.user}:${encodeURIComponent(db.password)}@${db.host}:${db.port}/${db.database}`;
    port = await freePort();
    const old = await startFerryServer({ dataDir, port });
    await waitForAgents(old, 1);
    assert.equal((await old.cli(['target', 'create', 'web', '--type', 'shell'])).code, 0);
    assert.equal((await old.cli(['secret', 'set', 'web', 'API_TOKEN'], { input: 'migrate-S3cret-0099\n' })).code, 0);
    for (const script of ['echo "t=$API_TOKEN"; seq 1 30000', 'printf "\\001\\002\\377" >&2; echo bytes', 'echo fail; exit 3']) {
      const run = await old.cli(['run', 'web', '--detach', '-c', script]);
      assert.equal(run.code, 0, run.stderr);
      const id = run.stdout.trim();
      await old.cli(['task', 'wait', id]);
      outputs.set(id, (await old.cli(['task', 'logs', id])).stdout);
    }
    await old.stop();
  });
  after(async () => {
    await server?.stop();
    await db?.stop();
  });

  it('refuses a database URL that is not PostgreSQL, and a source that is not SQLite', async () => {
    const bad = await runCli(['server', 'migrate', '--from', join(dataDir, 'ferry.db'), '--to', url], cleanEnv());
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--from wants sqlite:PATH/);
    const worse = await runCli(['server', 'migrate', '--from', `sqlite:${join(dataDir, 'ferry.db')}`, '--to', 'mysql://x'], cleanEnv());
    assert.match(worse.stderr, /--to wants a PostgreSQL URL/);
  });

  it('moves the installation; the server on PostgreSQL verifies its audit chain and serves the same output', { timeout: 60_000 }, async () => {
    const moved = await runCli(['server', 'migrate', '--from', `sqlite:${join(dataDir, 'ferry.db')}`, '--to', url], cleanEnv());
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /Audit chain verified: \d+ entries/);
    server = await startFerryServer({ dataDir, port, args: ['--database', url] });
    const verify = await server.cli(['audit', 'verify']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    for (const [id, text] of outputs) assert.equal((await server.cli(['task', 'logs', id])).stdout, text, id);
    await waitForAgents(server, 1);
    const again = await server.cli(['run', 'web', '-c', 'test -n "$API_TOKEN" && echo has-secret']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'has-secret\n');
  });

  it('a second move into the same database is refused', async () => {
    const twice = await runCli(['server', 'migrate', '--from', `sqlite:${join(dataDir, 'ferry.db')}`, '--to', url], cleanEnv());
    assert.notEqual(twice.code, 0);
    assert.match(twice.stderr, /not empty/);
  });
});
