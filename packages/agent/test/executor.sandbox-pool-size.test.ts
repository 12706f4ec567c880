/**
 * How many sandboxes the pool keeps waiting, with stand-in sandboxes (the pool's own logic; the
 * real bubblewrap pool is tested in executor.sandbox-pool.test.ts): the recent peak plus one
 * spare, so tasks that come one after another each find a sandbox ready.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SandboxPool, type Poolable } from '../src/executor/sandbox-pool.js';

class Stand implements Poolable {
  readonly ready = Promise.resolve(true);
  disposed = false;
  dispose(): Promise<void> {
    this.disposed = true;
    return Promise.resolve();
  }
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function poolOf(max: number) {
  const launched: Stand[] = [];
  const pool = new SandboxPool<Stand, string>(
    () => {
      const s = new Stand();
      launched.push(s);
      return Promise.resolve(s);
    },
    (limits) => limits,
    { max, maxWaitMs: 60_000, idleMs: 60_000 },
  );
  return { pool, launched };
}

/** One task after another: take, refill, end. */
async function oneAfterAnother(pool: SandboxPool<Stand, string>, n: number): Promise<Stand[]> {
  const got: Stand[] = [];
  for (let i = 0; i < n; i++) {
    const s = await pool.take('none');
    if (s) got.push(s);
    pool.refillSoon();
    await turn();
    await turn();
    pool.done('none');
  }
  return got;
}

test('tasks one after another: one in use, two waiting, so the next always finds one ready', async () => {
  const { pool, launched } = poolOf(4);
  try {
    assert.equal(pool.take('none'), undefined, 'the first task finds none: a miss, it makes its own');
    pool.refillSoon();
    await turn();
    await turn();
    pool.done('none');
    assert.equal(pool.stats.waiting, 2, 'peak 1 plus one spare');
    const got = await oneAfterAnother(pool, 10);
    assert.equal(got.length, 10, 'every later task had a waiting sandbox');
    assert.equal(new Set(got).size, 10, 'none handed out twice');
    assert.equal(pool.stats.misses, 1);
    assert.equal(pool.stats.waiting, 2);
    assert.equal(launched.length, 12, 'one launched per task taken, plus the two first');
  } finally {
    await pool.close();
  }
});

test('the spare stays within --sandbox-pool: with a pool of one, one waits', async () => {
  const { pool } = poolOf(1);
  try {
    assert.equal(pool.take('none'), undefined);
    pool.refillSoon();
    await turn();
    await turn();
    pool.done('none');
    assert.equal(pool.stats.waiting, 1);
  } finally {
    await pool.close();
  }
});

test('closing destroys every waiting sandbox', async () => {
  const { pool, launched } = poolOf(4);
  assert.equal(pool.take('none'), undefined);
  pool.refillSoon();
  await turn();
  await turn();
  await pool.close();
  assert.equal(launched.length, 2);
  assert.ok(launched.every((s) => s.disposed));
});
