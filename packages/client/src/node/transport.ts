/**
 * The Node transport: a `fetch`-shaped function over undici's `request`, verifying the server
 * against one pinned CA (hostname included), with kept-alive connections. undici's `request`
 * rather than its `fetch`: the same checks, less work per call on the agent's hot path.
 */
import { Agent, request } from 'undici';
import type { FetchLike } from '../index.js';

export interface PinnedTransport {
  fetch: FetchLike;
  close(): Promise<void>;
}

export function pinnedTransport(caPem: string): PinnedTransport {
  const dispatcher = new Agent({
    connect: { ca: caPem, minVersion: 'TLSv1.2' },
    keepAliveTimeout: 60_000,
    headersTimeout: 90_000,
    bodyTimeout: 90_000,
    connections: 16,
  });
  const fetch: FetchLike = async (url, init) => {
    const res = await request(url, {
      method: init.method as 'GET' | 'POST' | 'PUT' | 'DELETE', headers: init.headers, body: init.body, signal: init.signal, dispatcher,
    });
    return {
      status: res.statusCode,
      headers: {
        get: (name: string): string | null => {
          const value = res.headers[name.toLowerCase()];
          return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
        },
      },
      arrayBuffer: () => res.body.arrayBuffer(),
    };
  };
  return { fetch, close: () => dispatcher.close() };
}
