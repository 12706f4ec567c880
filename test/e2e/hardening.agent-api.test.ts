/**
 * The agent side of the API under abuse, driven by fake agents over real HTTPS: an upload of
 * hundreds of thousands of tiny frames is bounded (the server takes a prefix and says where to
 * continue) and several maximal uploads at once leave `/v1/health` answering within 50 ms; a
 * final status refused for a wrong checksum keeps the checksum, so a retry with another wrong
 * one is refused too; an agent holds no more long polls than its concurrency; a 413 names the
 * limit of the endpoint it came from; a reason with escape sequences is stored harmless; a
 * secret's listing does not give away its length.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FRAME_HEADER_BYTES, MAX_UPLOAD_FRAMES, OUTPUT_FRAMES_CONTENT_TYPE, Streams, decodeJoinToken, encodeFrames, type OutputFrame } from '@ferry/protocol';
import { api, startFerryServer, type ApiResult, type ServerHandle } from '../helpers/ferry.js';

const MIB = 1024 * 1024;

/** Registers a fake hosted agent; returns its bearer token. */
async function registerAgent(server: ServerHandle, name: string, concurrency: number): Promise<string> {
  const join = decodeJoinToken(await server.joinToken(['--hosted']));
  const res = await api(server, 'POST', '/v1/agents/register', {
    token: null,
    body: JSON.stringify({ joinSecret: join?.secret, name, hostname: 'test-host', version: '0', platform: 'linux', concurrency }),
  });
  assert.equal(res.status, 201, res.body.toString());
  return String(res.json.token);
}

function agentCall(server: ServerHandle, token: string, method: string, path: string, body?: unknown): Promise<ApiResult> {
  return api(server, method, path, { token, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** Creates a task on `pool` and has the agent claim it and report it started; returns its id. */
async function runningTask(server: ServerHandle, agentToken: string): Promise<string> {
  const created = await api(server, 'POST', '/v1/tasks', { body: JSON.stringify({ target: 'pool', script: 'true' }) });
  assert.equal(created.status, 201, created.body.toString());
  const poll = await agentCall(server, agentToken, 'POST', '/v1/agent/poll', { free: 1, running: [], waitSeconds: 5 });
  const task = poll.json.task as { id: string } | null;
  assert.ok(task && task.id === created.json.id, 'the agent claims the task');
  assert.equal((await agentCall(server, agentToken, 'POST', `/v1/agent/tasks/${task.id}/started`)).status, 204);
  return task.id;
}

function upload(server: ServerHandle, token: string, taskId: string, offset: number, body: Uint8Array): Promise<ApiResult> {
  return api(server, 'PUT', `/v1/agent/tasks/${taskId}/output?offset=${offset}`, { token, body: Buffer.from(body), contentType: OUTPUT_FRAMES_CONTENT_TYPE });
}

/**
 * Announces a body of `length` bytes, sends 64 KiB of it and waits for the answer (a server
 * refusing a body from its announced length answers without reading it, then cuts the
 * connection: a client sending all of it might see the cut before the answer).
 */
function announce(server: ServerHandle, method: string, path: string, token: string, contentType: string, length: number): Promise<ApiResult> {
  const ca = readFileSync(join(server.dataDir, 'ca.pem'), 'utf8');
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, server.url),
      { method, ca, headers: { authorization: `Bearer ${token}`, 'content-type': contentType, 'content-length': String(length) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: JSON.parse(body.toString()) as Record<string, unknown> });
          req.destroy();
        });
      },
    );
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.write(Buffer.alloc(64 * 1024));
  });
}

/** `count` frames of one byte each, alternating stdout and stderr (which the agent cannot merge). */
function tinyFrames(count: number): OutputFrame[] {
  return Array.from({ length: count }, (_, i) => ({ stream: i % 2 === 0 ? Streams.stdout : Streams.stderr, time: 0, data: Buffer.from([0x61 + (i % 26)]) }));
}

/**
 * Sends uploads from a separate process, so that encrypting them does not slow this process's
 * own requests (the health probes) and only the server is measured.
 */
