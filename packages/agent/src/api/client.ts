/**
 * HTTPS client for the Ferry API, shared by the agent and the CLI. Verifies the server
 * against the pinned CA, keeps connections alive, and turns every failure into an ApiError
 * carrying the server's stable error code.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { isErrorCode } from '@ferry/protocol';
import { ApiError } from './errors.js';

export interface ClientOptions { serverUrl: string; caPem: string; token?: string | undefined; userAgent?: string }

export interface RawResponse { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

export class ApiClient {
  readonly serverUrl: string;
  private readonly dispatcher: Agent;
  private readonly token: string | undefined;
  private readonly userAgent: string;

  constructor(opts: ClientOptions) {
    this.serverUrl = opts.serverUrl.replace(/\/+$/, '');
    this.token = opts.token;
    this.userAgent = opts.userAgent ?? 'ferry';
    this.dispatcher = new Agent({
      connect: { ca: opts.caPem, minVersion: 'TLSv1.2' },
      keepAliveTimeout: 60_000,
      headersTimeout: 90_000,
      bodyTimeout: 90_000,
      connections: 16,
    });
  }

  async raw(method: Dispatcher.HttpMethod, path: string, opts: { body?: Buffer | string; contentType?: string; signal?: AbortSignal } = {}): Promise<RawResponse> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent, accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (opts.body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.serverUrl + path, { method, headers, body: opts.body, dispatcher: this.dispatcher, signal: opts.signal });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new ApiError(0, 'FERRY_E_NETWORK', `Cannot reach ${this.serverUrl}: ${(err as Error).message}`, undefined, { cause: err });
    }
    let body: Buffer;
    try {
      body = Buffer.from(await res.body.arrayBuffer());
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new ApiError(0, 'FERRY_E_NETWORK', `Connection to ${this.serverUrl} broke: ${(err as Error).message}`, undefined, { cause: err });
    }
    if (res.statusCode >= 400) throw errorFromResponse(res.statusCode, body);
    return { status: res.statusCode, headers: res.headers, body };
  }

  async json<T>(method: Dispatcher.HttpMethod, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const opts: { body?: string; signal?: AbortSignal } = {};
    if (body !== undefined) opts.body = JSON.stringify(body);
    if (signal) opts.signal = signal;
    const res = await this.raw(method, path, opts);
    if (res.status === 204 || res.body.length === 0) return undefined as T;
    try {
      return JSON.parse(res.body.toString('utf8')) as T;
    } catch (err) {
      throw new ApiError(res.status, 'FERRY_E_UNEXPECTED_RESPONSE', `The server sent a response that is not JSON (HTTP ${res.status}).`, undefined, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

function errorFromResponse(status: number, body: Buffer): ApiError {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { code?: unknown; message?: unknown; details?: Record<string, unknown> };
    if (isErrorCode(parsed.code) && typeof parsed.message === 'string') {
      return new ApiError(status, parsed.code, parsed.message, parsed.details);
    }
  } catch {
    // fall through: not one of ours
  }
  return new ApiError(status, status >= 500 ? 'FERRY_E_INTERNAL' : 'FERRY_E_UNEXPECTED_RESPONSE', `HTTP ${status} from the server: ${body.toString('utf8').slice(0, 200)}`);
}
