/**
 * An upload's body read into a lent buffer (http/frames-body.ts), over a real HTTP connection:
 * every byte arrives in order, a buffer given back is lent again (bulk output allocates no new
 * one per upload) and never while another body is in it, the limit and the Content-Length are
 * held to, and a body cut short gives its buffer back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { FerryError } from '@ferry/protocol';
import { readFramesBody } from '../src/http/frames-body.js';
import { LentBuffers } from '../src/lent-buffers.js';

const MIB = 1024 * 1024;
const LIMIT = 8 * MIB;

type Read = { body?: Buffer; err?: Error };

/** A server handing each request's body (or error) to the test that sent it, in order. */
let server: Server;
let port = 0;
const pool = new LentBuffers();
const waiting: ((read: Read, req: IncomingMessage) => void)[] = [];

before(async () => {
  server = createServer((req, res) => {
    readFramesBody(
      req,
      LIMIT,
      (err, body) => {
        waiting.shift()?.({ body, err: err ?? undefined }, req);
        res.writeHead(err ? 400 : 200, { connection: 'close' }).end();
      },
      pool,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Sends `parts` one after another as one body (with `length` as its Content-Length, if given); resolves with what the server read. */
function send(parts: readonly Buffer[], length?: number, cut = false): Promise<Read> {
  const read = new Promise<Read>((resolve) => waiting.push(resolve));
  const headers: Record<string, string> = length === undefined ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(length) };
  const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/', headers }, (res) => res.resume());
  req.on('error', () => undefined); // a body cut short ends its connection
  for (const part of parts) req.write(part);
  if (cut) setTimeout(() => req.destroy(), 50);
  else req.end();
  return read;
}

test('a bulk body arrives whole, in a lent buffer that is lent again once given back', async () => {
  const bytes = randomBytes(MIB + 208);
  const first = await send([bytes.subarray(0, 1000), bytes.subarray(1000, 70_000), bytes.subarray(70_000)], bytes.length);
  assert.ok(first.body);
  assert.ok(first.body.equals(bytes), 'every byte, in order');
  const lentBuffer = first.body.buffer;
  assert.ok(lentBuffer.byteLength >= bytes.length);

  // Lent while another body is in the buffer: a different buffer.
  const other = randomBytes(MIB);
  const second = await send([other], other.length);
  assert.ok(second.body?.equals(other));
  assert.notEqual(second.body.buffer, lentBuffer, 'a lent buffer is not lent twice');

  pool.giveBack(first.body);
  pool.giveBack(second.body);
  const again = randomBytes(MIB + 100);
  const third = await send([again], again.length);
  assert.ok(third.body?.equals(again), 'the new body, not the old one');
  assert.ok(third.body.buffer === lentBuffer || third.body.buffer === second.body.buffer, 'a buffer given back is lent again');
  pool.giveBack(third.body);
  pool.giveBack(third.body); // twice is harmless
});

test('small bodies and bodies without a Content-Length are joined as they are, not lent', async () => {
  const small = randomBytes(300);
  const a = await send([small.subarray(0, 100), small.subarray(100)], small.length);
  assert.ok(a.body?.equals(small));
  const chunked = randomBytes(200 * 1024);
  const b = await send([chunked.subarray(0, 5000), chunked.subarray(5000)]);
  assert.ok(b.body?.equals(chunked));
  // Not the pool's: giving them back does nothing, and the pool's next loan is another buffer.
  pool.giveBack(a.body);
  pool.giveBack(b.body);
  assert.notEqual(pool.lend(200 * 1024).buffer, b.body.buffer);
});

test('a body over the limit is refused, declared or not', async () => {
  const declared = await send([Buffer.alloc(10)], LIMIT + 1);
  assert.ok(declared.err instanceof FerryError);
  assert.equal(declared.err.code, 'FERRY_E_BODY_TOO_LARGE');
  assert.match(declared.err.message, /limit of 8 MiB \(8388608 bytes\)/);
  const undeclared = await send([Buffer.alloc(4 * MIB), Buffer.alloc(4 * MIB), Buffer.alloc(1)]);
  assert.ok(undeclared.err instanceof FerryError);
  assert.equal(undeclared.err.code, 'FERRY_E_BODY_TOO_LARGE');
});

test('a body cut short of its Content-Length is an error, and its lent buffer goes back', async () => {
  // One idle buffer of the size class: the cut body gets it.
  const idle = pool.lend(2 * MIB);
  pool.giveBack(idle);
  const cut = await send([randomBytes(100_000)], 2 * MIB, true);
  assert.ok(cut.err, 'a body cut short is not handed on');
  const next = pool.lend(2 * MIB);
  assert.equal(next.buffer, idle.buffer, 'the cut body gave its buffer back');
  pool.giveBack(next);
});