function uploadFromChild(server: ServerHandle, jobs: { token: string; taskId: string; bodyFile: string }[]): Promise<number[]> {
  const script = `
    import { request } from 'node:https';
    import { readFileSync, writeFileSync } from 'node:fs';
    const [url, ca, jobs] = JSON.parse(process.argv[1]);
    const statuses = await Promise.all(jobs.map((job) => new Promise((resolve, reject) => {
      const body = readFileSync(job.bodyFile);
      const req = request(new URL('/v1/agent/tasks/' + job.taskId + '/output?offset=0', url), {
        method: 'PUT', ca, headers: { authorization: 'Bearer ' + job.token, 'content-type': '${OUTPUT_FRAMES_CONTENT_TYPE}' },
      }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end(body);
    })));
    process.stdout.write(JSON.stringify(statuses));`;
  const ca = readFileSync(join(server.dataDir, 'ca.pem'), 'utf8');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify([server.url, ca, jobs])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`uploader exited with ${code}`))));
  });
}

describe('hardening: agent uploads, final status and polls', () => {
  let server: ServerHandle;
  let keepAlive: Agent;

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false, env: { FERRY_LEASE_SECONDS: '120' } });
    const target = await api(server, 'POST', '/v1/targets', { body: JSON.stringify({ name: 'pool', type: 'shell', redact: 'all' }) });
    assert.equal(target.status, 201, target.body.toString());
    // The target's sealing key, published as its first agent would: polls then wait for work.
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
    const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const keyAgent = await registerAgent(server, 'key-maker', 1);
    const published = await agentCall(server, keyAgent, 'POST', `/v1/agent/targets/${String(target.json.id)}/key`, { publicKeyPem });
    assert.equal(published.status, 201, published.body.toString());
    keepAlive = new Agent({ ca: readFileSync(join(server.dataDir, 'ca.pem'), 'utf8'), keepAlive: true, maxSockets: 1 });
  });
  after(async () => {
    keepAlive?.destroy();
    await server?.stop();
  });

  /** One health request on a kept-alive connection; resolves with how long its answer took. */
  function timedHealth(): Promise<number> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const req = request(new URL('/v1/health', server.url), { agent: keepAlive }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`health: ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('an upload of 600,000 one-byte frames is bounded: the first MAX_UPLOAD_FRAMES are stored and the answer says where to continue', async () => {
    const token = await registerAgent(server, 'frames', 1);
    const taskId = await runningTask(server, token);
    const frames = tinyFrames(Math.floor((8 * MIB) / (FRAME_HEADER_BYTES + 1)));
    const body = encodeFrames(frames);
    assert.ok(body.length <= 8 * MIB);
    const first = await upload(server, token, taskId, 0, body);
    assert.equal(first.status, 200, first.body.toString());
    assert.equal(first.json.nextOffset, MAX_UPLOAD_FRAMES, 'one byte per frame: the offset after the frames taken');
    // The agent continues from there, as it does after any answer.
    const second = await upload(server, token, taskId, MAX_UPLOAD_FRAMES, encodeFrames(frames.slice(MAX_UPLOAD_FRAMES)));
    assert.equal(second.json.nextOffset, 2 * MAX_UPLOAD_FRAMES);
    const rest = encodeFrames(frames.slice(2 * MAX_UPLOAD_FRAMES, 2 * MAX_UPLOAD_FRAMES + 10));
    assert.equal((await upload(server, token, taskId, 2 * MAX_UPLOAD_FRAMES, rest)).json.nextOffset, 2 * MAX_UPLOAD_FRAMES + 10);
  });

  it('/v1/health answers within 50 ms (99th percentile) while four maximal uploads are processed', async (t) => {
    // Two kinds of maximal upload: 8 MiB of one-byte frames (most frames), and 8 MiB of text in
    // 2 KiB frames (most bytes to redact and store).
    const manyFrames = join(server.dataDir, 'many-frames.bin');
    writeFileSync(manyFrames, encodeFrames(tinyFrames(Math.floor((8 * MIB) / (FRAME_HEADER_BYTES + 1)))));
    const line = Buffer.from('user=alice@example.com password=hunter2 token=ghp_0123456789abcdefghijklmnopqrstuvwxyz\n');
    const chunk = Buffer.alloc(2048 - FRAME_HEADER_BYTES, line.toString());
    const manyBytes = join(server.dataDir, 'many-bytes.bin');
    const bytesFrames: OutputFrame[] = Array.from({ length: Math.floor((8 * MIB) / 2048) }, (_, i) => ({
      stream: i % 2 === 0 ? Streams.stdout : Streams.stderr,
      time: 0,
      data: chunk,
    }));
    writeFileSync(manyBytes, encodeFrames(bytesFrames));

    /** Four uploads into four fresh running tasks, with a health probe every 5 ms meanwhile: the probes' latencies. */
    const round = async (n: number): Promise<number[]> => {
      const token = await registerAgent(server, `load-${n}`, 4);
      const taskIds = [await runningTask(server, token), await runningTask(server, token), await runningTask(server, token), await runningTask(server, token)];
      for (let i = 0; i < 20; i++) await timedHealth(); // a warm connection
      const uploads = uploadFromChild(
        server,
        taskIds.map((taskId, i) => ({ token, taskId, bodyFile: i % 2 === 0 ? manyFrames : manyBytes })),
      );
      let done = false;
      void uploads.finally(() => (done = true));
      const latencies: number[] = [];
      const deadline = Date.now() + 60_000;
      // One probe every 5 ms: enough to see a stall, without taking the CPU from the server.
      while (!done && Date.now() < deadline && latencies.length < 10_000) {
        latencies.push(await timedHealth());
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.deepEqual(await uploads, [200, 200, 200, 200]);
      assert.ok(latencies.length >= 10, `only ${latencies.length} health answers while the uploads ran`);
      return latencies.sort((a, b) => a - b);
    };

    // The 99th percentile, in the best of up to three rounds: on a shared machine (the suite runs
    // two files at once) a probe can lose the CPU to another process now and then, which is no
    // stall of the server's and passes; a stall of an upload's (the 2.4-3.9 s) is the
    // same in every round, and is also over the one-second bound on every probe.
    const p99s: number[] = [];
    for (let n = 1; n <= 3; n++) {
      const sorted = await round(n);
      const p99 = sorted[Math.floor(sorted.length * 0.99)] ?? Infinity;
      const worst = sorted[sorted.length - 1] ?? Infinity;
      t.diagnostic(
        `round ${n}: ${sorted.length} health answers: p50 ${sorted[sorted.length >> 1]?.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, slowest ${worst.toFixed(1)} ms`,
      );
      assert.ok(worst < 1000, `the slowest health answer took ${worst.toFixed(1)} ms`);
      p99s.push(p99);
      if (p99 < 50) break;
    }
    const best = Math.min(...p99s);
    assert.ok(best < 50, `in each of ${p99s.length} rounds, 99% of health answers took up to ${p99s.map((p) => p.toFixed(1)).join(' / ')} ms`);
  });

  it('a final status refused for a wrong checksum keeps the checksum: a retry with another wrong one is refused, the right one accepted', async () => {
    const token = await registerAgent(server, 'checksum', 1);
    const taskId = await runningTask(server, token);
    const output = Buffer.from('hello, checksum\n');
    assert.equal((await upload(server, token, taskId, 0, encodeFrames([{ stream: 1, time: 0, data: output }]))).status, 200);
    const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
    const finish = (outputBytes: number, outputSha256: string): Promise<ApiResult> =>
      agentCall(server, token, 'POST', `/v1/agent/tasks/${taskId}/finish`, {
        status: 'succeeded',
        exitCode: 0,
        signal: null,
        reason: null,
        outputBytes,
        outputSha256,
      });
    const wrongLength = await finish(output.length - 1, sha(output));
    assert.equal(wrongLength.status, 409);
    assert.equal(wrongLength.json.code, 'FERRY_E_OUTPUT_MISMATCH');
    for (const wrong of [sha('something else'), sha('yet another thing')]) {
      const res = await finish(output.length, wrong);
      assert.equal(res.status, 409, 'a wrong checksum is refused, also on a retry');
      assert.equal(res.json.code, 'FERRY_E_OUTPUT_MISMATCH');
    }
    assert.equal((await finish(output.length, sha(output))).status, 204);
    const task = await api(server, 'GET', `/v1/tasks/${taskId}`);
    assert.equal(task.json.status, 'succeeded');
  });

  it('an agent holds at most its concurrency of long polls: one past it ends the oldest at once', async () => {
    const token = await registerAgent(server, 'polls', 2);
    const poll = async (): Promise<{ ms: number; res: ApiResult }> => {
      const started = Date.now();
      const res = await agentCall(server, token, 'POST', '/v1/agent/poll', { free: 0, running: [], waitSeconds: 6 });
      return { ms: Date.now() - started, res };
    };
    const first = poll();
    await new Promise((r) => setTimeout(r, 300));
    const second = poll();
    await new Promise((r) => setTimeout(r, 300));
    const third = poll(); // one past the agent's concurrency of 2
    const [a, b, c] = await Promise.all([first, second, third]);
    for (const { res } of [a, b, c]) {
      assert.equal(res.status, 200);
      assert.equal(res.json.task, null);
    }
    assert.ok(a.ms < 3000, `the oldest poll answered after ${a.ms} ms, not at once`);
    assert.ok(b.ms >= 5000 && c.ms >= 5000, `the newest polls waited ${b.ms} and ${c.ms} ms, not their 6 s`);
  });

  it("a body over an endpoint's limit gets 413 naming that endpoint's limit: 8 MiB for uploads, 2 MiB for JSON", async () => {
    const token = await registerAgent(server, 'too-large', 1);
    const taskId = await runningTask(server, token);
    const upload9 = await announce(server, 'PUT', `/v1/agent/tasks/${taskId}/output?offset=0`, token, OUTPUT_FRAMES_CONTENT_TYPE, 9 * MIB);
    assert.equal(upload9.status, 413);
    assert.equal(upload9.json.code, 'FERRY_E_BODY_TOO_LARGE');
    assert.match(String(upload9.json.message), /limit of 8 MiB \(8388608 bytes\)/);
    const json3 = await announce(server, 'POST', '/v1/tasks', server.adminToken, 'application/json', 3 * MIB);
    assert.equal(json3.status, 413);
    assert.match(String(json3.json.message), /limit of 2 MiB \(2097152 bytes\)/);
  });

  it("a final status's reason keeps tabs and newlines but shows other control characters as \\xNN; a signal name with one is refused", async () => {
    const token = await registerAgent(server, 'reasons', 1);
    const taskId = await runningTask(server, token);
    const finish = (signal: string | null): Promise<ApiResult> =>
      agentCall(server, token, 'POST', `/v1/agent/tasks/${taskId}/finish`, {
        status: 'error',
        exitCode: null,
        signal,
        reason: 'could not start:\n\tbwrap: \u001b]0;owned\u0007\u001b[2Jno such file',
        outputBytes: 0,
        outputSha256: createHash('sha256').digest('hex'),
      });
    const badSignal = await finish('SIG\u001b[31mKILL');
    assert.equal(badSignal.status, 400);
    assert.match(String(badSignal.json.message), /signal: must not contain control characters/);
    assert.equal((await finish(null)).status, 204);
    const task = await api(server, 'GET', `/v1/tasks/${taskId}`);
    assert.equal(task.json.reason, 'could not start:\n\tbwrap: \\x1b]0;owned\\x07\\x1b[2Jno such file');
  });

  it('listing secrets gives names, key ids, who and when: not the length of the value', async () => {
    const set = await server.cli(['secret', 'set', 'pool', 'DB_PASSWORD'], { input: 'correct horse battery staple' });
    assert.equal(set.code, 0, set.stderr);
    const list = await api(server, 'GET', '/v1/targets/pool/secrets');
    const secrets = list.json.secrets as Record<string, unknown>[];
    assert.equal(secrets.length, 1);
    assert.deepEqual(Object.keys(secrets[0] ?? {}).sort(), ['kid', 'name', 'setAt', 'setBy']);
  });
});
