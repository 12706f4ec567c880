/**
 * A bounded in-process load generator that speaks the agent protocol: it registers `count`
 * hosted agents with one-time join tokens and holds one long poll per agent (free: 1). When a
 * poll hands out a task, that simulated agent reports it started and finished (empty output,
 * exit 0) the way a real agent does, then polls again.
 *
 * Bounds: every loop stops at `deadline` (ms since epoch) or on stop(); every request has a
 * timeout; only the loopback server given is ever contacted.
 */
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { createHash } from 'node:crypto';
import { FERRY_VERSION, decodeJoinToken } from '@ferry/protocol';
import { Api } from './harness.mjs';
import { pool, sleep } from './stats.mjs';

const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

export class LoadGenerator {
  constructor(server, count, deadline) {
    this.server = server;
    this.count = count;
    this.deadline = deadline;
    this.agents = [];
    this.stopped = false;
    this.loops = [];
    /** Polls fully written to the server's socket and not yet answered. */
    this.pollsOpen = 0;
    this.errors = 0;
    this.lastError = undefined;
    this.handled = 0;
    /** Poll answers with no task in them (the long poll's time ran out, or key work only). */
    this.emptyAnswers = 0;
    /** taskId → { receivedAt (performance.now()), done: Promise } */
    this.received = new Map();
    this.waiters = new Map();
    /** targetId → promise of its key being published (one simulated agent does it, as one real agent would). */
    this.keys = new Map();
    this.keysPublished = 0;
    // One connection per held poll, plus slack for the started/finish reports.
    this.pollApi = new Api(server.url, server.caPem, undefined, { maxSockets: count + 64 });
    this.setupApi = new Api(server.url, server.caPem, server.adminToken, { maxSockets: 16 });
  }

  /** Creates one hosted join token per agent through the API and registers each. */
  async register() {
    const indexes = Array.from({ length: this.count }, (_, i) => i);
    this.agents = await pool(indexes, 16, async (i) => {
      if (Date.now() > this.deadline) throw new Error('load generator: deadline passed while registering');
      const { json: created } = await this.setupApi.json('POST', '/v1/agent-tokens', { hosted: true, ttlSeconds: 3600 });
      const payload = decodeJoinToken(created.token);
      if (!payload) throw new Error('load generator: the server returned a join token that does not decode');
      if (payload.url !== this.server.url) throw new Error(`load generator: join token points at ${payload.url}, not ${this.server.url}`);
      const { json: reg } = await this.setupApi.json(
        'POST',
        '/v1/agents/register',
        {
          joinSecret: payload.secret,
          name: `sim-${String(i).padStart(4, '0')}`,
          hostname: 'ferry-bench-loadgen',
          version: FERRY_VERSION,
          platform: `${process.platform}-${process.arch}`,
          concurrency: 1,
        },
        { token: null },
      );
      return { index: i, id: reg.agentId, token: reg.token };
    });
  }

  /**
   * Starts every agent's poll loop; resolves once all polls have been sent (not answered).
   * Loops start in waves of `wave`, each once the previous wave's polls are open: 10,000 TLS
   * handshakes at once on 2 CPUs would outlast the server's handshake timeout (10 s), and what
   * is measured is a fleet holding its polls, not a thundering herd.
   */
  async start(wave = 250) {
    const timeoutMs = Math.max(10_000, this.count * 20);
    for (let i = 0; i < this.agents.length; i += wave) {
      this.loops.push(...this.agents.slice(i, i + wave).map((a) => this.loop(a)));
      const want = Math.min(this.count, i + wave);
      await waitUntil(() => this.pollsOpen >= want, timeoutMs, `${want} simulated polls to be open`);
    }
  }

