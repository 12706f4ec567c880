/**
 * The HTTP surface: HTTPS only (TLS 1.2 with forward-secret AEAD suites, or 1.3), HSTS and the
 * other security headers on every answer, one error body shape, size limits, and bounds on
 * how long a request may take to arrive and how many connections are open. Route modules
 * register on top of this (http/route.ts).
 */
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyError, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { FerryError, OUTPUT_FRAMES_CONTENT_TYPE, toError } from '@ferry/protocol';
import { ServerConfigSchema } from './config.js';
import { newId } from './ids.js';

export const JSON_BODY_LIMIT = 2 * 1024 * 1024;
export const OUTPUT_BODY_LIMIT = 8 * 1024 * 1024;

/**
 * TLS 1.2 suites: ECDHE key exchange (forward secrecy) with an AEAD cipher (GCM or
 * ChaCha20-Poly1305) only, for RSA and ECDSA certificates; no static-RSA key exchange, no CBC,
 * no SHA-1 MACs. These are the suites of Mozilla's "intermediate" profile; every client Ferry
 * has (Node's TLS) and current browsers offer them. TLS 1.3 suites are all AEAD with forward
 * secrecy; they are listed so that naming 1.2 suites does not switch 1.3 off.
 */
const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Sent with every answer, including the ones made before routing or by the HTTP parser. */
const SECURITY_HEADERS = {
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
} as const;

/**
 * How much of a refused request's body is read and thrown away before its connection is cut:
 * a usual JSON request, not an upload (whose reading churns memory even unbuffered).
 */
const DRAIN_BYTES = 64 * 1024;

/**
 * A connection with no traffic either way for this long is closed (a client that stopped
 * reading an answer). Long polls wait at most 30 s, so they never come near it.
 */
const IDLE_SOCKET_MS = 120_000;

/** How long requests may take to arrive, and how many connections may be open. */
interface ConnectionBounds {
  requestTimeoutSeconds: number;
  headersTimeoutSeconds: number;
  keepAliveTimeoutSeconds: number;
  maxConnections: number;
}

export interface AppOptions {
  keyPem: string;
  certPem: string;
  log: Logger;
  /** Default: the configuration's defaults. */
  bounds?: ConnectionBounds;
}

function mib(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

/** `limit`: the body limit of the route the request went to. */
function toFerryError(err: FastifyError | Error, limit: number): FerryError {
  if (err instanceof FerryError) return err;
  const e = err as FastifyError;
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new FerryError('FERRY_E_BODY_TOO_LARGE', `The request body is over this endpoint's limit of ${mib(limit)} (${limit} bytes).`, { cause: err });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new FerryError('FERRY_E_UNSUPPORTED_MEDIA_TYPE', undefined, { cause: err });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new FerryError('FERRY_E_INVALID_JSON', 'The request body is empty; send a JSON object.', { cause: err });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new FerryError('FERRY_E_INVALID_JSON', `The request body is not valid JSON: ${e.message}`, { cause: err });
    default:
      break;
  }
  if (err instanceof SyntaxError || (e.statusCode === 400 && /JSON/i.test(e.message))) {
    return new FerryError('FERRY_E_INVALID_JSON', `The request body is not valid JSON: ${err.message}`, { cause: err });
  }
  if (e.statusCode === 413) return new FerryError('FERRY_E_BODY_TOO_LARGE', undefined, { cause: err });
  if (e.statusCode === 415) return new FerryError('FERRY_E_UNSUPPORTED_MEDIA_TYPE', undefined, { cause: err });
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    return new FerryError('FERRY_E_BAD_REQUEST', e.message, { cause: err });
  }
  return new FerryError('FERRY_E_INTERNAL', undefined, { cause: err });
}

// The return type is inferred on purpose: it is the HTTPS-typed Fastify instance.
function createFastify(opts: AppOptions) {
  const bounds = opts.bounds ?? ServerConfigSchema.parse({});
  const requestMs = bounds.requestTimeoutSeconds * 1000;
  const headersMs = Math.min(bounds.headersTimeoutSeconds * 1000, requestMs);
  const app = Fastify({
    https: {
      key: opts.keyPem,
      cert: opts.certPem,
      minVersion: 'TLSv1.2',
      ciphers: TLS_CIPHERS,
      honorCipherOrder: true,
      handshakeTimeout: headersMs,
      headersTimeout: headersMs,
      // How often the request and headers timeouts are checked (Node's default is 30 s).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, headersMs / 4)),
    },
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    genReqId: () => newId('r'),
    requestIdHeader: false,
    // Until the whole request (headers and body) has arrived; waiting for the answer does not count.
    requestTimeout: requestMs,
    keepAliveTimeout: bounds.keepAliveTimeoutSeconds * 1000,
    connectionTimeout: IDLE_SOCKET_MS,
    // Fastify's own 503 while closing has a body of its own; turnAwayWhileClosing answers with ours.
    return503OnClosing: false,
    // Errors the router raises before any handler (a malformed URL, an over-long parameter).
    frameworkErrors: (err, _req, reply) => {
      const ferry = new FerryError('FERRY_E_BAD_REQUEST', `Bad request: ${err.message}`, { cause: err });
      void (reply as unknown as { code(n: number): { headers(h: object): { type(t: string): { send(b: unknown): unknown } } } })
        .code(400)
        .headers(SECURITY_HEADERS)
        .type('application/json')
        .send(ferry.toBody());
    },
    // Errors of the HTTP parser, before there is a request: a timeout, oversized headers, garbage.
    clientErrorHandler: (err, socket) => answerClientError(err, socket, bounds),
  });
  app.server.maxConnections = bounds.maxConnections;
  return app;
}

