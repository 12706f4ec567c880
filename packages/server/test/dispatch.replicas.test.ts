/**
 * Wake-ups across replicas, on a real PostgreSQL: two dispatch hubs, each with its own relay
 * (its own LISTEN connection and pool) on one database, stand for two replicas. A poll waiting
 * on one wakes within milliseconds for a task notified on the other; output readers likewise;
 * the listener comes back after its connection is killed; and with no notification at all, a
 * wait still ends within the one-second re-check. A replica alone on its database publishes
 * nothing, and starts publishing as soon as another replica listens.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { DispatchHub } from '../src/dispatch.js';
import { Db } from '../src/store/postgres/db.js';
import { PgHubRelay } from '../src/store/postgres/notify.js';
import type { AgentRow } from '../src/store/types.js';
import { usePostgres } from './helpers/stores.js';

const postgres = usePostgres();
const agent: AgentRow = {
  id: 'a_1',
  orgId: null,
  name: 'one',
  hostname: 'h',
  version: '0',
  platform: 'linux',
  hosted: true,
  concurrency: 1,
  registeredAt: 0,
  lastSeenAt: 0,
  revokedAt: null,
  targetIds: [],
};
const target = { id: 'g_1', orgId: 'o_default', agentMode: 'hosted' as const };

interface Replica {
  hub: DispatchHub;
  relay: PgHubRelay;
  db: Db;
}
const replicas: Replica[] = [];
let url: string;

async function replica(recheckMs = 1000, on = url): Promise<Replica> {
  const db = new Db({ url: on, size: 2 });
  const holder: { hub?: DispatchHub } = {};
  const relay = new PgHubRelay({ db, url: on, deliver: (s) => holder.hub?.receive(s), resync: () => holder.hub?.wakeEveryone() });
  const hub = new DispatchHub({ relay, recheckMs });
  holder.hub = hub;
  await relay.start();
  const r = { hub, relay, db };
  replicas.push(r);
  return r;
}

/** How long a wait on `on` took when `wake` runs once the wait has begun. */
async function timeWake(wait: () => Promise<void>, wake: () => void): Promise<number> {
  const start = performance.now();
  const waiting = wait();
  await new Promise((r) => setTimeout(r, 20));
  wake();
  await waiting;
  return performance.now() - start - 20;
}

before(async () => {
  url = await postgres.url('hub');
});
after(async () => {
  for (const r of replicas.splice(0)) {
    await r.relay.close();
    await r.db.close();
  }
});

test('a poll waiting on replica A wakes within milliseconds for a task notified on replica B; so does an output reader', async (t) => {
  const a = await replica(60_000);
  const b = await replica(60_000);
  const never = new AbortController().signal;
  const pollMs = await timeWake(
    () => a.hub.waitForWork(agent, true, 30_000, never),
    () => b.hub.notifyTask(target),
  );
  assert.ok(pollMs < 500, `woken after ${pollMs.toFixed(1)} ms`);
  const readMs = await timeWake(
    () => a.hub.waitForOutput('t_1', 30_000, never),
    () => b.hub.notifyOutput('t_1'),
  );
  assert.ok(readMs < 500, `reader woken after ${readMs.toFixed(1)} ms`);
  t.diagnostic(`cross-replica wake-up: poll ${pollMs.toFixed(1)} ms, output reader ${readMs.toFixed(1)} ms`);
  // Not every waiter: a task the agent may not run (another organization's self-hosted target) wakes nobody.
  const other = { id: 'g_2', orgId: 'o_x', agentMode: 'self-hosted' as const };
  const start = performance.now();
  const waiting = a.hub.waitForWork(agent, true, 300, never);
  b.hub.notifyTask(other);
  await waiting;
  assert.ok(performance.now() - start >= 290, 'the wait ran its course');
});

test('the listener reconnects after its connection is killed, and wake-ups flow again', { timeout: 30_000 }, async () => {
  const a = await replica(60_000);
  const b = await replica(60_000);
  const pid = await a.relay.listenerPid();
  assert.ok(pid);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  } finally {
    await admin.end();
  }
  const deadline = Date.now() + 10_000;
  let now: number | undefined;
  while (Date.now() < deadline) {
    now = await a.relay.listenerPid().catch(() => undefined);
    if (now !== undefined && now !== pid) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(now !== undefined && now !== pid, 'a new listening connection');
  const ms = await timeWake(
    () => a.hub.waitForWork(agent, true, 30_000, new AbortController().signal),
    () => b.hub.notifyTask(target),
  );
  assert.ok(ms < 500, `woken after ${ms.toFixed(1)} ms`);
});

test('with no notification at all, a wait ends within the one-second re-check', async () => {
  const a = await replica(1000);
  const start = performance.now();
  await a.hub.waitForWork(agent, true, 30_000, new AbortController().signal);
  const ms = performance.now() - start;
  assert.ok(ms >= 900 && ms < 1500, `${ms.toFixed(0)} ms`);
});

async function until(check: () => boolean, ms: number, what: string): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > ms) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - start;
}

test(
  'a replica alone publishes no wake-ups; as soon as a second one listens both do, and when it leaves the first stops again',
  { timeout: 30_000 },
  async (t) => {
    const own = await postgres.url('hub_alone');
    const a = await replica(60_000, own);
    // A plain listener on the channel sees every NOTIFY; it is no replica (another application name), so it changes nothing.
    const spy = new pg.Client({ connectionString: own });
    await spy.connect();
    const heard: string[] = [];
    spy.on('notification', (m) => heard.push(m.payload ?? ''));
    await spy.query('LISTEN ferry_hub');
    try {
      a.hub.notifyTask(target);
      a.hub.notifyOutput('t_1');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(heard, [], 'alone: nothing published');
      assert.equal(a.relay.othersListening, false);

      const b = await replica(60_000, own);
      assert.equal(b.relay.othersListening, true, 'the newcomer found the first replica before its start resolved');
      const learned = await until(() => a.relay.othersListening, 1000, "the first replica hearing the newcomer's hello");
      assert.ok(
        heard.some((text: string) => text.includes('"hello"')),
        'the hello was published',
      );
      const toA = await timeWake(
        () => a.hub.waitForWork(agent, true, 30_000, new AbortController().signal),
        () => b.hub.notifyTask(target),
      );
      const toB = await timeWake(
        () => b.hub.waitForWork(agent, true, 30_000, new AbortController().signal),
        () => a.hub.notifyTask(target),
      );
      assert.ok(toA < 500 && toB < 500, `woken after ${toA.toFixed(1)} and ${toB.toFixed(1)} ms`);

      replicas.splice(replicas.indexOf(b), 1);
      await b.relay.close();
      await b.db.close();
      const alone = await until(() => !a.relay.othersListening, 6000, 'the first replica seeing it is alone again');
      t.diagnostic(`hello heard after ${learned.toFixed(1)} ms; wake-ups ${toA.toFixed(1)} / ${toB.toFixed(1)} ms; alone again after ${alone.toFixed(0)} ms`);
      const before = heard.length;
      a.hub.notifyTask(target);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(heard.length, before, 'alone again: nothing published');
    } finally {
      await spy.end();
    }
  },
);
