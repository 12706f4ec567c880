/**
 * Secret-masker figures. The masker does not exist yet (it arrives with its own issue); until
 * packages/agent/dist/output/masker.js is built, every figure here is null and the table says
 * "not built yet".
 *
 * When it exists, `measureMasker` feeds it output in 64 KiB chunks with 0, 10 and 100 secrets
 * and reports MiB/s through the masker alone. `adaptMasker` is the one place that knows the
 * masker's interface. It expects the one the task runner uses
 * (`new SecretMasker(values).forStream()` → `{ push(buf) → buf, flush() → buf }`) and also
 * tries a few other likely shapes. If the real interface differs, adjust it there.
 *
 * masked_output_ratio is meant as the end-to-end output_mb_per_s of a task whose output is
 * masked (10 secrets attached to the task) divided by the unmasked output_mb_per_s. It needs a
 * way to attach secrets to a task through the API; until then it stays null even with a
 * masker present (`maskedOutputRatio` below is the hook to fill in).
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './harness.mjs';
import { median, spread } from './stats.mjs';

export const MASKER_KEYS = ['masked_output_ratio', 'masker_mb_per_s_0_secrets', 'masker_mb_per_s_10_secrets', 'masker_mb_per_s_100_secrets'];
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
  const out = Buffer.concat([asBuffer(m.push(Buffer.from(`a ${secret.slice(0, 9)}`))), asBuffer(m.push(Buffer.from(`${secret.slice(9)} b\n`))), asBuffer(m.flush())]);
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

/** Hook for the end-to-end ratio once tasks can carry secrets; null until then. */
async function maskedOutputRatio() {
  return Promise.resolve(null);
}

export async function measureMasker({ quick, path = MASKER_PATH }) {
  if (!existsSync(path)) return nulls('not built yet');
  let mod;
  try {
    mod = await import(pathToFileURL(path).href);
  } catch (err) {
    return nulls(`masker.js failed to load: ${err.message}`);
  }
  if (!masks(mod)) return nulls('masker.js found, but bench/masker.mjs adaptMasker() does not recognise its interface (or it did not mask); adapt it');
  const total = (quick ? 32 : 256) * 2 ** 20;
  const runs = quick ? 3 : 5;
  const values = {};
  const spreads = {};
  for (const n of [0, 10, 100]) {
    const xs = [];
    for (let i = 0; i < runs; i++) xs.push(throughput(mod, n, total));
    values[`masker_mb_per_s_${n}_secrets`] = median(xs);
    spreads[`masker_mb_per_s_${n}_secrets`] = spread(xs);
  }
  values.masked_output_ratio = await maskedOutputRatio();
  return { note: values.masked_output_ratio === null ? 'masked_output_ratio: needs secrets on tasks (not built yet)' : '', values, spreads };
}
