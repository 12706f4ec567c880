// The server's redaction on its own, driven as the upload path drives it: the output in slices
// (task-output.ts, output-slices.ts: 1 MiB, one agent upload, since 2026-11-29; 64 KiB before),
// one redactingTransform call per slice with the state exported and restored between them. Shapes
// (frames/slice): `64K/1M` is the server's path now (an upload of the agent's 64 KiB pipe reads);
// `64K`, `4093` and `1M` are frames of that size in 64 KiB slices (64 KiB and 1 MiB for `1M`). Figures
// are CPU time of this process (not wall time), so they hold up on a busy machine better than
// the end-to-end bench; output is hashed outside the timed part and printed so two builds can
// be compared byte for byte.
//
//   npx tsc --build && node bench/redaction.mjs [--mib 8] [--reps 3] [--kinds random,log] [--dir DIR]...
//
// --dir (repeatable) is a built redaction folder (default packages/server/dist/redaction); with
// two, each kind and level runs on both back to back (copy the old build's folder somewhere
// first to compare before and after).
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import process from 'node:process';
import { loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '8' },
    reps: { type: 'string', default: '3' },
    kinds: { type: 'string', default: 'random,log,longline,b64line' },
    dir: { type: 'string', multiple: true },
  },
});
const size = Number(values.mib) * 1024 * 1024;
const reps = Number(values.reps);
const dirs = (values.dir ?? [path.join(import.meta.dirname, '../packages/server/dist/redaction')]).map((d) => path.resolve(d));

/** A fixed-seed generator: every run, and every build, sees the same bytes. */
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * A private-key block for the redactor to remove: the real markers around a made-up body. The
 * body is not key material, and no key-shaped text is committed.
 */
function fakePrivateKeyBlock() {
  const marker = (edge) => `-----${edge} RSA PRIVATE KEY-----`;
  const body = Buffer.from(Array.from({ length: 48 }, (_, i) => (i * 37 + 11) & 0xff)).toString('base64');
  return `${marker('BEGIN')}\n${body}\n${marker('END')}`;
}

// Invented values shaped like real credentials, one of each rule kind, and personal data.
const SECRETS = [
  'Authorization: Basic dXNlcjpwYXNzd29yZA==',
  'postgres://admin:s3cr3t-pa55@db.example.com/app',
  'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  'aws_session_token=FwoGZXIvYXdzEJr//////////wEaDH3ExAmPlE',
  '"private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"',
  'AccountKey=Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi==',
  'token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
  'Bearer Ab3De6Gh9Jk2Mn5Pq8St1Vw4',
  'ghp_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3HiJ',
  'glpat-Ab3De6Gh9Jk2Mn5Pq8St',
  'xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
  'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
  'npm_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8',
  'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
  'sk-proj-Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi9',
  'ferry_u_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi9Ab3De6Gh9J',
  'AKIAIOSFODNN7EXAMPLE',
  'mail john.doe@example.org',
  'card 4111 1111 1111 1111',
  'phone +14155552671 or (555) 123-4567 or 555-123-4567',
  fakePrivateKeyBlock(),
];
const WORDS = (
  'the a of to in for on with at by from up about into over after build test run step compile link install fetch download resolve ' +
  'package module error warning info debug done ok failed passed skipped cache hit miss http https GET POST PUT 200 404 500 ms s KiB ' +
  'MiB user session request response server client worker job queue retry timeout connect socket file path dir src dist node npm make ' +
  'gcc ld cc1 rustc cargo go pip python java gradle mvn docker image layer pull push sha256 digest tag latest'
).split(' ');

