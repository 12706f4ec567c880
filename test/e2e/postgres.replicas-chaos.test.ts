/**
 * Replicas: three `ferry server` processes on one PostgreSQL and one shared data folder, two
 * agents that know all three URLs. 300 tasks are submitted round-robin across the replicas
 * while one replica is killed (-9) and restarted twice. Every task runs exactly once (a ledger
 * on the host is the witness), every output is byte-exact, and a `ferry task logs --follow`
 * reading through the killed replica continues from another and loses nothing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Streams, TERMINAL_STATUSES, decodeFrames, type TaskStatus } from '@ferry/protocol';
import { api, cleanEnv, freePort, runCli, startFerryServer, tempDir, waitFor, type FerryProcess, type ServerHandle } from '../helpers/ferry.js';
import { startPostgres, type DbServer } from '../helpers/databases.js';

const TASKS = 300;

function expectedOutput(i: number): string {
  return Array.from({ length: 5 }, (_, n) => `task ${i} line ${n}\n`).join('');
}

describe('replicas: three servers on one PostgreSQL, one killed and restarted twice', () => {
  let pg: DbServer | undefined;
  const replicas: (ServerHandle | undefined)[] = [undefined, undefined, undefined];
  const agents: FerryProcess[] = [];
  after(async () => {
    await Promise.allSettled(agents.map((a) => a.stop('SIGKILL')));
    await Promise.allSettled(replicas.map(async (r) => r?.stop()));
    await pg?.stop();
  });

  it('every task runs exactly once with byte-exact output; a follower survives its replica', async () => {
    pg = await startPostgres();
    const databaseUrl = `postgres://${pg.user}:${encodeURIComponent(pg.password)}@${pg.host}:${pg.port}/${pg.database}`;
    const dataDir = tempDir('replicas');
    const ports = [await freePort(), await freePort(), await freePort()];
    const env = { FERRY_DATABASE_URL: databaseUrl, FERRY_LEASE_SECONDS: '3', FERRY_HEARTBEAT_SECONDS: '0.5' };
    const urls = ports.map((p) => `https://127.0.0.1:${p}`);
    // Each replica's own URL first, then the others': join tokens carry them all.
    const publicUrl = (i: number): string => [urls[i]!, ...urls.filter((_, j) => j !== i)].join(',');
    const start = (i: number): Promise<ServerHandle> =>
      startFerryServer({ embeddedAgent: false, dataDir, port: ports[i], env, args: ['--public-url', publicUrl(i)] });
    for (let i = 0; i < 3; i++) replicas[i] = await start(i);
    const first = replicas[0]!;
    assert.equal((await first.cli(['target', 'create', 'rep', '--type', 'shell'])).code, 0);
    const ledger = join(tempDir('replicas-ledger'), 'runs');
    for (let i = 0; i < 2; i++)
      agents.push(await first.startAgent(await first.joinToken(['--hosted']), { executor: 'process', concurrency: 4, name: `rep-${i}` }));

    // A follower of a long task, reading through replica 1 (the one that is killed).
    const long = await api(replicas[1]!, 'POST', '/v1/tasks', {
      body: JSON.stringify({ target: 'rep', script: 'for n in $(seq 1 60); do echo "long $n"; sleep 0.25; done' }),
    });
    assert.equal(long.status, 201);
    const longId = String(long.json.id);
    // A CLI that knows all three servers, replica 1 first.
    const followerEnv = { ...cleanEnv(), FERRY_CONFIG: join(tempDir('replicas-cli'), 'config.json') };
    const login = await runCli(
      ['login', '--server', [urls[1], urls[2], urls[0]].join(','), '--token', first.adminToken, '--ca-fingerprint', first.fingerprint],
      followerEnv,
    );
    assert.equal(login.code, 0, login.stderr);
    const follower = first.spawnCli(['task', 'logs', longId, '--follow'], { env: followerEnv });
    await waitFor(() => follower.stdout.includes('long 1\n'), 20_000, 'the follower to read the first line');

    const ids: (string | undefined)[] = [];
    const submit = async (i: number): Promise<void> => {
      const script = `echo "$FERRY_TASK_ID" >> ${ledger}; for n in 0 1 2 3 4; do echo "task ${i} line $n"; done`;
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = replicas[(i + attempt) % 3];
        if (!r) continue;
        try {
          const res = await api(r, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'rep', script }) });
          if (res.status === 201) {
            ids[i] = String(res.json.id);
            return;
          }
        } catch {
          // that replica is down: the next one takes the request
        }
      }
      throw new Error(`task ${i} could not be submitted to any replica`);
    };
    let kills = 0;
    for (let i = 0; i < TASKS; i++) {
      if (i === 100 || i === 200) {
        kills++;
        const victim = replicas[1]!;
        replicas[1] = undefined;
        await victim.proc.stop('SIGKILL');
        replicas[1] = await start(1);
      }
      await submit(i);
    }
    assert.equal(kills, 2);

    // A POST whose connection broke may have made a task nobody heard of: it must still run once.
    const tasks = await waitFor(
      async () => {
        const res = await api(replicas[2]!, 'GET', '/v1/tasks?target=rep&limit=1000');
        const list = res.json.tasks as { id: string; status: string }[] | undefined;
        return list && list.length >= TASKS + 1 && list.every((t) => TERMINAL_STATUSES.includes(t.status as TaskStatus)) ? list : undefined;
      },
      240_000,
      'every task to end',
    );
    const runs = readFileSync(ledger, 'utf8').trim().split('\n');
    const counts = new Map<string, number>();
    for (const id of runs) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const t of tasks) assert.ok((counts.get(t.id) ?? 0) <= 1, `${t.id} ran at most once`);
    for (const [i, id] of ids.entries()) {
      assert.ok(id, `task ${i} submitted`);
      assert.equal(counts.get(id), 1, `task ${i} (${id}) ran exactly once`);
      const t = tasks.find((x) => x.id === id);
      assert.equal(t?.status, 'succeeded', `task ${i} succeeded`);
      const out = await api(replicas[i % 3]!, 'GET', `/v1/tasks/${id}/output?maxBytes=1000000`);
      const stdout = Buffer.concat(
        decodeFrames(out.body)
          .filter((f) => f.stream === Streams.stdout)
          .map((f) => f.data),
      ).toString('utf8');
      assert.equal(stdout, expectedOutput(i), `task ${i} output`);
    }
    assert.equal(await follower.exited, 0, follower.stderr);
    const expectedLong = Array.from({ length: 60 }, (_, n) => `long ${n + 1}\n`).join('');
    assert.equal(follower.stdout, expectedLong, 'the follower lost nothing when its replica died');
  });
});
