/**
 * Three `ferry server` replicas on one PostgreSQL and one data folder, two agents that know all
 * three (`--server A,B,C`, in different orders). 300 tasks are submitted round-robin across the
 * replicas while replica A is killed (`kill -9`) and restarted twice. Every task runs exactly
 * once (each appends its number to a file on this host: the process executor), succeeds, and its
 * output is byte-exact; `ferry task logs --follow` of a long task, reading from A when it is
 * killed, continues from another replica and loses nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type DbServer } from '../helpers/databases.js';
import { api, cleanEnv, freePort, runCli, startFerryServer, taskShow, tempDir, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

const TASKS = 300;
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
/** What task `i` prints: its number, then 200 numbered lines. */
const expectedOf = (i: number): string => `task ${i}\n${Array.from({ length: 200 }, (_, n) => `${i}.${n + 1}`).join('\n')}\n`;

describe('three PostgreSQL replicas, one killed and restarted twice under 300 tasks', () => {
  let db: DbServer;
  let url: string;
  const dataDir = tempDir('pg-three');
  const ranLog = join(tempDir('pg-three-ran'), 'ran.log');
  let portA: number;
  let a: ServerHandle;
  let b: ServerHandle;
  let c: ServerHandle;

  // Debug logs a line per request on A: the follower's reads show there.
  const startA = (): Promise<ServerHandle> =>
    startFerryServer({ dataDir, port: portA, embeddedAgent: false, args: ['--database', url], env: { FERRY_LOG_LEVEL: 'debug' } });

  before(async () => {
    db = await startPostgres();
    url = `postgres://${db.user}:${encodeURIComponent(db.password)}@${db.host}:${db.port}/${db.database}`;
    portA = await freePort();
    a = await startA();
    b = await startFerryServer({ dataDir, embeddedAgent: false, args: ['--database', url] });
    c = await startFerryServer({ dataDir, embeddedAgent: false, args: ['--database', url] });
    writeFileSync(ranLog, '');
    assert.equal((await b.cli(['target', 'create', 'box', '--type', 'shell'])).code, 0);
    // The agents belong to C's handle (C is never killed); each knows all three replicas.
    const urls = [a.url, b.url, c.url];
    await c.startAgent(await c.joinToken(['--hosted']), { executor: 'process', name: 'one', env: { FERRY_SERVER: urls.join(',') } });
    await c.startAgent(await c.joinToken(['--hosted']), { executor: 'process', name: 'two', env: { FERRY_SERVER: [...urls].reverse().join(',') } });
    await waitForAgents(c, 2);
  });
  after(async () => {
    await c?.stop();
    await b?.stop();
    await a?.stop();
    await db?.stop();
  });

  it('every task runs exactly once with byte-exact output, and a follower of the killed replica loses nothing', { timeout: 300_000 }, async (t) => {
    // A follower reading from A first (the CLI fails over to the next URL).
    const env = { ...cleanEnv(), FERRY_CONFIG: join(tempDir('pg-three-cli'), 'config.json') };
    const login = await runCli(['login', '--server', `${a.url},${b.url},${c.url}`, '--token', a.adminToken, '--ca-fingerprint', a.fingerprint], env);
    assert.equal(login.code, 0, login.stderr);
    const long = await runCli(['run', 'box', '--detach', '-c', 'for i in $(seq 1 40); do seq -f "long $i.%g" 1 500; sleep 0.3; done; echo long-end'], env);
    assert.equal(long.code, 0, long.stderr);
    const longId = long.stdout.trim();
    const follower = runCli(['task', 'logs', '--follow', longId], env);

    const ids = new Map<number, string>();
    let killed = 0;
    for (let i = 1; i <= TASKS; i++) {
      // Round-robin over the replicas that are up; A goes down after tasks 60 and 180 and
      // comes back 40 tasks later.
      if ((i === 60 || i === 180) && killed < 2) {
        if (killed === 0) {
          // The first kill is while the long task runs and its follower reads from A.
          assert.equal((await taskShow(b, longId)).status, 'running');
          await waitFor(() => a.proc.stderr.includes(`/v1/tasks/${longId}/output`), 10_000, 'the follower reading from A');
        }
        await a.proc.stop('SIGKILL');
        killed += 1;
      }
      if (i === 100 || i === 220) a = await startA();
      const up = a.proc.child.exitCode === null && a.proc.child.signalCode === null ? [a, b, c] : [b, c];
      const server = up[i % up.length]!;
      const script = `echo ${i} >> ${ranLog}; echo "task ${i}"; seq -f "${i}.%g" 1 200`;
      const created = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'box', script }) });
      assert.equal(created.status, 201, created.body.toString());
      ids.set(i, String((created.json as { id?: string }).id ?? (created.json as { task?: { id: string } }).task?.id));
    }
    assert.equal(killed, 2);

    await waitFor(
      async () => {
        const r = await api(b, 'GET', '/v1/tasks?limit=500');
        const tasks = ((r.json as { tasks?: { status: string }[] }).tasks ?? []) as { status: string }[];
        return tasks.length >= TASKS + 1 && tasks.every((x) => !['queued', 'running'].includes(x.status));
      },
      240_000,
      'every task ends',
    );
    for (const [i, id] of ids) {
      const shown = await taskShow(c, id);
      assert.equal(shown.status, 'succeeded', `task ${i}: ${JSON.stringify(shown)}`);
      const logs = await c.cli(['task', 'logs', id]);
      assert.equal(logs.stdout, expectedOf(i), `task ${i}'s output`);
    }
    const ran = readFileSync(ranLog, 'utf8').trim().split('\n').map(Number);
    const counts = new Map<number, number>();
    for (const n of ran) counts.set(n, (counts.get(n) ?? 0) + 1);
    assert.deepEqual(
      [...ids.keys()].filter((i) => counts.get(i) !== 1),
      [],
      'every task ran exactly once',
    );

    const followed = await follower;
    assert.equal(followed.code, 0, followed.stderr);
    const expectedLong = `${Array.from({ length: 40 }, (_, i) => Array.from({ length: 500 }, (_, n) => `long ${i + 1}.${n + 1}`).join('\n')).join('\n')}\nlong-end\n`;
    assert.equal(sha256(followed.stdout), sha256(expectedLong), 'the follower lost nothing and repeated nothing');
    t.diagnostic(`${TASKS} tasks, A killed twice; follower read ${followed.stdout.length} bytes`);
  });
});
