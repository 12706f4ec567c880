/**
 * The bench cannot rot: it runs here with tiny counts (`--smoke`), every phase, against the
 * real server, agents and sandbox. Its figures mean nothing at these counts and are not checked;
 * a phase that fails, or a figure that was never measured, fails the suite.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from '../helpers/ferry.js';

interface BenchResults {
  mode: string;
  errors: { phase: string; message: string }[];
  details: { floors?: { ceilings?: Record<string, unknown> } };
  [figure: string]: unknown;
}

it('runs every phase of `npm run bench` with smoke-sized counts, without an error', { timeout: 8 * 60_000 }, async () => {
  const dir = tempDir('bench');
  const out = join(dir, 'results.json');
  const child = spawn(process.execPath, [join(ROOT, 'bench/run.mjs'), '--smoke', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => log.push(d));
  child.stderr.on('data', (d: Buffer) => log.push(d));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  const text = Buffer.concat(log).toString('utf8');
  const results = JSON.parse(readFileSync(out, 'utf8')) as BenchResults;
  rmSync(dir, { recursive: true, force: true });
  assert.equal(results.mode, 'smoke');
  assert.deepEqual(results.errors, [], text.slice(-3000));
  assert.equal(code, 0, text.slice(-3000));
  const figures = [
    'spawn_floor_ms',
    'https_rtt_ms',
    'sandbox_overhead_ms',
    'warm_start_ms',
    'output_first_byte_ms',
    'dispatch_p50_ms',
    'roundtrip_p50_ms',
    'tasks_per_s',
    'output_mb_per_s',
    'masker_mb_per_s_10_secrets',
    'agent_idle_rss_mb',
    'server_rss_mb_10000_agents',
    'lost_agent_detect_ms',
    'cli_start_ms',
    'cli_list_ms',
    'backlog_20mb_delivery_ms',
    'pg_dispatch_p50_ms',
    'pg_dispatch_p99_ms',
    'pg_tasks_per_s',
    'pg_output_mb_per_s',
    'pg_replicas_tasks_per_s',
  ];
  const unmeasured = figures.filter((key) => typeof results[key] !== 'number');
  assert.deepEqual(unmeasured, [], 'every phase produced its figures');
  const ceilings = results.details.floors?.ceilings ?? {};
  for (const key of ['tasks_per_s', 'sandbox_overhead_ms', 'warm_start_ms']) {
    assert.ok(typeof ceilings[key] === 'number' && Number.isFinite(ceilings[key]), `the host floors phase gave its ${key} bound`);
  }
});
