/**
 * Who may send a route a body: the checks made from the headers alone, in an `onRequest` hook,
 * before Fastify reads any of the body. A refused request is answered at once (its connection
 * closed, see app.ts), so a caller without a valid token costs its headers and one lookup, not
 * the 8 MiB an upload may carry.
 *
 * - Routes with `auth: 'user'` or `'agent'`: the bearer token, and for user routes the role.
 *   Each attempt takes a token from the address's allowance of failed authentications first
 *   (rate-limit.ts) and gives it back unless the token was refused (401), so an address that
 *   keeps failing is turned away (429) before its tokens are even looked up.
 * - Routes with `auth: 'user'`: once the token is known, each request takes one from that
 *   token's allowance of requests (`requestsPerTokenPerMinute`), whatever its answer, so one
 *   runaway script or leaked token cannot monopolise the server; other tokens are unaffected.
 *   Agents' tokens are exempt: polls and uploads are their normal traffic, already bounded by
 *   their concurrency (one long poll each) and the upload limits.
 * - A route's own limit (agent registration): each attempt takes a token before its body is
 *   read; an answer under 400 gives it back.
 */
import type { FastifyRequest } from 'fastify';
import { FerryError, type RouteDef } from '@ferry/protocol';
import { requireAgent, requireUser, type UserPrincipal } from '../auth.js';
import type { AgentRow, Role, Store } from '../store/types.js';
import type { RateLimiter } from './rate-limit.js';

export interface RateLimits {
  /** Failed authentications (bearer tokens) per client address. */
  authFailures: RateLimiter;
  /** Agent registrations that do not succeed, per client address. */
  registrations: RateLimiter;
  /** Sign-in and invitation attempts that do not succeed, per client address. */
  signIns: RateLimiter;
  /** Failed sign-ins per account (e-mail), whatever the address. */
  accountSignIns: RateLimiter;
  /** All requests per user token (people's and service accounts'); agents' tokens are exempt. */
  userTokens: RateLimiter;
}

/** What the guards need from the server's context. */
export interface GuardContext {
  store: Store;
  rateLimits: RateLimits;
}

type Caller = UserPrincipal | AgentRow | undefined;

export class RouteGuard {
  private readonly callers = new WeakMap<FastifyRequest, Caller>();

  constructor(
    private readonly ctx: GuardContext,
    private readonly def: RouteDef,
    private readonly options: { role?: Role; limit?: RateLimiter },
  ) {}

  /** The `onRequest` hook: throws the answer for a request that may not go on. */
  async admit(req: FastifyRequest): Promise<void> {
    this.options.limit?.take(req.ip);
    if (this.def.auth === 'none') return;
    const limiter = this.ctx.rateLimits.authFailures;
    limiter.take(req.ip);
    let caller: Caller;
    try {
      caller = await this.authenticate(req);
    } catch (err) {
      if (!(err instanceof FerryError && err.statusCode === 401)) limiter.refund(req.ip);
      throw err;
    }
    limiter.refund(req.ip);
    // The prefix keeps a token id from ever being read as an address (addressKey).
    if (caller && 'tokenId' in caller) this.ctx.rateLimits.userTokens.take(`token:${caller.tokenId}`);
    this.callers.set(req, caller);
  }

  /** The `onResponse` hook: an attempt that succeeded does not count against the route's limit. */
  settle(req: FastifyRequest, statusCode: number): void {
    if (statusCode < 400) this.options.limit?.refund(req.ip);
  }

  /** Who `admit` let in (undefined on routes without auth). */
  callerOf(req: FastifyRequest): Caller {
    return this.callers.get(req);
  }

  private authenticate(req: FastifyRequest): Promise<Caller> {
    switch (this.def.auth) {
      case 'user':
        return requireUser(this.ctx.store, req, this.options.role);
      case 'agent':
        return requireAgent(this.ctx.store, req);
      case 'none':
        return Promise.resolve(undefined);
    }
  }
}
