/**
 * The HTTP surface: HTTPS only, TLS 1.2+, HSTS, one error body shape, size limits. Route
 * modules register on top of this (http/route.ts).
 */
import Fastify, { LogController, type FastifyError } from 'fastify';
import type { Logger } from 'pino';
import { FerryError, OUTPUT_FRAMES_CONTENT_TYPE, toError } from '@ferry/protocol';
import { newId } from './ids.js';

const JSON_BODY_LIMIT = 2 * 1024 * 1024;
const OUTPUT_BODY_LIMIT = 8 * 1024 * 1024;

export interface AppOptions {
  keyPem: string;
  certPem: string;
  log: Logger;
}

function toFerryError(err: FastifyError | Error): FerryError {
  if (err instanceof FerryError) return err;
  const e = err as FastifyError;
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new FerryError('FERRY_E_BODY_TOO_LARGE', `The request body is over the limit of ${JSON_BODY_LIMIT} bytes.`, { cause: err });
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
  return Fastify({
    https: { key: opts.keyPem, cert: opts.certPem, minVersion: 'TLSv1.2' },
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    genReqId: () => newId('r'),
    requestIdHeader: false,
    keepAliveTimeout: 65_000,
    // Fastify's own 503 while closing has a body of its own; turnAwayWhileClosing answers with ours.
    return503OnClosing: false,
    // Errors the router raises before any handler (a malformed URL, an over-long parameter).
    frameworkErrors: (err, _req, reply) => {
      const ferry = new FerryError('FERRY_E_BAD_REQUEST', `Bad request: ${err.message}`, { cause: err });
      void (reply as unknown as { code(n: number): { type(t: string): { send(b: unknown): unknown } } })
        .code(400)
        .type('application/json')
        .send(ferry.toBody());
    },
  });
}

export type FerryApp = ReturnType<typeof createFastify>;

/** Lets one encapsulated scope (a route taking output frames) take them, up to 8 MiB. */
export function registerFramesParser(scope: { addContentTypeParser: FerryApp['addContentTypeParser'] }): void {
  scope.addContentTypeParser(OUTPUT_FRAMES_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: OUTPUT_BODY_LIMIT }, (_req, body, done) => {
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
    reply.header('strict-transport-security', 'max-age=31536000');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('cache-control', 'no-store');
  });
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode >= 500) req.log.error({ method: req.method, url: req.url, statusCode: reply.statusCode }, 'request failed');
    else req.log.debug({ method: req.method, url: req.url, statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });
}

/** Every error leaves as the one registry body. */
function addErrorHandlers(app: FerryApp): void {
  app.setErrorHandler((rawErr, req, reply) => {
    const err = toFerryError(toError(rawErr));
    if (err.statusCode >= 500) req.log.error({ err: err.cause ?? err }, 'internal error');
    void reply.code(err.statusCode).type('application/json').send(err.toBody());
  });
  app.setNotFoundHandler((req, reply) => {
    const err = new FerryError('FERRY_E_NOT_FOUND', `No such API endpoint: ${req.method} ${req.url.split('?')[0] ?? ''}.`);
    void reply.code(404).send(err.toBody());
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
