/**
 * `ferry server` on a real PostgreSQL 15 (test/helpers/databases.ts), as real processes: one
 * server with the embedded agent runs tasks with output and secrets; a second server on the same
 * database and the same data folder (`--no-embedded-agent`, as a replica mounting one shared
 * volume) accepts a login made with the folder's admin token and CA, lists a target the first
 * made, and serves the output of a task submitted through the other. A poll waiting on one
 * replica wakes for a task created on the other within milliseconds (LISTEN/NOTIFY), far below
 * the one-second re-check. An agent whose uploads go to one replica and whose final status goes
 * to the other has its output digest checked there, from the state stored with the output.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FerryClient } from '@ferry/client';
import { pinnedTransport } from '@ferry/client/node';
import { OUTPUT_DIGEST_HEADER, OutputDigest, Routes, Streams, decodeJoinToken, encodeFrames, type BlockHasher } from '@ferry/protocol';
import { startPostgres, type DbServer } from '../helpers/databases.js';
import { api, startFerryServer, taskShow, tempDir, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

const SECRET = 'pg-replica-S3cret-value-0042';
const native: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();
const digestOf = (data: Uint8Array): string => new OutputDigest(native).update(data).hex();

describe('ferry server on PostgreSQL, two replicas on one database and data folder', () => {
  let db: DbServer;
  let a: ServerHandle;
  let b: ServerHandle;
  const dataDir = tempDir('pg-replicas');

  before(async () => {
    db = await startPostgres();
    const url = `postgres://${db.user}:${encodeURIComponent(db.password)}@${db.host}:${db.port}/${db.database}`;
    // Both ways of giving the URL: the flag on one, the environment on the other.
    a = await startFerryServer({ dataDir, args: ['--database', url, '--database-pool-size', '5'] });
    b = await startFerryServer({ dataDir, embeddedAgent: false, env: { FERRY_DATABASE_URL: url } });
    await waitForAgents(a, 1);
    assert.equal((await a.cli(['target', 'create', 'web', '--type', 'shell'])).code, 0);
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    await db?.stop();
  });

  it('runs tasks with output and secrets: the secret reaches the task, never the stored output', async () => {
    const set = await a.cli(['secret', 'set', 'web', 'API_TOKEN'], { input: `${SECRET}\n` });
    assert.equal(set.code, 0, set.stderr);
    const r = await a.cli(['run', 'web', '-c', 'echo "token=$API_TOKEN"; seq 1 20000; echo done >&2']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(SECRET), 'the secret is redacted in the output');
    assert.match(r.stdout, /^token=\*\*\*\n1\n2\n/, 'the value reached the task (the agent masks it)');
    assert.ok(r.stdout.endsWith('\n19999\n20000\n'));
  });

  it("the second replica: the folder's admin token and CA log in; it lists a target the first made, and the first lists one it made", async () => {
    assert.equal(a.adminToken, b.adminToken, 'one admin token in the shared folder');
    assert.equal(a.fingerprint, b.fingerprint, 'one CA');
    const listed = JSON.parse((await b.cli(['target', 'list', '--json'])).stdout) as { name: string }[];
    assert.ok(listed.some((t) => t.name === 'web'));
    assert.equal((await b.cli(['target', 'create', 'made-on-b', '--type', 'shell'])).code, 0);
    const onA = JSON.parse((await a.cli(['target', 'list', '--json'])).stdout) as { name: string }[];
    assert.ok(onA.some((t) => t.name === 'made-on-b'));
  });

  it('a task submitted through one replica runs, and its output is read whole through the other', async () => {
    const sub = await b.cli(['run', 'web', '--detach', '-c', 'seq 1 50000; echo end']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    const logs = await a.cli(['task', 'logs', '-f', id]);
    assert.equal(logs.code, 0, logs.stderr);
    const expected = `${Array.from({ length: 50000 }, (_, i) => i + 1).join('\n')}\nend\n`;
    assert.equal(createHash('sha256').update(logs.stdout).digest('hex'), createHash('sha256').update(expected).digest('hex'));
    assert.equal((await taskShow(b, id)).status, 'succeeded');
    const again = await b.cli(['task', 'logs', id]);
    assert.equal(again.stdout, expected, 'and through the one it was submitted to');
  });

  it("an agent's uploads to one replica and its final status to the other: the digest is checked from the stored state", { timeout: 120_000 }, async () => {
    assert.equal((await a.cli(['target', 'create', 'split', '--type', 'shell', '--agent', 'self-hosted'])).code, 0);
    // An agent by hand, so that each request goes where the test says (a real agent fails over
    // between URLs only when one does not answer).
    const transport = pinnedTransport(readFileSync(join(dataDir, 'ca.pem'), 'utf8'));
    const client = (url: string, token?: string): FerryClient => new FerryClient({ baseUrl: url, fetch: transport.fetch, token });
    const secret = decodeJoinToken(await a.joinToken(['--target', 'split']))?.secret ?? '';
    const registered = await client(b.url).call(Routes.registerAgent, {
      body: { joinSecret: secret, name: 'by-hand', hostname: 'test', version: '0.1.0', platform: 'linux', concurrency: 1 },
    });
    const onA = client(a.url, registered.token);
    const onB = client(b.url, registered.token);
    const target = JSON.parse((await a.cli(['target', 'show', 'split', '--json'])).stdout) as { id: string };
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
    await onB.call(Routes.publishKey, { params: { id: target.id }, body: { publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() } });

    const sub = await b.cli(['run', 'split', '--detach', '-c', 'echo by hand']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    const polled = await onA.call(Routes.poll, { body: { free: 1, running: [], waitSeconds: 10 } });
    assert.equal(polled.task?.id, id);
    await onA.call(Routes.confirmStart, { params: { id } });
    // Two uploads to replica A, the second ending mid-block (the stored state holds a partial block).
    const first = Buffer.alloc(70_000, 'a');
    const second = Buffer.from('and the rest\n');
    const all = Buffer.concat([first, second]);
    const upload = (at: number, data: Buffer, digest: string) =>
      onA.call(Routes.uploadOutput, {
        params: { id },
        query: { offset: at },
        body: encodeFrames([{ stream: Streams.stdout, time: 0.5, data }]),
        headers: { [OUTPUT_DIGEST_HEADER]: digest },
      });
    await upload(0, first, digestOf(first));
    await upload(first.length, second, digestOf(all));
    // The final status to replica B, which saw none of the uploads: a wrong digest is refused,
    // the right one accepted.
    const finish = (outputDigest: string) =>
      onB.call(Routes.finishTask, {
        params: { id },
        body: { status: 'succeeded', exitCode: 0, signal: null, reason: null, outputBytes: all.length, outputDigest },
      });
    await assert.rejects(finish(digestOf(first)), { code: 'FERRY_E_OUTPUT_MISMATCH' });
    await finish(digestOf(all));
    assert.equal((await taskShow(a, id)).status, 'succeeded');
    const logs = await b.cli(['task', 'logs', id]);
    assert.equal(createHash('sha256').update(logs.stdout).digest('hex'), createHash('sha256').update(all).digest('hex'));
  });

  it('a poll waiting on one replica wakes for a task created on the other within milliseconds', { timeout: 120_000 }, async (t) => {
    assert.equal((await a.cli(['target', 'create', 'edge', '--type', 'shell', '--agent', 'self-hosted'])).code, 0);
    // The agent dials replica B only; tasks are created through replica A.
    await b.startAgent(await b.joinToken(['--target', 'edge']), { executor: 'process', name: 'edge-agent', concurrency: 1 });
    await waitForAgents(b, 1);
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      await new Promise((r) => setTimeout(r, 300)); // the agent is back in its long poll
      const start = performance.now();
      const created = await api(a, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'edge', script: 'true' }) });
      assert.equal(created.status, 201, created.body.toString());
      const id = String((created.json as { id?: string }).id ?? (created.json as { task?: { id: string } }).task?.id);
      await waitFor(
        async () => {
          const r = await api(b, 'GET', `/v1/tasks/${id}`);
          return (r.json as { status?: string }).status !== 'queued';
        },
        10_000,
        'claimed',
      );
      waits.push(performance.now() - start);
      await waitFor(async () => (await taskShow(a, id)).status === 'succeeded', 10_000, 'done');
    }
    waits.sort((x, y) => x - y);
    const median = waits[Math.floor(waits.length / 2)]!;
    t.diagnostic(`create on A → claimed through B: median ${median.toFixed(0)} ms, all ${waits.map((w) => w.toFixed(0)).join(', ')} ms`);
    assert.ok(median < 400, `median ${median.toFixed(0)} ms: woken by notification, not by the 1 s re-check`);
  });

  it('two replicas starting at once on a new data folder make one CA and one admin token, which log in to both', { timeout: 120_000 }, async () => {
    execFileSync('psql', ['-h', db.host, '-p', String(db.port), '-U', db.user, '-d', db.database, '-c', 'CREATE DATABASE fresh'], {
      env: { ...process.env, PGPASSWORD: db.password },
      stdio: 'pipe',
    });
    const url = `postgres://${db.user}:${encodeURIComponent(db.password)}@${db.host}:${db.port}/fresh`;
    const folder = tempDir('pg-fresh');
    // Both log in with the folder's admin-token file and the CA fingerprint each printed.
    const [one, two] = await Promise.all([
      startFerryServer({ dataDir: folder, embeddedAgent: false, args: ['--database', url] }),
      startFerryServer({ dataDir: folder, embeddedAgent: false, args: ['--database', url] }),
    ]);
    try {
      assert.equal(one.fingerprint, two.fingerprint, 'one CA');
      assert.equal(readFileSync(join(folder, 'admin-token'), 'utf8').trim(), one.adminToken);
      for (const s of [one, two]) assert.equal((await s.cli(['target', 'list'])).code, 0);
      assert.ok(!existsSync(join(folder, 'server.lock')), 'the folder is not locked with PostgreSQL');
      const tokens = JSON.parse((await one.cli(['token', 'list', '--json'])).stdout) as { name: string }[];
      assert.deepEqual(
        tokens.map((t) => t.name).filter((n) => n.startsWith('admin')),
        ['admin'],
        'one admin token made',
      );
    } finally {
      await two.stop();
      await one.stop();
    }
  });
});
