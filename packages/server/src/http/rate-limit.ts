/**
 * Per-address rate limits: one token bucket per client address, in memory.
 *
 * A bucket holds up to `perMinute` tokens and refills at `perMinute` a minute. An attempt takes
 * a token *before* the work it guards (checking a token, a join secret, later a password), so
 * neither a burst of concurrent attempts nor a slow check escapes the limit; an attempt that
 * succeeds gives its token back. So only failures use the allowance up, and once it is used up
 * every attempt from that address is turned away (429, with Retry-After) until it refills —
 * valid ones too, or the limit would still answer which guesses are right.
 *
 * States of a bucket: full (not kept: a missing bucket is a full one) → draining (tokens
 * taken) → empty (attempts refused) → refilling with time → full (dropped once refunds fill it,
 * or forgotten as least recently used).
 *
 * IPv6 clients are counted per /64, the block one machine usually has. The map is bounded:
 * past `maxAddresses` the least recently used addresses are forgotten. The count is per
 * process: replicas behind a load balancer each keep their own. The address is the socket's:
 * behind a reverse proxy every client has the proxy's (no forwarded-for header is trusted).
 *
 * The same buckets also count all requests per user token (keyed by the token's id, which no
 * address can look like): there nothing is refunded, so it is a plain request rate.
 */
import { isIPv6 } from 'node:net';
import { FerryError } from '@ferry/protocol';

const MAX_ADDRESSES = 10_000;

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    /** Attempts allowed per minute (and burst size); 0 turns the limit off. */
    private readonly perMinute: number,
    /** What is limited, for the 429 message ("failed authentications"). */
    private readonly what: string,
    private readonly now: () => number = Date.now,
    private readonly maxAddresses = MAX_ADDRESSES,
    /** Whose allowance it is, for the 429 message. */
    private readonly whose = 'from this address',
  ) {}

  /** Takes a token for `address`, or throws 429 FERRY_E_RATE_LIMITED saying when to retry. */
  take(address: string): void {
    if (this.perMinute === 0) return;
    const key = addressKey(address);
    const bucket = this.refilled(key);
    if (bucket.tokens < 1) {
      const retryAfterSeconds = Math.ceil(((1 - bucket.tokens) * 60) / this.perMinute);
      throw new FerryError('FERRY_E_RATE_LIMITED', `Too many ${this.what} ${this.whose}; retry in ${retryAfterSeconds} s.`, {
        details: { retryAfterSeconds },
      });
    }
    bucket.tokens -= 1;
    this.buckets.delete(key); // re-inserted last: the map's order is least recently used first
    this.buckets.set(key, bucket);
    this.bound();
  }

  /** Gives back the token of an attempt that succeeded. */
  refund(address: string): void {
    if (this.perMinute === 0) return;
    const key = addressKey(address);
    const bucket = this.buckets.get(key);
    if (!bucket) return;
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + 1);
    if (bucket.tokens >= this.perMinute) this.buckets.delete(key);
  }

  private refilled(key: string): Bucket {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.perMinute, updatedAt: now };
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + ((now - bucket.updatedAt) * this.perMinute) / 60_000);
    bucket.updatedAt = now;
    return bucket;
  }

  /** Forgets the least recently used addresses past the bound (a forgotten bucket is a full one). */
  private bound(): void {
    for (const [key] of this.buckets) {
      if (this.buckets.size <= this.maxAddresses) break;
      this.buckets.delete(key);
    }
  }
}

/** The address a limit counts by: IPv4 as it is (also when IPv4-mapped), IPv6 by its /64. */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