/** Build-log-like text: time-stamped lines, paths, URLs, numbers, a `\r` progress bar now and then, a secret every 500 lines. */
function logText(bytes) {
  const r = prng(1);
  const lines = [];
  for (let n = 0, i = 0; n < bytes; i++) {
    const t = `2026-11-29T02:${String(i % 60).padStart(2, '0')}:${String((i * 7) % 60).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z`;
    const words = [];
    for (let j = 4 + Math.floor(r() * 14); j > 0; j--) {
      const x = r();
      if (x < 0.1) words.push(String(Math.floor(r() * 100000)));
      else if (x < 0.13) words.push(`/usr/lib/node_modules/pkg${Math.floor(r() * 99)}/index.js:${Math.floor(r() * 900)}`);
      else if (x < 0.15) words.push(`https://registry.example.com/pkg/-/pkg-${Math.floor(r() * 9)}.${Math.floor(r() * 9)}.tgz`);
      else if (x < 0.16) words.push(`key=${Math.floor(r() * 1e9).toString(36)}`);
      else words.push(WORDS[Math.floor(r() * WORDS.length)]);
    }
    let line = `${t} ${['INFO', 'DEBUG', 'WARN', 'ERROR'][Math.floor(r() * 4)]} ${words.join(' ')}`;
    if (i % 500 === 250) line += ` ${SECRETS[Math.floor(i / 500) % SECRETS.length]}`;
    if (i % 200 === 7) line = `\r[${'#'.repeat(i % 40)}${' '.repeat(40 - (i % 40))}] ${i % 100}%`;
    lines.push(line);
    n += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`, 'latin1').subarray(0, bytes);
}

/** One line without a newline: words and now and then a secret (minified code, a JSON blob). */
function longLine(bytes) {
  const r = prng(2);
  const parts = [];
  for (let n = 0; n < bytes;) {
    const w = r() < 0.002 ? SECRETS[Math.floor(r() * 17)] : WORDS[Math.floor(r() * WORDS.length)];
    parts.push(w);
    n += w.length + 1;
  }
  return Buffer.from(parts.join(' ').replace(/\n/g, ' '), 'latin1').subarray(0, bytes);
}

/** 1 MiB of fixed pseudo-random bytes, repeated: what the end-to-end bench's `cat` of /dev/urandom looks like to the server. */
function randomBytes(bytes) {
  const r = prng(99);
  const mib = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib.length; i++) mib[i] = Math.floor(r() * 256);
  const b = Buffer.alloc(bytes);
  for (let at = 0; at < bytes; at += mib.length) mib.copy(b, at);
  return b;
}

const INPUTS = {
  random: () => randomBytes(size),
  log: () => logText(size),
  longline: () => longLine(size),
  b64line: () => Buffer.from(randomBytes(Math.ceil((size * 3) / 4)).toString('base64'), 'latin1').subarray(0, size),
};
const SHAPES = [
  ['64K/1M', 64 * 1024, 1024 * 1024],
  ['64K', 64 * 1024, 64 * 1024],
  ['4093', 4093, 64 * 1024],
  ['1M', 1024 * 1024, 1024 * 1024],
];

/** The upload path: slices of `slice` bytes, each as frames of `frame` bytes, one transform per slice; then the held rest. */
function upload(mod, level, input, frame, slice) {
  const transform = mod.redactingTransform(level);
  const outs = [];
  let state = null;
  for (let at = 0; at < input.length; at += slice) {
    const end = Math.min(input.length, at + slice);
    const frames = [];
    for (let f = at; f < end; f += frame) frames.push({ stream: 1, time: 0, data: input.subarray(f, Math.min(end, f + frame)) });
    const res = transform(frames, state);
    state = res.state;
    for (const fr of res.frames) outs.push(fr.data);
  }
  for (const fr of mod.heldOutputFlush(level)(state)) outs.push(fr.data);
  return outs;
}

const out = (line) => process.stdout.write(`${line}\n`);

const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

const mods = [];
for (const dir of dirs) mods.push([dir, await import(pathToFileURL(path.join(dir, 'task-state.js')).href)]);
out(
  `redaction bench: ${values.mib} MiB per input, best of ${reps}, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
out('input     level    frames  MiB/s  ms/MiB  out bytes  sha256' + (mods.length > 1 ? '       build' : ''));
for (const kind of values.kinds.split(',')) {
  const input = INPUTS[kind]();
  for (const level of ['secrets', 'all', 'none']) {
    for (const [name, frame, slice] of level === 'none' ? SHAPES.slice(0, 1) : SHAPES) {
      for (const [dir, mod] of mods) {
        let best = Infinity;
        let outs = [];
        for (let rep = 0; rep < reps; rep++) {
          const started = cpuMs();
          outs = upload(mod, level, input, frame, slice);
          best = Math.min(best, cpuMs() - started);
        }
        const hash = createHash('sha256');
        for (const d of outs) hash.update(d);
        const bytes = outs.reduce((n, d) => n + d.length, 0);
        const mib = input.length / 1048576;
        const rate = best > 0 ? (mib / (best / 1000)).toFixed(0) : '∞';
        out(
          `${kind.padEnd(9)} ${level.padEnd(8)} ${name.padEnd(6)} ${rate.padStart(6)} ${(best / mib).toFixed(2).padStart(7)}  ${String(bytes).padStart(9)}  ${hash.digest('hex').slice(0, 12)}` +
            (mods.length > 1 ? `  ${path.basename(path.dirname(dir))}/${path.basename(dir)}` : ''),
        );
      }
    }
  }
}
