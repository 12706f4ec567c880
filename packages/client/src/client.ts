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
  /**
   * e.g. https://ferry.example.com:8443 (no path); or several servers of one installation
   * (replicas), comma-separated or as a list: calls go to one and fail over to the next
   * (`failsOver`), staying with the one that answers.
   */
  baseUrl: string | readonly string[];
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

type Answered = { status: number; bytes: Uint8Array; headers: FetchResponseLike['headers'] };

/**
 * Server URLs as `--server`, FERRY_SERVER, a config file or a join token give them: one, or
 * several separated by commas; without trailing slashes, each once.
 */
export function serverUrls(text: string): string[] {
  const urls = text
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter((u) => u.length > 0);
  return [...new Set(urls)];
}

/**
 * Whether a failed call should go to the next server: when this one could not be reached (or
 * stopped answering) or had a server error; never for an answer about the request itself (4xx),
 * which another replica would give too.
 */
function failsOver(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  return err.code === 'FERRY_E_NETWORK' || (err.status >= 500 && err.status !== 501);
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
  /** Every server this client may call, in the order given. */
  readonly baseUrls: readonly string[];
  private readonly opts: ClientOptions;
  /** The server calls go to first: the last one that answered. */
  private current = 0;

  constructor(opts: ClientOptions) {
    this.baseUrls = typeof opts.baseUrl === 'string' ? serverUrls(opts.baseUrl) : opts.baseUrl.flatMap((u) => serverUrls(u));
    if (this.baseUrls.length === 0) throw clientError('FERRY_E_BAD_SERVER_URL', 'No server URL given.');
    this.opts = opts;
  }

  /** The server calls go to now. */
  get baseUrl(): string {
    return this.baseUrls[this.current]!;
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
    const path = routePath(def, input.params) + queryString(input.query);
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
    const res = await this.sendWithFailover(path, { method: def.method, headers, body, signal: input.signal, redirect: 'error' });
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

  /**
   * Sends to the current server; when it cannot be reached or answers with a server error
   * (`failsOver`), to the next, each server once. The one that answers becomes the current one.
   */
  private async sendWithFailover(path: string, init: FetchInit): Promise<Answered> {
    const first = this.current;
    for (let tried = 0; ; tried++) {
      const index = (first + tried) % this.baseUrls.length;
      try {
        const res = await this.send(this.baseUrls[index]!, path, init);
        this.current = index;
        return res;
      } catch (err) {
        if (tried + 1 >= this.baseUrls.length || init.signal?.aborted || !failsOver(err)) throw err;
      }
    }
  }

  private async send(baseUrl: string, path: string, init: FetchInit): Promise<Answered> {
    const url = baseUrl + path;
    let res: FetchResponseLike;
    let bytes: Uint8Array;
    try {
      res = await this.opts.fetch(url, init);
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      if (isAbort(err)) throw err;
      const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw clientError('FERRY_E_NETWORK', `Cannot reach ${baseUrl}: ${reason}`, err);
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
