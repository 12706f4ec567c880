/**
 * The server's edges under abuse, over real HTTPS on loopback: only forward-secret AEAD suites
 * on TLS 1.2; the security headers on every answer, also on a 400 for a malformed URL; a body
 * that trickles in is cut at the request timeout while a long poll waits undisturbed; a
 * connection that sends nothing is closed; connections are capped; a bogus token is refused
 * before the body is read, and 100 such 8 MiB uploads at once barely move the server's memory;
 * failed authentications and registrations are rate limited per address (429, Retry-After);
 * an agent cannot register with control characters in its name.
 *
 * Loopback has many addresses: each rate-limit test sends from its own (127.0.0.x), so the
 * others keep working from 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { OUTPUT_FRAMES_CONTENT_TYPE, decodeJoinToken } from '@ferry/protocol';
import { startFerryServer, waitFor, type ServerHandle } from '../helpers/ferry.js';

const REQUEST_TIMEOUT_SECONDS = 2;
const MIB = 1024 * 1024;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown>;
}

/** An HTTPS request from `localAddress` (a loopback address), with its own connection. */
function send(
  server: ServerHandle,
  method: string,
  path: string,
  opts: { token?: string | null; body?: string; localAddress?: string; agent?: Agent } = {},
): Promise<Answer> {
  const ca = readFileSync(join(server.dataDir, 'ca.pem'), 'utf8');
  const headers: Record<string, string> = {};
  const token = opts.token === undefined ? server.adminToken : opts.token;
  if (token) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, server.url), { method, headers, ca, localAddress: opts.localAddress, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {} });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A TLS connection to the server, and everything it receives until it closes. */
async function rawConnection(server: ServerHandle): Promise<{ socket: TLSSocket; text: () => string; closed: Promise<number> }> {
  const { port } = new URL(server.url);
  const socket = connect({ host: '127.0.0.1', port: Number(port), ca: readFileSync(join(server.dataDir, 'ca.pem'), 'utf8'), servername: 'localhost' });
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => undefined); // a reset is one way of being closed
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  return { socket, text: () => text, closed };
}

function bodyOf(raw: string): Record<string, unknown> {
  return JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
}

function openssl(server: ServerHandle, args: readonly string[]): Promise<{ ok: boolean; out: string }> {
  const { port } = new URL(server.url);
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { timeout: 10_000 }, (err, stdout, stderr) =>
      resolve({ ok: err === null, out: stdout + stderr }),
    );
    child.stdin?.end();
  });
}

