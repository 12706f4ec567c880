/**
 * While the server shuts down, a request that still arrives on a kept-alive connection is
 * turned away with the registry's error body (503 FERRY_E_UNAVAILABLE, which clients retry),
 * and a request already in flight is answered normally.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import pino from 'pino';
import { buildApp } from '../src/app.js';
import { defaultCertNames, ensureTlsMaterial } from '../src/tls.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves with everything the socket received once `done` says it is enough. */
function received(socket: TLSSocket, done: (text: string) => boolean): Promise<string> {
  let text = '';
  return new Promise((resolve) => {
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (done(text)) resolve(text);
    });
  });
}

test('a request that arrives during shutdown gets 503 FERRY_E_UNAVAILABLE; one in flight completes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-shutdown-'));
  const tls = ensureTlsMaterial(dir, defaultCertNames('127.0.0.1', []));
  const app = buildApp({ keyPem: tls.keyPem, certPem: tls.certPem, log: pino({ level: 'silent' }) });
  const entered = deferred();
  const release = deferred();
  const closingStarted = deferred();
  app.get('/held', async () => {
    entered.resolve();
    await release.promise;
    return { ok: true };
  });
  app.addHook('preClose', (done) => {
    closingStarted.resolve();
    done();
  });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise((r) => socket.once('secureConnect', r));
    const answers = received(socket, (text) => text.includes('FERRY_E_UNAVAILABLE') && text.includes('{"ok":true}'));
    const request = 'GET /held HTTP/1.1\r\nHost: ferry\r\nConnection: keep-alive\r\n\r\n';
    socket.write(request);
    await entered.promise;
    const closed = app.close();
    await closingStarted.promise;
    socket.write(request);
    release.resolve();
    const text = await answers;
    assert.match(text, /^HTTP\/1\.1 200 /, 'the request in flight is answered');
    assert.match(text, /HTTP\/1\.1 503 /);
    const body = JSON.parse(text.slice(text.lastIndexOf('{"statusCode"'))) as Record<string, unknown>;
    assert.deepEqual(body, {
      statusCode: 503,
      code: 'FERRY_E_UNAVAILABLE',
      error: 'Service Unavailable',
      message: 'The server is shutting down; retry shortly.',
    });
    socket.destroy();
    await closed;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
