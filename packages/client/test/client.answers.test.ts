/**
 * What a caller of the client can rely on, against a real HTTPS server on loopback that
 * answers as a broken or hostile server might: every answer is checked against its route's
 * schema, error answers keep the server's code, a wrong CA is refused before any request, and
 * the retry helper retries exactly what is retryable.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { Routes } from '@ferry/protocol';
import { ApiError, withRetry } from '@ferry/client';
import { createNodeClient, fetchPinnedCa, fingerprintOf } from '@ferry/client/node';
import { throwawayTls } from './helpers/throwaway-tls.js';

describe('the client against a misbehaving server', () => {
  const tls = throwawayTls();
  let server: Server;
  let url = '';
  let answer: { status: number; body: string } = { status: 200, body: '{}' };
  let calls = 0;

  before(async () => {
    server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
      calls++;
      if (req.url === '/v1/ca.pem') return res.end(tls.caPem);
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => server.close());

  const client = (): ReturnType<typeof createNodeClient> => createNodeClient({ serverUrl: url, caPem: tls.caPem, token: 'ferry_u_test' });

  it("returns an answer that matches the route's schema", async () => {
    answer = { status: 200, body: JSON.stringify({ ok: true, version: '0.1.0', api: 'v1', extra: 'ignored' }) };
    const c = client();
    assert.deepEqual(await c.call(Routes.health), { ok: true, version: '0.1.0', api: 'v1' });
    await c.close();
  });

  it('refuses an answer that does not match, naming the field', async () => {
    answer = { status: 200, body: JSON.stringify({ targets: [{ name: 'web1' }] }) };
    const c = client();
    await assert.rejects(c.call(Routes.listTargets), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.code, 'FERRY_E_UNEXPECTED_RESPONSE');
      assert.match(err.message, /targets\.0\./);
      return true;
    });
    answer = { status: 200, body: 'not json' };
    await assert.rejects(c.call(Routes.health), { code: 'FERRY_E_UNEXPECTED_RESPONSE' });
    await c.close();
  });

  it("keeps the server's error code, message and details", async () => {
    answer = {
      status: 409,
      body: JSON.stringify({ statusCode: 409, code: 'FERRY_E_OUTPUT_GAP', error: 'Conflict', message: 'resend from 10', details: { expectedOffset: 10 } }),
    };
    const c = client();
    await assert.rejects(c.call(Routes.getTask, { params: { id: 't_0123456789' } }), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 409);
      assert.equal(err.code, 'FERRY_E_OUTPUT_GAP');
      assert.equal(err.message, 'resend from 10');
      assert.deepEqual(err.details, { expectedOffset: 10 });
      return true;
    });
    answer = { status: 502, body: '<html>bad gateway</html>' };
    await assert.rejects(c.call(Routes.health), { code: 'FERRY_E_INTERNAL', status: 502 });
    await c.close();
  });

  it('refuses a certificate of the pinned CA issued for another name', async () => {
    const before = calls;
    const c = createNodeClient({ serverUrl: url.replace('127.0.0.1', 'localhost'), caPem: tls.caPem, token: 'ferry_u_secret' });
    await assert.rejects(c.call(Routes.health), (err: unknown) => err instanceof ApiError && err.code === 'FERRY_E_NETWORK' && /localhost/.test(err.message));
    await c.close();
    assert.equal(calls, before, 'no request reached the server');
  });

  it("takes only the route's own success status for success", async () => {
    answer = { status: 200, body: '' };
    const c = client();
    await assert.rejects(c.call(Routes.revokeAgent, { params: { id: 'a_1' } }), { code: 'FERRY_E_UNEXPECTED_RESPONSE', status: 200 });
    answer = { status: 302, body: '' };
    await assert.rejects(c.call(Routes.health), { code: 'FERRY_E_UNEXPECTED_RESPONSE', status: 302 });
    await c.close();
  });

  it('refuses a server whose certificate its pinned CA did not sign, before sending anything', async () => {
    const before = calls;
    const c = createNodeClient({ serverUrl: url, caPem: tls.otherCaPem, token: 'ferry_u_secret' });
    await assert.rejects(c.call(Routes.health), { code: 'FERRY_E_NETWORK' });
    await c.close();
    assert.equal(calls, before, 'no request reached the server');
    await assert.rejects(fetchPinnedCa(url, fingerprintOf(tls.otherCaPem)), { code: 'FERRY_E_CA_MISMATCH' });
    assert.equal(await fetchPinnedCa(url, fingerprintOf(tls.caPem).toLowerCase()), tls.caPem);
    await assert.rejects(fetchPinnedCa(url, 'abc'), { code: 'FERRY_E_BAD_FINGERPRINT' });
  });

  it('retries 503s until the server answers, and never retries a 4xx', async () => {
    const c = client();
    let attempts = 0;
    answer = { status: 503, body: JSON.stringify({ statusCode: 503, code: 'FERRY_E_UNAVAILABLE', error: 'Service Unavailable', message: 'restarting' }) };
    const health = await withRetry(
      async () => {
        attempts++;
        if (attempts === 3) answer = { status: 200, body: JSON.stringify({ ok: true, version: '0.1.0', api: 'v1' }) };
        return c.call(Routes.health);
      },
      { baseMs: 5 },
    );
    assert.equal(health.ok, true);
    assert.equal(attempts, 3);
    attempts = 0;
    answer = { status: 404, body: JSON.stringify({ statusCode: 404, code: 'FERRY_E_TASK_NOT_FOUND', error: 'Not Found', message: 'no' }) };
    await assert.rejects(
      withRetry(
        async () => {
          attempts++;
          return c.call(Routes.getTask, { params: { id: 't_0123456789' } });
        },
        { baseMs: 5 },
      ),
      { code: 'FERRY_E_TASK_NOT_FOUND' },
    );
    assert.equal(attempts, 1);
    await c.close();
  });

  it('encodes path parameters, so an id cannot reach another endpoint', async () => {
    let seen = '';
    server.removeAllListeners('request');
    server.on('request', (req: { url?: string }, res: { writeHead(s: number): { end(): void } }) => {
      seen = req.url ?? '';
      res.writeHead(204).end();
    });
    const c = client();
    await c.call(Routes.deleteTarget, { params: { name: '../agents/a_1' } });
    await c.close();
    assert.equal(seen, '/v1/targets/..%2Fagents%2Fa_1');
  });
});
