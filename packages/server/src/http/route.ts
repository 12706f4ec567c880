/**
 * Registers the handler of one entry of the protocol's route table (`Routes`), so a path, a
 * schema or a header name is written once, in protocol, for server and client alike.
 *
 * Before the handler runs, in this order (so a caller without a valid token learns nothing
 * about what a valid request looks like, and costs no more than its headers):
 * 1. before any of the body is read (an `onRequest` hook, route-guard.ts): the caller is
 *    authenticated as the table's `auth` says (`role`: the least user role), within the
 *    per-address limit of failed attempts; a route may add a limit of its own;
 * 2. the body is read, up to the route's limit (2 MiB of JSON, 8 MiB of frames);
 * 3. the query and the JSON body are parsed with the route's schemas: a problem is a 400
 *    FERRY_E_BAD_REQUEST that names it; a frames body is decoded, its first
 *    MAX_UPLOAD_FRAMES frames only (the handler stores those and says where the next upload
 *    starts).
 * The handler's answer is typed by the route and sent with the table's success status. A route
 * taking frames gets its own encapsulated scope with the frames parser, so no other route
 * reads 8 MiB bodies; a route answering frames returns a page and the headers are set here.
 */
import { Buffer } from 'node:buffer';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  FRAME_HEADER_BYTES,
  FerryError,
  MAX_UPLOAD_FRAMES,
  OUTPUT_FRAMES_CONTENT_TYPE,
  OutputHeaders,
  decodeFrames,
  encodeFrames,
  toError,
  type OutputFrame,
  type ParsedBody,
  type ParsedQuery,
  type RouteAnswer,
  type RouteDef,
  type RouteParams,
} from '@ferry/protocol';
import { JSON_BODY_LIMIT, OUTPUT_BODY_LIMIT, registerFramesParser, type FerryApp } from '../app.js';
import type { UserPrincipal } from '../auth.js';
import type { AgentRow, Role } from '../store/types.js';
import { parseInput } from '../validate.js';
import type { RateLimiter } from './rate-limit.js';
import { RouteGuard, type GuardContext } from './route-guard.js';

type Caller<R extends RouteDef> = R['auth'] extends 'user' ? UserPrincipal : R['auth'] extends 'agent' ? AgentRow : undefined;
type Body<R extends RouteDef> = R['body'] extends 'frames' ? OutputFrame[] : ParsedBody<R>;

interface RouteInput<R extends RouteDef> {
  req: FastifyRequest;
  reply: FastifyReply;
  caller: Caller<R>;
  params: RouteParams<R>;
  query: ParsedQuery<R>;
  body: Body<R>;
}

interface TextAnswer {
  contentType: string;
  text: string;
}
/** A page of output: the frames, and what the OutputHeaders say about it. */
export interface FramesAnswer {
  frames: readonly OutputFrame[];
  nextOffset: number;
  taskStatus: string;
  complete: boolean;
}

type HandlerAnswer<R extends RouteDef> = R['response'] extends 'empty'
  ? void
  : R['response'] extends 'text'
    ? TextAnswer
    : R['response'] extends 'frames'
      ? FramesAnswer
      : RouteAnswer<R>;

export type RouteHandler<R extends RouteDef> = (input: RouteInput<R>) => HandlerAnswer<R> | Promise<HandlerAnswer<R>>;

export interface RouteOptions {
  /** User routes: the least role that may call (default viewer). */
  role?: Role;
  /** What the body is, for error messages ("Invalid task: …"); default "request body". */
  what?: string;
  /** Attempts per client address, counted before the body is read; a success does not count. */
  limit?: RateLimiter;
}

type HookResult = Promise<void>;

/** The app or an encapsulated scope of it (whose Fastify type names a plain HTTP server). */
interface Scope {
  route(opts: {
    method: RouteDef['method'];
    url: string;
    bodyLimit: number;
    onRequest: (req: FastifyRequest) => HookResult;
    onResponse: (req: FastifyRequest, reply: FastifyReply) => HookResult;
    handler: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  }): unknown;
}

export function addRoute<R extends RouteDef>(app: FerryApp, ctx: GuardContext, def: R, handler: RouteHandler<R>, options: RouteOptions = {}): void {
  const guard = new RouteGuard(ctx, def, options);
  if (def.body !== 'frames') {
    register(app, guard, def, handler, options);
    return;
  }
  void app.register((scope, _opts, done) => {
    registerFramesParser(scope);
    register(scope, guard, def, handler, options);
    done();
  });
}

