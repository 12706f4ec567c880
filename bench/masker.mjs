/**
 * Secret-masker figures through the masker alone (packages/agent/dist/output/masker.js): MiB/s
 * with 0, 10 and 100 secrets. Without that file every figure is null ("not built yet").
 *
 * When the module exports `SecretMasker`, `measureMaskerThroughput(SecretMasker, secretCount, MiB)`
 * from fixtures/masker-fixtures.mjs runs (realistic secrets and log-like output in 64 KiB
 * chunks, automaton build excluded, checks that secret-free output comes out unchanged; the
 * masker's own tests use it too). Otherwise `adaptMasker`
 * drives it through `new SecretMasker(values).forStream()` → `push`/`flush` (or a few other
 * likely shapes) over log-like text. With 0 secrets the masker has nothing to look for and
 * passes chunks straight through, so that figure is only a function call's cost.
 *
 * masked_output_ratio is end to end and is measured in run.mjs (output phase): output_mb_per_s
 * of a task on a target with 10 secrets, which the agent masks, ÷ the same without secrets.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './harness.mjs';
import { median, spread } from './stats.mjs';
import { measureMaskerThroughput } from './fixtures/masker-fixtures.mjs';

export const MASKER_KEYS = ['masker_mb_per_s_0_secrets', 'masker_mb_per_s_10_secrets', 'masker_mb_per_s_100_secrets'];
export const MASKER_PATH = join(ROOT, 'packages/agent/dist/output/masker.js');

function nulls(note) {
  return { note, values: Object.fromEntries(MASKER_KEYS.map((k) => [k, null])), spreads: {} };
}

/** Returns { push(buf) → Buffer|string, flush() → Buffer|string|undefined } or undefined. */
export function adaptMasker(mod, secrets) {
  const factory = [mod.createMasker, mod.makeMasker, mod.createSecretMasker].find((f) => typeof f === 'function');
  const Cls = [mod.SecretMasker, mod.OutputMasker, mod.Masker, mod.StreamMasker].find((f) => typeof f === 'function');
  let m;
  try {
    m = factory ? factory(secrets) : Cls ? new Cls(secrets) : undefined;
  } catch {
    return undefined;
  }
  if (!m) return undefined;
  if (typeof m.forStream === 'function') m = m.forStream();
  const push = [m.push, m.write, m.mask, m.transform].find((f) => typeof f === 'function');
  const flush = [m.flush, m.end, m.finish].find((f) => typeof f === 'function');
  if (!push) return undefined;
  return { push: (b) => push.call(m, b), flush: () => (flush ? flush.call(m) : undefined) };
}

const asBuffer = (x) => (x === undefined || x === null ? Buffer.alloc(0) : Buffer.isBuffer(x) ? x : typeof x === 'string' ? Buffer.from(x) : Buffer.from(x));

/** Printable, log-like text with no accidental secrets in it. */
function sampleText(bytes) {
  const line = Buffer.from('2024-01-01T00:00:00.000Z INFO request served path=/v1/things/123 status=200 ms=4 user=deploy\n');
  const out = Buffer.alloc(bytes);
  for (let at = 0; at < bytes; at += line.length) line.copy(out, at, 0, Math.min(line.length, bytes - at));
  return out;
}

function secretsOf(n) {
  return Array.from({ length: n }, () => `s3cr3t_${randomBytes(12).toString('hex')}`);
}

/** Checks the adapter really masks: a secret fed in must not come out. */
function masks(mod) {
  const [secret] = secretsOf(1);
  const m = adaptMasker(mod, [secret]);
  if (!m) return false;
  const out = Buffer.concat([
    asBuffer(m.push(Buffer.from(`a ${secret.slice(0, 9)}`))),
    asBuffer(m.push(Buffer.from(`${secret.slice(9)} b\n`))),
    asBuffer(m.flush()),
  ]);
  return out.length > 0 && !out.includes(secret);
}

function throughput(mod, nSecrets, totalBytes) {
  const m = adaptMasker(mod, secretsOf(nSecrets));
  const chunk = sampleText(64 * 1024);
  let outBytes = 0;
  const t0 = performance.now();
  for (let done = 0; done < totalBytes; done += chunk.length) outBytes += asBuffer(m.push(chunk)).length;
  outBytes += asBuffer(m.flush()).length;
  const s = (performance.now() - t0) / 1000;
  if (outBytes < totalBytes * 0.5) throw new Error('the masker returned much less than it was given; check adaptMasker');
  return totalBytes / 2 ** 20 / s;
}

export async function measureMasker({ quick, path = MASKER_PATH }) {
  if (!existsSync(path)) return nulls('not built yet');
  let mod;
  try {
    mod = await import(pathToFileURL(path).href);
  } catch (err) {
    return nulls(`masker.js failed to load: ${err.message}`);
  }
  const own = typeof mod.SecretMasker === 'function';
  if (!own && !masks(mod)) return nulls('masker.js found, but bench/masker.mjs adaptMasker() does not recognise its interface (or it did not mask); adapt it');
  const mib = quick ? 32 : 256;
  const runs = quick ? 3 : 5;
  const values = {};
  const spreads = {};
  for (const n of [0, 10, 100]) {
    const xs = [];
    for (let i = 0; i < runs; i++) xs.push(own ? measureMaskerThroughput(mod.SecretMasker, n, mib) : throughput(mod, n, mib * 2 ** 20));
    values[`masker_mb_per_s_${n}_secrets`] = median(xs);
    spreads[`masker_mb_per_s_${n}_secrets`] = spread(xs);
  }
  return { note: own ? 'fixtures/masker-fixtures.mjs measureMaskerThroughput() on SecretMasker' : 'through adaptMasker()', values, spreads, mib, runs };
}
