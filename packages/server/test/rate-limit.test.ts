/**
 * The per-address token bucket: a burst of failures up to the allowance, then 429 with when to
 * retry; refills with time; a success gives its token back; IPv6 counts per /64; the map of
 * addresses stays bounded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FerryError } from '@ferry/protocol';
import { RateLimiter, addressKey } from '../src/http/rate-limit.js';

function limiter(perMinute: number, maxAddresses?: number): { limit: RateLimiter; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  return { limit: new RateLimiter(perMinute, 'attempts', () => clock.now, maxAddresses), clock };
}

function refusal(fn: () => void): FerryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FerryError) return err;
    throw err;
  }
  assert.fail('expected a refusal');
}

test('an address gets its allowance at once, then 429 FERRY_E_RATE_LIMITED saying when to retry', () => {
  const { limit } = limiter(6);
  for (let i = 0; i < 6; i++) limit.take('10.0.0.1');
  const err = refusal(() => limit.take('10.0.0.1'));
  assert.equal(err.code, 'FERRY_E_RATE_LIMITED');
  assert.equal(err.statusCode, 429);
  assert.deepEqual(err.details, { retryAfterSeconds: 10 }, 'six a minute: one more in 10 s');
  limit.take('10.0.0.2'); // another address is unaffected
});

test('the allowance refills with time', () => {
  const { limit, clock } = limiter(6);
  for (let i = 0; i < 6; i++) limit.take('10.0.0.1');
  clock.now += 9_000;
  assert.deepEqual(refusal(() => limit.take('10.0.0.1')).details, { retryAfterSeconds: 1 });
  clock.now += 1_000;
  limit.take('10.0.0.1');
  clock.now += 60_000;
  for (let i = 0; i < 6; i++) limit.take('10.0.0.1');
});

test('an attempt that succeeds gives its token back; 0 turns the limit off', () => {
  const { limit } = limiter(2);
  for (let i = 0; i < 100; i++) {
    limit.take('10.0.0.1');
    limit.refund('10.0.0.1');
  }
  const { limit: off } = limiter(0);
  for (let i = 0; i < 100; i++) off.take('10.0.0.1');
});

test('IPv6 addresses count per /64; IPv4-mapped ones as IPv4', () => {
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
  const { limit } = limiter(1);
  limit.take('2001:db8:1:2::1');
  assert.equal(refusal(() => limit.take('2001:db8:1:2::99')).code, 'FERRY_E_RATE_LIMITED');
});

test('past its bound the map forgets the least recently used addresses', () => {
  const { limit } = limiter(1, 3);
  for (const a of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']) limit.take(a);
  limit.take('10.0.0.1'); // forgotten: a full bucket again
  assert.equal(refusal(() => limit.take('10.0.0.4')).code, 'FERRY_E_RATE_LIMITED');
});
