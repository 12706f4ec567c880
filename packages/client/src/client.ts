/**
 * The typed Ferry API client: one `call` per route of the protocol's route table. It builds
 * the URL from the route's path and parameters, sends JSON or output frames, turns every error
 * answer into an ApiError with the server's stable code, and validates every answer against
 * the route's schema, so a caller never holds an unchecked server answer.
 *
 * It runs on anything `fetch`-shaped: the browser's `fetch`, or the Node transport in
 * `@ferry/client/node` (which pins the server's CA).
 */
import {
  OUTPUT_FRAMES_CONTENT_TYPE,
  OutputHeaders,
  routePath,
  utf8Decode,
  type RouteBody,
  type RouteDef,
  type RouteParams,
  type RouteQuery,
  type RouteResult,
} from '@ferry/protocol';
import { ApiError, clientError, errorFromAnswer, isAbort } from './errors.js';

export interface FetchInit {
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array | string | undefined;
  signal?: AbortSignal | undefined;
  /** A Ferry server never redirects: a browser must not follow one (the Node transport never does). */
  redirect?: 'error';
}

export interface FetchResponseLike {
  status: number;
  headers: { get(name: string): string | null };
  arrayBuffer(): Promise<ArrayBuffer>;
}

export type FetchLike = (url: string, init: FetchInit) => Promise<FetchResponseLike>;

export interface ClientOptions {
  /** e.g. https://ferry.example.com:8443 (no path). */
  baseUrl: string;
  fetch: FetchLike;
  /** Bearer token (user or agent). Browsers signed in with a cookie leave it out. */
  token?: string | undefined;
  /** Sent as User-Agent where the transport allows it (not in browsers). */
  userAgent?: string | undefined;
  /** Extra headers on every request (a CSRF token, say). */
  headers?: Record<string, string>;
  /** Releases the transport's connections. */
  close?: () => Promise<void>;
}

type HasKeys<T> = keyof T extends never ? false : true;

export type CallInput<R extends RouteDef> = (HasKeys<RouteParams<R>> extends true ? { params: RouteParams<R> } : { params?: undefined }) &
  (R extends { body: unknown } ? { body: RouteBody<R> } : { body?: undefined }) & {
    query?: RouteQuery<R>;
    signal?: AbortSignal | undefined;
    /** Headers of this call only (an output upload's digest, say). */
    headers?: Record<string, string> | undefined;
  };

type NeedsInput<R extends RouteDef> = HasKeys<RouteParams<R>> extends true ? true : R extends { body: unknown } ? true : false;
export type CallArgs<R extends RouteDef> = NeedsInput<R> extends true ? [input: CallInput<R>] : [input?: CallInput<R>];

function queryString(query: Record<string, unknown> | undefined): string {
  if (!query) return '';
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') q.set(key, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

export class FerryClient {
  readonly baseUrl: string;
  private readonly opts: ClientOptions;

  constructor(opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.opts = opts;
  }

  /** Calls one route of `Routes` and returns its checked answer. */
  async call<R extends RouteDef>(def: R, ...args: CallArgs<R>): Promise<RouteResult<R>> {
    const input = (args[0] ?? {}) as {
      params?: Record<string, string>;
      query?: Record<string, unknown>;
      body?: unknown;
      signal?: AbortSignal;
      headers?: Record<string, string>;
    };
    const url = this.baseUrl + routePath(def, input.params) + queryString(input.query);
    const headers: Record<string, string> = {
      accept: def.response === 'frames' ? OUTPUT_FRAMES_CONTENT_TYPE : 'application/json',
      ...this.opts.headers,
      ...input.headers,
    };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (this.opts.userAgent) headers['user-agent'] = this.opts.userAgent;
    let body: Uint8Array | string | undefined;
    if (def.body === 'frames') {
      headers['content-type'] = OUTPUT_FRAMES_CONTENT_TYPE;
      body = input.body as Uint8Array;
    } else if (def.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(input.body);
    }
    const res = await this.send(url, { method: def.method, headers, body, signal: input.signal, redirect: 'error' });
    const expected = def.status ?? (def.response === 'empty' ? 204 : 200);
    if (res.status !== expected) {
      // A 2xx or 3xx other than the route's own is not the server's "done": never take it for one.
      throw new ApiError(res.status, 'FERRY_E_UNEXPECTED_RESPONSE', `${def.method} ${def.path} answered HTTP ${res.status}, not ${expected}.`);
    }
    return this.answer(def, res.status, res.bytes, res.headers) as RouteResult<R>;
  }

  async close(): Promise<void> {
    await this.opts.close?.();
  }

  private async send(url: string, init: FetchInit): Promise<{ status: number; bytes: Uint8Array; headers: FetchResponseLike['headers'] }> {
    let res: FetchResponseLike;
    let bytes: Uint8Array;
    try {
      res = await this.opts.fetch(url, init);
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      if (isAbort(err)) throw err;
      const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw clientError('FERRY_E_NETWORK', `Cannot reach ${this.baseUrl}: ${reason}`, err);
    }
    if (res.status >= 400) throw errorFromAnswer(res.status, utf8Decode(bytes));
    return { status: res.status, bytes, headers: res.headers };
  }

  private answer(def: RouteDef, status: number, bytes: Uint8Array, headers: FetchResponseLike['headers']): unknown {
    switch (def.response) {
      case 'empty':
        return undefined;
      case 'text':
        return utf8Decode(bytes);
      case 'frames': {
        const nextOffset = Number(headers.get(OutputHeaders.nextOffset));
        if (!Number.isSafeInteger(nextOffset))
          throw new ApiError(status, 'FERRY_E_UNEXPECTED_RESPONSE', `The output answer has no valid ${OutputHeaders.nextOffset} header.`);
        return { body: bytes, nextOffset, taskStatus: headers.get(OutputHeaders.taskStatus) ?? '', complete: headers.get(OutputHeaders.complete) === 'true' };
      }
      default: {
        let json: unknown;
        try {
          json = JSON.parse(utf8Decode(bytes));
        } catch (err) {
          throw new ApiError(status, 'FERRY_E_UNEXPECTED_RESPONSE', `The server sent an answer that is not JSON (HTTP ${status}).`, undefined, { cause: err });
        }
        const parsed = def.response.safeParse(json);
        if (!parsed.success) {
          const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(answer)'}: ${i.message}`);
          throw new ApiError(
            status,
            'FERRY_E_UNEXPECTED_RESPONSE',
            `The server's answer to ${def.method} ${def.path} does not match this client (${issues.join('; ')}); are client and server the same version?`,
          );
        }
        return parsed.data;
      }
    }
  }
}