function register<R extends RouteDef>(scope: Scope, guard: RouteGuard, def: R, handler: RouteHandler<R>, options: RouteOptions): void {
  scope.route({
    method: def.method,
    url: def.path,
    bodyLimit: def.body === 'frames' ? OUTPUT_BODY_LIMIT : JSON_BODY_LIMIT,
    onRequest: (req) => guard.admit(req),
    onResponse: async (req, reply) => guard.settle(req, reply.statusCode),
    handler: async (req, reply) => {
      const caller = guard.callerOf(req);
      const query: unknown = def.query ? parseInput(def.query, req.query, 'query') : undefined;
      const body = parseBody(def, req.body, options.what);
      // The checks above follow the route's table entry, which the types cannot see at run time.
      const input = { req, reply, caller, params: req.params, query, body } as unknown as RouteInput<R>;
      return send(def, reply, await handler(input));
    },
  });
}

function parseBody(def: RouteDef, body: unknown, what = 'request body'): unknown {
  if (def.body === undefined) return undefined;
  if (def.body === 'frames') return parseFrames(body);
  return parseInput(def.body, body, what);
}

function parseFrames(body: unknown): OutputFrame[] {
  if (!(body instanceof Uint8Array)) throw new FerryError('FERRY_E_UNSUPPORTED_MEDIA_TYPE', `Output uploads must be ${OUTPUT_FRAMES_CONTENT_TYPE}.`);
  try {
    return decodeFrames(body.subarray(0, endOfFrames(body, MAX_UPLOAD_FRAMES)));
  } catch (err) {
    throw new FerryError('FERRY_E_BAD_REQUEST', `Malformed output frames: ${toError(err).message}.`, { cause: err });
  }
}

/**
 * The frames' encoding without copying them, when they already lie encoded in one buffer (the
 * SQLite store reads them so): each frame's data right after its header, the next header right
 * after it. Checked, header by header, so anything else is encoded afresh.
 */
function encodedView(frames: readonly OutputFrame[]): Uint8Array | undefined {
  const first = frames[0]?.data;
  if (!first || first.byteOffset < FRAME_HEADER_BYTES) return undefined;
  const view = new DataView(first.buffer);
  const start = first.byteOffset - FRAME_HEADER_BYTES;
  let at = start;
  for (const f of frames) {
    const headerOk =
      f.data.buffer === first.buffer &&
      f.data.byteOffset === at + FRAME_HEADER_BYTES &&
      view.getUint8(at) === f.stream &&
      view.getUint32(at + 1) === f.data.length &&
      Object.is(view.getFloat64(at + 5), f.time);
    if (!headerOk) return undefined;
    at += FRAME_HEADER_BYTES + f.data.length;
  }
  return new Uint8Array(first.buffer, start, at - start);
}

/** Where the first `max` frames end (the whole body if it has no more); reads only their headers. */
function endOfFrames(body: Uint8Array, max: number): number {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  for (let frames = 0; at + FRAME_HEADER_BYTES <= body.length; frames++) {
    if (frames === max) return at;
    at += FRAME_HEADER_BYTES + view.getUint32(at + 1);
  }
  return body.length;
}

function send(def: RouteDef, reply: FastifyReply, answer: unknown): unknown {
  void reply.code(def.status ?? (def.response === 'empty' ? 204 : 200));
  if (def.response === 'empty') return reply.send();
  if (def.response === 'text') {
    const { contentType, text } = answer as TextAnswer;
    return reply.type(contentType).send(text);
  }
  if (def.response === 'frames') return sendFrames(reply, answer as FramesAnswer);
  return answer;
}

function sendFrames(reply: FastifyReply, page: FramesAnswer): FastifyReply {
  const bytes = encodedView(page.frames) ?? encodeFrames(page.frames);
  return reply
    .type(OUTPUT_FRAMES_CONTENT_TYPE)
    .header(OutputHeaders.nextOffset, String(page.nextOffset))
    .header(OutputHeaders.taskStatus, page.taskStatus)
    .header(OutputHeaders.complete, page.complete ? 'true' : 'false')
    .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
}
