/**
 * Soak: 300 tasks over 3 agents while agents and the server are killed (-9) and
 * restarted at random. Every task must end in exactly one terminal state, none may run twice,
 * and every task that completed must have its output byte-exact.
 *
 * Agents use the process executor here so each run can append to a ledger on the host: that
 * ledger, not the server, is the witness for "ran at most once".
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Streams, decodeFrames } from '@ferry/protocol';
import { api, freePort, startFerryServer, tempDir, waitFor, type FerryProcess, type ServerHandle } from '../helpers/ferry.js';

const TASKS = 300;
const KILLS = 10;

function expectedOutput(i: number): string {
  return Array.from({ length: 5 }, (_, n) => `task ${i} line ${n}\n`).join('');
}

/** Deterministic pseudo-random choices, so a failure can be replayed. */
function lcg(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('soak: 300 tasks, 3 agents, random kills of agents and the server', () => {
  let server: ServerHandle;
  const agents: { dir: string; proc: FerryProcess | undefined }[] = [];
  after(async () => {
    await Promise.allSettled(agents.map((a) => a.proc?.stop('SIGKILL') ?? Promise.resolve(null)));
    await server?.stop();
  });

  it('every task ends once, none runs twice, completed output is byte-exact', async () => {
    const port = await freePort();
    const dataDir = tempDir('soak-server');
    const env = { FERRY_LEASE_SECONDS: '3', FERRY_HEARTBEAT_SECONDS: '0.5' };
    const ledger = join(tempDir('soak-ledger'), 'runs');
    server = await startFerryServer({ embeddedAgent: false, dataDir, port, env });
    assert.equal((await server.cli(['target', 'create', 'soak', '--type', 'shell'])).code, 0);
    const startAgent = async (i: number): Promise<void> => {
      const a = agents[i]!;
      a.proc = await server.startAgent(existsSync(join(a.dir, 'agent.json')) ? '' : await server.joinToken(['--hosted']), {
        dataDir: a.dir,
        executor: 'process',
        concurrency: 2,
        name: `soak-${i}`,
      });
    };
    for (let i = 0; i < 3; i++) {
      agents.push({ dir: tempDir(`soak-agent-${i}`), proc: undefined });
      await startAgent(i);
    }
    const ids: string[] = [];
    for (let i = 0; i < TASKS; i++) {
      const script = `echo "$FERRY_TASK_ID" >> ${ledger}; for n in 0 1 2 3 4; do echo "task ${i} line $n"; sleep 0.1; done`;
      const res = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'soak', script }) });
      assert.equal(res.status, 201);
      ids.push(String(res.json.id));
    }
    const random = lcg(42);
    for (let k = 0; k < KILLS; k++) {
      await new Promise((r) => setTimeout(r, 500 + random() * 2000));
      const victim = Math.floor(random() * 4);
      if (victim === 3) {
        await server.proc.stop('SIGKILL');
        server = await startFerryServer({ embeddedAgent: false, dataDir, port, env });
      } else {
        await agents[victim]!.proc?.stop('SIGKILL');
        await startAgent(victim);
      }
    }
    const terminal = new Set(['succeeded', 'failed', 'cancelled', 'timed_out', 'lost', 'error']);
    const tasks = await waitFor(
      async () => {
        const res = await api(server, 'GET', '/v1/tasks?target=soak&limit=1000');
        const list = res.json.tasks as { id: string; status: string; outputBytes: number }[] | undefined;
        return list && list.length === TASKS && list.every((t) => terminal.has(t.status)) ? list : undefined;
      },
      240_000,
      'every task to end',
    );
    const runs = readFileSync(ledger, 'utf8').trim().split('\n');
    const counts = new Map<string, number>();
    for (const id of runs) counts.set(id, (counts.get(id) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'no task ran twice');
    const byId = new Map(tasks.map((t) => [t.id, t]));
    let succeeded = 0;
    for (const [i, id] of ids.entries()) {
      const t = byId.get(id);
      assert.ok(t, id);
      if (t.status !== 'succeeded') continue;
      succeeded++;
      assert.equal(counts.get(id), 1, `${id} succeeded, so it ran exactly once`);
      const out = await api(server, 'GET', `/v1/tasks/${id}/output?maxBytes=1000000`);
      const stdout = Buffer.concat(
        decodeFrames(out.body)
          .filter((f) => f.stream === Streams.stdout)
          .map((f) => f.data),
      ).toString('utf8');
      assert.equal(stdout, expectedOutput(i), `${id} output`);
    }
    const outcomes = [...byId.values()].reduce<Record<string, number>>((m, t) => ({ ...m, [t.status]: (m[t.status] ?? 0) + 1 }), {});
    console.log(`soak outcomes: ${JSON.stringify(outcomes)}; runs recorded: ${runs.length}`);
    assert.ok(succeeded >= TASKS * 0.7, `most tasks completed (${succeeded} of ${TASKS})`);
    assert.ok(succeeded < TASKS, 'the kills landed on running tasks (some were lost), so the soak tested something');
  });
});