/**
 * Answers an HTTP-level client error on the raw socket, the way Node would, but with the
 * registry's body and the security headers, then closes the connection: a request that did not
 * arrive in time (408), headers too large (431), a request the parser cannot read (400).
 * Anything else (a TLS handshake that failed or timed out, a client that hung up mid-request)
 * has nobody to answer: the connection is just closed. Nothing is written once an answer began.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket, bounds: ConnectionBounds): void {
  const ferry = clientErrorAnswer(err, bounds);
  const answering = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!ferry || !socket.writable || answering?.headersSent) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(ferry.toBody());
  const headers = Object.entries({ ...SECURITY_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
  const head = [`HTTP/1.1 ${ferry.statusCode} ${ferry.toBody().error}`, ...headers.map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  socket.end(`${head}\r\n\r\n${body}`);
  // end() waits for the peer to close its side; one that does not is cut.
  setTimeout(() => socket.destroy(), 1000).unref();
}

function clientErrorAnswer(err: NodeJS.ErrnoException, bounds: ConnectionBounds): FerryError | undefined {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new FerryError('FERRY_E_REQUEST_TIMEOUT', `The request did not arrive within ${bounds.requestTimeoutSeconds} s; the connection was closed.`);
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') return new FerryError('FERRY_E_HEADERS_TOO_LARGE');
  if (err.code?.startsWith('HPE_') && err.code !== 'HPE_INVALID_EOF_STATE') return new FerryError('FERRY_E_BAD_REQUEST', 'Malformed HTTP request.');
  return undefined;
}

export type FerryApp = ReturnType<typeof createFastify>;

/** Lets one encapsulated scope (a route taking output frames) take them, up to its route's body limit. */
export function registerFramesParser(scope: { addContentTypeParser: FerryApp['addContentTypeParser'] }): void {
  scope.addContentTypeParser(OUTPUT_FRAMES_CONTENT_TYPE, { parseAs: 'buffer' }, (_req, body, done) => {
    done(null, body);
  });
}

/**
 * Requests that still arrive while the server shuts down (on a kept-alive connection) are
 * turned away with a code clients know is worth retrying, elsewhere or shortly.
 */
function turnAwayWhileClosing(app: FerryApp): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_req, _reply, done) => {
    done(closing ? new FerryError('FERRY_E_UNAVAILABLE', 'The server is shutting down; retry shortly.') : undefined);
  });
}

function addResponseHooks(app: FerryApp): void {
  app.addHook('onSend', async (_req, reply) => {
    // The web UI's files set their own cache policy (web/static.ts); everything else is no-store.
    const cacheControl = reply.getHeader('cache-control');
    reply.headers(SECURITY_HEADERS);
    if (cacheControl !== undefined) void reply.header('cache-control', cacheControl);
  });
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode >= 500) req.log.error({ method: req.method, url: req.url, statusCode: reply.statusCode }, 'request failed');
    else req.log.debug({ method: req.method, url: req.url, statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });
}

/** Every error leaves as the one registry body. */
function addErrorHandlers(app: FerryApp): void {
  app.setErrorHandler((rawErr, req, reply) => {
    const err = toFerryError(toError(rawErr), req.routeOptions.bodyLimit);
    if (err.statusCode >= 500) req.log.error({ err: err.cause ?? err }, 'internal error');
    const retryAfter = err.details?.retryAfterSeconds;
    if (typeof retryAfter === 'number') void reply.header('retry-after', String(retryAfter));
    drainUnreadBody(req);
    void reply.code(err.statusCode).type('application/json').send(err.toBody());
  });
  app.setNotFoundHandler((req, reply) => {
    const err = new FerryError('FERRY_E_NOT_FOUND', `No such API endpoint: ${req.method} ${req.url.split('?')[0] ?? ''}.`);
    void reply.code(404).send(err.toBody());
  });
}

/**
 * A request refused before its body was read (a bad token, a rate limit) is answered at once,
 * and the rest of its body is read and thrown away, nothing buffered, so a client still sending
 * a small body gets the answer rather than a reset connection. Up to DRAIN_BYTES only: past
 * that the connection is cut, so a refused upload costs little however much it sends (its
 * sender may see the reset before the answer). The request timeout bounds the time it may take.
 */
function drainUnreadBody(req: FastifyRequest): void {
  const raw = req.raw;
  if (raw.complete || req.body !== undefined || raw.listenerCount('data') > 0) return;
  let drained = 0;
  raw.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_BYTES) raw.socket.destroy();
  });
}

export function buildApp(opts: AppOptions): FerryApp {
  const app = createFastify(opts);
  // JSON only here; output frames are accepted by the routes that take them (registerFramesParser).
  // A text body is a client mistake worth a clear 415.
  app.removeContentTypeParser('text/plain');
  turnAwayWhileClosing(app);
  addResponseHooks(app);
  addErrorHandlers(app);
  return app;
}
