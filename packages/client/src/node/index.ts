/**
 * `@ferry/client/node`: the client for Node programs (CLI, agent, bench): the pinned-CA
 * transport, fetching a CA by its fingerprint, and a ready client over both.
 */
import { FerryClient } from '../index.js';
import { pinnedTransport } from './transport.js';

export { fetchPinnedCa, fingerprintOf } from './pinning.js';
export { pinnedTransport, type PinnedTransport } from './transport.js';

export interface NodeClientOptions {
  serverUrl: string;
  caPem: string;
  token?: string | undefined;
  userAgent?: string;
}

/** A client that trusts only `caPem`; `close()` releases its connections. */
export function createNodeClient(opts: NodeClientOptions): FerryClient {
  const transport = pinnedTransport(opts.caPem);
  return new FerryClient({
    baseUrl: opts.serverUrl,
    fetch: transport.fetch,
    token: opts.token,
    userAgent: opts.userAgent ?? 'ferry',
    close: () => transport.close(),
  });
}
