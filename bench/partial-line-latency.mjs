#!/usr/bin/env node
/**
 * How long a partial line (a `\r` progress update, no newline) takes from the task's printf to
 * a reader of the output route, at each redaction level.
 *
 *   npx tsc --build && node bench/partial-line-latency.mjs [--steps N]
 *
 * A real `ferry server` and one `ferry agent start --executor sandbox` on 127.0.0.1 (root,
 * bwrap, as the bench). For each level (none, secrets, all) a task prints `--steps` updates
 * 0.5 s apart, each carrying bash's `$EPOCHREALTIME` at the moment it was printed; a reader
 * long-polls `GET /v1/tasks/:id/output` and, for each update, takes the time its bytes arrived
 * minus the printed time (both on the real-time clock, as the bench's dispatch figure). Two
 * shapes: `blank` ends the update with a blank (`\rstep 3 at 1712345678.123456 `), `word` ends
 * it with the time-stamp itself; at `all` that last word could begin an e-mail address, so it
 * waits for the next byte (the next update). Prints a JSON summary on stdout.
 */
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { decodeFrames } from '@ferry/protocol';
import { Cleanup, benchRoot, createTarget, startAgent, startServer } from './harness.mjs';
import { calibrateRealtime, percentile, perfToRealMs } from './stats.mjs';

const steps = Number(process.argv[process.argv.indexOf('--steps') + 1]) || 10;
const LEVELS = ['none', 'secrets', 'all'];
const SHAPES = { blank: 'printf \'\\rstep %s at %s \' "$i" "$EPOCHREALTIME"', word: 'printf \'\\rstep %s at %s\' "$i" "$EPOCHREALTIME"' };

/** Reads a task's output live; returns, for each update, ms from its printf to its arrival here. */
async function latencies(api, taskId, shape) {
  const seen = new Map();
  let text = '';
  let offset = 0;
  for (;;) {
    const res = await api.request('GET', `/v1/tasks/${taskId}/output?offset=${offset}&waitSeconds=30`, { timeoutMs: 40_000 });
    if (res.status >= 400) throw new Error(`read output: HTTP ${res.status} ${res.body.toString('utf8')}`);
    const arrived = perfToRealMs(res.t);
    for (const f of decodeFrames(res.body)) if (f.stream === 1) text += Buffer.from(f.data).toString('latin1');
    // An update is readable once its whole time-stamp is (in the blank shape, with the blank after it).
    const re = shape === 'blank' ? /\rstep (\d+) at (\d+)\.(\d{6}) /g : /\rstep (\d+) at (\d+)\.(\d{6})/g;
    for (const m of text.matchAll(re)) {
      if (!seen.has(m[1])) seen.set(m[1], arrived - (Number(m[2]) * 1000 + Number(m[3]) / 1000));
    }
    offset = Number(res.headers['ferry-next-offset']);
    if (res.headers['ferry-output-complete'] === 'true') return [...seen.values()];
  }
}

async function main() {
  const cleanup = new Cleanup();
  const stop = () => cleanup.run().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const root = benchRoot(cleanup);
    const server = await startServer(cleanup, root);
    await startAgent(cleanup, server, root, { name: 'latency', concurrency: 4 });
    for (const level of LEVELS) await createTarget(server, `lat-${level}`, 'hosted', { redact: level });
    calibrateRealtime();
    const results = {};
    for (const [shape, printf] of Object.entries(SHAPES)) {
      for (const level of LEVELS) {
        const script = `for i in $(seq ${steps}); do ${printf}; sleep 0.5; done; echo\n`;
        const t0 = performance.now();
        const { json } = await server.api.json('POST', '/v1/tasks', { target: `lat-${level}`, script });
        const xs = await latencies(server.api, json.id, shape);
        // The last update is always released by the final newline; it says nothing about streaming.
        const streamed = xs.slice(0, -1);
        results[`${shape}_${level}`] = {
          updates: xs.length,
          p50_ms: Math.round(percentile(streamed, 50)),
          max_ms: Math.round(Math.max(...streamed)),
          task_s: Math.round(performance.now() - t0) / 1000,
        };
        process.stderr.write(`${shape} ${level}: ${JSON.stringify(results[`${shape}_${level}`])}\n`);
      }
    }
    process.stdout.write(`${JSON.stringify({ steps, interval_ms: 500, results }, null, 2)}\n`);
  } finally {
    await cleanup.run();
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
