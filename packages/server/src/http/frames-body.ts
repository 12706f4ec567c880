/**
 * Reading an output upload's body (frames, up to the route's limit) into a buffer lent from the
 * server's pool (lent-buffers.ts, which says why), given back once the upload has been handled
 * (http/route.ts). The body is copied into it as it arrives (one copy, as the concatenation
 * made), so nothing of the socket's chunks is kept. Small bodies (a line, a prompt) and bodies
 * without a Content-Length are joined as before: the pool is for bulk output.
 */
import { Buffer } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { FerryError } from '@ferry/protocol';
import { lentBuffers, type LentBuffers } from '../lent-buffers.js';

/** Bodies under this are joined as before: a line or a prompt gains nothing from a loan. */
const LENT_MIN_BYTES = 64 * 1024;

type Done = (err: Error | null, body?: Buffer) => void;

/** The answer fastify's own reader led to (app.ts, toFerryError), word for word. */
function tooLarge(limit: number): FerryError {
  const size = limit % (1024 * 1024) === 0 ? `${limit / (1024 * 1024)} MiB` : `${limit} bytes`;
  return new FerryError('FERRY_E_BODY_TOO_LARGE', `The request body is over this endpoint's limit of ${size} (${limit} bytes).`);
}

function badLength(): FerryError {
  return new FerryError('FERRY_E_BAD_REQUEST', 'The request body does not have the length its Content-Length header says.');
}

/**
 * Reads `payload` to its end, up to `limit` bytes, and calls `done` with the body: a lent
 * buffer when the Content-Length is known and large enough, else the chunks joined. On any
 * error the lent buffer goes back at once.
 */
export function readFramesBody(payload: IncomingMessage, limit: number, done: Done, pool: LentBuffers = lentBuffers): void {
  const header = payload.headers['content-length'];
  const declared = header === undefined ? NaN : Number(header);
  if (declared > limit) {
    done(tooLarge(limit));
    return;
  }
  const target = Number.isSafeInteger(declared) && declared >= LENT_MIN_BYTES ? pool.lend(declared) : undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  const finish = (err: Error | null, body?: Buffer): void => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onError);
    if (err) pool.giveBack(target);
    done(err, body);
  };
  const onData = (chunk: Buffer): void => {
    if (received + chunk.length > limit) return finish(tooLarge(limit));
    if (target) {
      if (received + chunk.length > target.length) return finish(badLength());
      chunk.copy(target, received);
    } else chunks.push(chunk);
    received += chunk.length;
  };
  const onEnd = (): void => {
    if (!Number.isNaN(declared) && received !== declared) return finish(badLength());
    finish(null, target ?? Buffer.concat(chunks, received));
  };
  const onError = (err: Error & { statusCode?: number }): void => {
    if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400;
    finish(err);
  };
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
  payload.resume();
}