  /** Resolves with performance.now() when the simulated agent got `taskId`, after it reported it finished. */
  whenHandled(taskId, timeoutMs) {
    const got = this.received.get(taskId);
    if (got) return got.done;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(taskId);
        reject(new Error(`task ${taskId} did not reach a simulated agent within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(taskId, (p) => {
        clearTimeout(timer);
        p.then(resolve, reject);
      });
    });
  }

  async loop(agent) {
    let backoff = 50;
    let emptyFast = 0;
    while (!this.stopped && Date.now() < this.deadline) {
      const pollStarted = Date.now();
      let res;
      let sent = false;
      const onSent = () => {
        sent = true;
        this.pollsOpen++;
      };
      try {
        res = await this.pollApi.json('POST', '/v1/agent/poll', { free: 1, running: [], waitSeconds: 30 }, { token: agent.token, timeoutMs: 40_000, onSent });
      } catch (err) {
        if (this.stopped) return;
        this.errors++;
        this.lastError = err.message;
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
        continue;
      } finally {
        if (sent) this.pollsOpen--;
      }
      backoff = 50;
      const task = res.json?.task;
      const keyRequests = res.json?.keyRequests ?? [];
      // Servers with write-only secrets ask hosted agents to publish a target's sealing key.
      for (const { targetId } of keyRequests) await this.publishKey(agent, targetId);
      // Like the real agent: a server answering a long poll at once with nothing must not make us spin.
      const idle = !task && (res.json?.cancel ?? []).length === 0 && keyRequests.length === 0;
      emptyFast = idle && Date.now() - pollStarted < 100 ? emptyFast + 1 : 0;
      if (emptyFast > 2) await sleep(Math.min(5000, 100 * 2 ** Math.min(emptyFast, 6)));
      if (!task) {
        this.emptyAnswers++;
        continue;
      }
      const receivedAt = res.t;
      const done = this.report(agent, task.id).then(() => receivedAt);
      this.received.set(task.id, { receivedAt, done });
      const waiter = this.waiters.get(task.id);
      if (waiter) {
        this.waiters.delete(task.id);
        waiter(done);
      }
      try {
        await done;
        this.handled++;
      } catch (err) {
        this.errors++;
        this.lastError = err.message;
      }
    }
  }

  /** Generates and publishes a sealing key for `targetId`, once for all simulated agents. 409: someone already did. */
  publishKey(agent, targetId) {
    let p = this.keys.get(targetId);
    if (!p) {
      p = (async () => {
        // Any 3072-bit RSA public key will do: simulated agents never open a secret.
        const { generateKeyPair } = await import('node:crypto');
        const { promisify } = await import('node:util');
        const pair = await promisify(generateKeyPair)('rsa', {
          modulusLength: 3072,
          publicKeyEncoding: { type: 'spki', format: 'pem' },
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        });
        const res = await this.pollApi.request('POST', `/v1/agent/targets/${targetId}/key`, {
          body: { publicKeyPem: pair.publicKey },
          token: agent.token,
          timeoutMs: 20_000,
        });
        if (res.status !== 201 && res.status !== 409) throw new Error(`publishing a sealing key: HTTP ${res.status}`);
        this.keysPublished++;
      })();
      p.catch((err) => {
        this.errors++;
        this.lastError = err.message;
        this.keys.delete(targetId);
      });
      this.keys.set(targetId, p);
    }
    return p.catch(() => sleep(1000));
  }

  /** What a real agent says about a task that ran `true`: started, (no output to upload), finished. */
  async report(agent, taskId) {
    const opts = { token: agent.token, timeoutMs: 20_000 };
    await this.pollApi.json('POST', `/v1/agent/tasks/${taskId}/started`, undefined, opts);
    await this.pollApi.json(
      'POST',
      `/v1/agent/tasks/${taskId}/finish`,
      {
        status: 'succeeded',
        exitCode: 0,
        signal: null,
        reason: null,
        outputBytes: 0,
        outputSha256: EMPTY_SHA256,
      },
      opts,
    );
  }

  /** Stops every loop: closing the sockets ends the held polls (the server sees the disconnect). */
  async stop() {
    this.stopped = true;
    this.pollApi.close();
    this.setupApi.close();
    let timer;
    await Promise.race([Promise.allSettled(this.loops), new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
  }
}

async function waitUntil(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