/** The server process's resident memory, in MiB. */
function rssMiB(server: ServerHandle): number {
  const status = readFileSync(`/proc/${server.proc.child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

async function registerAgent(server: ServerHandle, body: Record<string, unknown>, localAddress?: string): Promise<Answer> {
  return send(server, 'POST', '/v1/agents/register', {
    token: null,
    localAddress,
    body: JSON.stringify({ hostname: 'h', version: '0', platform: 'linux', concurrency: 1, ...body }),
  });
}

describe('hardening: transport and authentication', () => {
  let server: ServerHandle;

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
  });
  after(async () => server?.stop());

  it('TLS 1.2 takes only ECDHE with AEAD: static RSA, CBC and SHA-1 suites are refused; TLS 1.3 works', async () => {
    for (const weak of ['AES128-SHA', 'AES256-SHA', 'AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA']) {
      // @SECLEVEL=0: this client offers the suite whatever its own policy; the server must refuse it.
      const res = await openssl(server, ['-tls1_2', '-cipher', `${weak}:@SECLEVEL=0`]);
      assert.equal(res.ok, false, `${weak} was accepted:\n${res.out}`);
      assert.doesNotMatch(res.out, new RegExp(`Cipher is ${weak}\\b`));
    }
    for (const strong of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      const res = await openssl(server, ['-tls1_2', '-cipher', strong]);
      assert.ok(res.ok, `${strong} was refused:\n${res.out}`);
      assert.match(res.out, new RegExp(`Cipher is ${strong}\\b`));
    }
    const tls13 = await openssl(server, ['-tls1_3']);
    assert.ok(tls13.ok, tls13.out);
    assert.match(tls13.out, /New, TLSv1\.3/);
    assert.equal((await openssl(server, ['-tls1_1', '-cipher', 'ALL:@SECLEVEL=0'])).ok, false, 'TLS 1.1 is refused');
  });

  it("TLS 1.3 takes the server's order: AES-128-GCM, also for a client that puts AES-256-GCM or ChaCha20 first (as Node's does)", async () => {
    const { port } = new URL(server.url);
    const ca = readFileSync(join(server.dataDir, 'ca.pem'), 'utf8');
    for (const ciphers of [
      undefined,
      'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256',
      'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256',
    ]) {
      const socket = connect({ host: '127.0.0.1', port: Number(port), ca, servername: 'localhost', ...(ciphers ? { ciphers } : {}) });
      await new Promise((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      assert.deepEqual(
        [socket.getProtocol(), socket.getCipher().standardName],
        ['TLSv1.3', 'TLS_AES_128_GCM_SHA256'],
        `client order ${ciphers ?? "(Node's default)"}`,
      );
      socket.destroy();
    }
    // A client that offers only one of the others still gets it.
    const socket = connect({ host: '127.0.0.1', port: Number(port), ca, servername: 'localhost', ciphers: 'TLS_CHACHA20_POLY1305_SHA256' });
    await new Promise((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    assert.equal(socket.getCipher().standardName, 'TLS_CHACHA20_POLY1305_SHA256');
    socket.destroy();
  });

  it('every answer carries the security headers, including a 400 for a malformed URL, a 404 and a 401 (the 408, 429 and 431 below too)', async () => {
    const answers = [
      await send(server, 'GET', '/v1/tasks/%E0%A4%A'),
      await send(server, 'GET', '/v1/nothing-here'),
      await send(server, 'GET', '/v1/tasks', { token: 'ferry_u_wrong' }),
      await send(server, 'GET', '/v1/health'),
    ];
    assert.deepEqual(
      answers.map((a) => a.status),
      [400, 404, 401, 200],
    );
    assert.equal(answers[0]?.json.code, 'FERRY_E_BAD_REQUEST');
    for (const a of answers) {
      assert.equal(a.headers['strict-transport-security'], 'max-age=31536000');
      assert.equal(a.headers['x-content-type-options'], 'nosniff');
      assert.equal(a.headers['cache-control'], 'no-store');
    }
  });

  describe(`with a request timeout of ${REQUEST_TIMEOUT_SECONDS} s`, () => {
    let short: ServerHandle;
    before(async () => {
      short = await startFerryServer({ embeddedAgent: false, env: { FERRY_REQUEST_TIMEOUT_SECONDS: String(REQUEST_TIMEOUT_SECONDS) } });
    });
    after(async () => short?.stop());

    it('a body that trickles in is cut at the request timeout (408 with the registry body), while a longer long poll is answered', async () => {
      const join = decodeJoinToken(await short.joinToken(['--hosted']));
      const reg = await registerAgent(short, { joinSecret: join?.secret, name: 'long-poller', concurrency: 1 });
      assert.equal(reg.status, 201);
      const waitSeconds = REQUEST_TIMEOUT_SECONDS + 2;
      const pollStarted = Date.now();
      const longPoll = send(short, 'POST', '/v1/agent/poll', { token: String(reg.json.token), body: JSON.stringify({ free: 1, running: [], waitSeconds }) });

      const slow = await rawConnection(short);
      const started = Date.now();
      slow.socket.write('POST /v1/agents/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
      const drip = setInterval(() => slow.socket.writable && slow.socket.write(' '), 250);
      const closedAt = await slow.closed;
      clearInterval(drip);
      const tookMs = closedAt - started;
      assert.ok(tookMs >= REQUEST_TIMEOUT_SECONDS * 1000 - 100 && tookMs < REQUEST_TIMEOUT_SECONDS * 1000 + 2000, `cut after ${tookMs} ms`);
      assert.match(slow.text(), /^HTTP\/1\.1 408 /);
      assert.match(slow.text(), /strict-transport-security: max-age=31536000/i);
      assert.equal(bodyOf(slow.text()).code, 'FERRY_E_REQUEST_TIMEOUT');

      const poll = await longPoll;
      assert.equal(poll.status, 200);
      assert.ok(Date.now() - pollStarted >= waitSeconds * 1000 - 100, 'the long poll waited its time');
    });

    it('a connection that sends nothing is closed within the timeout', async () => {
      const idle = await rawConnection(short);
      const started = Date.now();
      const tookMs = (await idle.closed) - started;
      assert.ok(tookMs < REQUEST_TIMEOUT_SECONDS * 1000 + 2000, `closed after ${tookMs} ms`);
    });
  });

  it('oversized headers get 431 FERRY_E_HEADERS_TOO_LARGE with the security headers', async () => {
    const conn = await rawConnection(server);
    conn.socket.write(`GET /v1/health HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'x'.repeat(20 * 1024)}\r\n\r\n`);
    await conn.closed;
    assert.match(conn.text(), /^HTTP\/1\.1 431 /);
    assert.match(conn.text(), /strict-transport-security: max-age=31536000/i);
    assert.equal(bodyOf(conn.text()).code, 'FERRY_E_HEADERS_TOO_LARGE');
  });

  it('connections are capped: one past the cap is dropped, and a slot frees when one closes', async () => {
    // A server of its own: a small cap, and the default timeouts, so idle connections stay open.
    const capped = await startFerryServer({ embeddedAgent: false, env: { FERRY_MAX_CONNECTIONS: '16' } });
    try {
      const open = await Promise.all(Array.from({ length: 16 }, () => rawConnection(capped)));
      await assert.rejects(rawConnection(capped), 'one connection past the cap is dropped');
      open[0]?.socket.destroy();
      await open[0]?.closed;
      // The slot frees once the server has seen the close, a moment after the client has: until
      // then a new connection is still one too many and is dropped, so ask again for a while.
      const health = await waitFor(() => send(capped, 'GET', '/v1/health').catch(() => undefined), 5_000, 'a freed connection slot');
      assert.equal(health.status, 200);
      for (const c of open) c.socket.destroy();
    } finally {
      await capped.stop();
    }
  });

  it('an upload with a bogus token is refused (401, registry body) before its body is read', async () => {
    const conn = await rawConnection(server);
    conn.socket.write(
      `PUT /v1/agent/tasks/t_0123456789ab/output?offset=0 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ferry_a_bogus\r\n` +
        `Content-Type: ${OUTPUT_FRAMES_CONTENT_TYPE}\r\nContent-Length: ${8 * MIB}\r\n\r\n`,
    );
    conn.socket.write(Buffer.alloc(1024)); // 1 KiB of the announced 8 MiB, and nothing more
    const deadline = Date.now() + 5000;
    while (!conn.text().includes('}') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.match(conn.text(), /^HTTP\/1\.1 401 /);
    assert.deepEqual(bodyOf(conn.text()), {
      statusCode: 401,
      code: 'FERRY_E_UNAUTHENTICATED',
      error: 'Unauthorized',
      message: 'Missing or invalid agent credential.',
    });
    conn.socket.destroy();
  });

  it("100 concurrent 8 MiB uploads with a bogus token barely move the server's memory", async (t) => {
    const agent = new Agent({ ca: readFileSync(join(server.dataDir, 'ca.pem'), 'utf8'), keepAlive: true, maxSockets: 100, localAddress: '127.0.0.3' });
    const body = Buffer.alloc(8 * MIB, 0x61);
    const before = rssMiB(server);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(server))), 10);
    const outcomes = await Promise.all(
      Array.from(
        { length: 100 },
        () =>
          new Promise<string>((resolve) => {
            const { host, port } = new URL(server.url);
            const req = request(
              {
                host: host.split(':')[0],
                port,
                path: '/v1/agent/tasks/t_0123456789ab/output?offset=0',
                method: 'PUT',
                agent,
                servername: 'localhost',
                headers: { authorization: 'Bearer ferry_a_bogus', 'content-type': OUTPUT_FRAMES_CONTENT_TYPE },
              },
              (res) => {
                res.resume();
                res.on('end', () => resolve(String(res.statusCode)));
                res.on('error', () => resolve(String(res.statusCode)));
              },
            );
            req.on('socket', (s) => s.on('error', () => undefined));
            // Past what the server drains of a refused body, it cuts the connection: the answer may be lost to the reset.
            req.on('error', () => resolve('reset'));
            req.end(body);
          }),
      ),
    );
    clearInterval(sampler);
    agent.destroy();
    assert.ok(
      outcomes.every((o) => ['401', '429', 'reset'].includes(o)),
      `unexpected outcomes: ${[...new Set(outcomes)].join(', ')}`,
    );
    const counts = new Map<string, number>();
    for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
    t.diagnostic(`outcomes ${JSON.stringify(Object.fromEntries(counts))}; RSS ${before.toFixed(0)} MiB before, at most ${peak.toFixed(0)} MiB during`);
    assert.ok(peak - before < 64, `the server grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
  });

  it('failed authentications are rate limited per address: 429 with Retry-After, even for a valid token, and other addresses are not', async () => {
    const from = '127.0.0.2';
    let refused = 0;
    let limited: Answer | undefined;
    for (let i = 0; i < 100 && !limited; i++) {
      const res = await send(server, 'GET', '/v1/tasks', { token: `ferry_u_guess${i}`, localAddress: from });
      if (res.status === 401) refused++;
      else limited = res;
    }
    assert.equal(refused, 30, 'the default allowance: 30 failures a minute');
    assert.equal(limited?.status, 429);
    assert.equal(limited?.json.code, 'FERRY_E_RATE_LIMITED');
    assert.ok(Number(limited?.headers['retry-after']) >= 1, `Retry-After: ${String(limited?.headers['retry-after'])}`);
    assert.equal(limited?.headers['strict-transport-security'], 'max-age=31536000');
    const valid = await send(server, 'GET', '/v1/tasks', { localAddress: from });
    assert.equal(valid.status, 429, 'a locked-out address cannot test tokens at all');
    assert.equal((await send(server, 'GET', '/v1/tasks')).status, 200, 'another address is unaffected');
  });

  it('failed agent registrations are rate limited per address; successful ones do not count', async () => {
    const from = '127.0.0.4';
    for (let i = 0; i < 3; i++) {
      const join = decodeJoinToken(await server.joinToken(['--hosted']));
      assert.equal((await registerAgent(server, { joinSecret: join?.secret, name: `ok-${i}` }, from)).status, 201);
    }
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await registerAgent(server, { joinSecret: `ferry_j_guess${i}`, name: 'guess' }, from)).status);
    assert.deepEqual(statuses.slice(0, 30), Array<number>(30).fill(401));
    assert.deepEqual(statuses.slice(30), Array<number>(10).fill(429));
  });

  it('an agent cannot register with control characters in its name, hostname, version or platform', async () => {
    for (const [field, value] of [
      ['name', 'agent\u001b]0;pwned\u0007'],
      ['name', 'agent\u001b[2J'],
      ['name', 'two\nlines'],
      ['hostname', 'host\u009b31m'],
      ['version', '1.0\r'],
      ['platform', 'linux\u0000'],
    ] as const) {
      const join = decodeJoinToken(await server.joinToken(['--hosted']));
      const res = await registerAgent(server, { joinSecret: join?.secret, name: 'fine', [field]: value });
      assert.equal(res.status, 400, `${field} ${JSON.stringify(value)}`);
      assert.equal(res.json.code, 'FERRY_E_BAD_REQUEST');
      assert.match(String(res.json.message), new RegExp(`${field}: must not contain control characters`));
    }
    const list = await send(server, 'GET', '/v1/agents');
    const names = (list.json.agents as { name: string }[]).map((a) => a.name);
    assert.ok(!names.includes('fine'), 'none of them registered');
  });
});
