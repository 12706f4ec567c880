/**
 * Several servers: the client (through the Node transport the agent and CLI use) goes to the
 * next server when one cannot be reached, stops answering or has a server error, stays with
 * the one that answered, and never fails over on an answer about the request itself. Real
 * HTTPS servers on loopback, a port nothing listens on, and a server stopped between calls.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer } from 'node:net';
import { createServer, type Server } from 'node:https';
import { Routes } from '@ferry/protocol';
import { ApiError, serverUrls } from '@ferry/client';
import { createNodeClient, fetchPinnedCa } from '@ferry/client/node';
import { throwawayTls } from './helpers/throwaway-tls.js';

const tls = throwawayTls();
const HEALTH = JSON.stringify({ ok: true, version: 'test', api: 'v1' });

/** An HTTPS server answering health with `status` (200: a healthy body), counting its calls. */
interface Fake {
  url: string;
  calls: number;
  status: number;
  server: Server;
}

async function fakeServer(status = 200): Promise<Fake> {
  const fake: Fake = { url: '', calls: 0, status, server: undefined as unknown as Server };
  fake.server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    fake.calls += 1;
    if (req.url === Routes.caCertificate.path) {
      res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(tls.caPem);
      return;
    }
    const body = fake.status === 200 ? HEALTH : JSON.stringify({ statusCode: fake.status, code: 'FERRY_E_INTERNAL', error: 'x', message: 'broken' });
    res.writeHead(fake.status, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
  fake.url = `https://127.0.0.1:${(fake.server.address() as { port: number }).port}`;
  return fake;
}

/** A loopback port nothing listens on (it was free a moment ago). */
async function deadPort(): Promise<string> {
  const srv = createNetServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return `https://127.0.0.1:${port}`;
}

const stop = (fake: Fake): Promise<void> =>
  new Promise((resolve) => {
    fake.server.close(() => resolve());
    fake.server.closeAllConnections();
  });

describe('failing over between servers', () => {
  const fakes: Fake[] = [];
  let dead = '';
  const make = async (status = 200): Promise<Fake> => {
    const f = await fakeServer(status);
    fakes.push(f);
    return f;
  };
  before(async () => {
    dead = await deadPort();
  });
  after(async () => {
    await Promise.all(fakes.map((f) => stop(f)));
  });

  it('server URLs are read from a comma-separated list, without trailing slashes, each once', () => {
    assert.deepEqual(serverUrls(' https://a:1/, https://b:2 ,,https://a:1'), ['https://a:1', 'https://b:2']);
  });

  it('a server that cannot be reached is skipped, and the one that answered is used from then on', async () => {
    const live = await make();
    const client = createNodeClient({ serverUrl: `${dead},${live.url}`, caPem: tls.caPem });
    try {
      assert.equal((await client.call(Routes.health)).ok, true);
      assert.equal(client.baseUrl, live.url);
      await client.call(Routes.health);
      assert.equal(live.calls, 2);
    } finally {
      await client.close();
    }
  });

  it('a server error (503) goes to the next server; an answer about the request (404) does not', async () => {
    const broken = await make(503);
    const live = await make();
    const client = createNodeClient({ serverUrl: [broken.url, live.url].join(','), caPem: tls.caPem });
    try {
      await client.call(Routes.health);
      assert.deepEqual([broken.calls, live.calls], [1, 1]);
      live.status = 404;
      const refused = await client.call(Routes.health).catch((err: unknown) => err);
      assert.ok(refused instanceof ApiError && refused.status === 404, 'the 404 reaches the caller');
      assert.deepEqual([broken.calls, live.calls], [1, 2], 'no other server was asked');
    } finally {
      live.status = 200;
      await client.close();
    }
  });

  it('a server stopped between calls: the next call goes to the other one', async () => {
    const first = await make();
    const second = await make();
    const client = createNodeClient({ serverUrl: `${first.url},${second.url}`, caPem: tls.caPem });
    try {
      await client.call(Routes.health);
      assert.equal(first.calls, 1);
      await stop(first);
      await client.call(Routes.health);
      assert.equal(second.calls, 1);
      assert.equal(client.baseUrl, second.url);
    } finally {
      await client.close();
    }
  });

  it('when no server answers, the error says which one was tried last', async () => {
    const client = createNodeClient({ serverUrl: `${dead},${dead.replace('127.0.0.1', 'localhost')}`, caPem: tls.caPem });
    try {
      const err = await client.call(Routes.health).catch((e: unknown) => e);
      assert.ok(err instanceof ApiError && err.code === 'FERRY_E_NETWORK');
      assert.match(err.message, /localhost/);
    } finally {
      await client.close();
    }
  });

  it('the CA is fetched from the first server that answers; a wrong fingerprint is never skipped', async () => {
    const live = await make();
    const { fingerprintOf } = await import('@ferry/client/node');
    assert.equal(await fetchPinnedCa(`${dead},${live.url}`, fingerprintOf(tls.caPem)), tls.caPem);
    const wrong = await fetchPinnedCa(`${live.url},${dead}`, fingerprintOf(tls.otherCaPem)).catch((e: unknown) => e);
    assert.ok(wrong instanceof ApiError && wrong.code === 'FERRY_E_CA_MISMATCH');
  });
});
