/**
 * The Node transport: a `fetch`-shaped function over `node:https`, verifying the server
 * against one pinned CA (hostname included, TLS 1.2+), with kept-alive connections.
 * `node:https` rather than undici: the same checks, and a CLI command starts ~40 ms sooner
 * without loading undici.
 */
import { Agent, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { FetchInit, FetchLike, FetchResponseLike } from '../index.js';

export interface PinnedTransport {
  fetch: FetchLike;
  close(): Promise<void>;
}

/** No answer headers or body bytes for this long means the connection is dead. */
const IDLE_TIMEOUT_MS = 90_000;

function toResponse(res: IncomingMessage, body: Buffer): FetchResponseLike {
  return {
    status: res.statusCode ?? 0,
    headers: {
      get: (name: string): string | null => {
        const value = res.headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
      },
    },
    arrayBuffer: () => Promise.resolve(body.buffer.slice(body.byteOffset, body.byteOffset + body.length) as ArrayBuffer),
  };
}

function send(agent: Agent, url: string, init: FetchInit): Promise<FetchResponseLike> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method, headers: init.headers, agent, signal: init.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(toResponse(res, Buffer.concat(chunks))));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('the connection closed before the answer was complete')));
    });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no answer for ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

export function pinnedTransport(caPem: string): PinnedTransport {
  const agent = new Agent({ ca: caPem, minVersion: 'TLSv1.2', keepAlive: true, keepAliveMsecs: 30_000, maxSockets: 16 });
  return {
    fetch: (url, init) => send(agent, url, init),
    close: () => {
      agent.destroy();
      return Promise.resolve();
    },
  };
}
