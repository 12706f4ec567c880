/**
 * What an operator watches, scraped from a real server: /healthz and /readyz without a token,
 * /metrics only with the metrics token, read by a Prometheus text parser, and its figures move
 * when a task runs and when an agent vanishes mid-task (a lease expiry).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { CLI, FerryProcess, api, cleanEnv, runCli, startFerryServer, taskShow, tempDir, waitFor, type ServerHandle } from '../helpers/ferry.js';
import { Scrape } from '../helpers/prometheus.js';

describe('metrics and health endpoints', () => {
  let server: ServerHandle;
  let agent: FerryProcess | undefined;
  let metricsToken: string;
  const scrape = async (): Promise<Scrape> => {
    const res = await api(server, 'GET', '/metrics', { token: metricsToken });
    assert.equal(res.status, 200, res.body.toString());
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    return new Scrape(res.body.toString('utf8'));
  };

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false, env: { FERRY_LEASE_SECONDS: '2', FERRY_HEARTBEAT_SECONDS: '0.5' } });
    metricsToken = readFileSync(join(server.dataDir, 'metrics-token'), 'utf8').trim();
    agent = await server.startAgent(await server.joinToken(['--hosted']), { executor: 'process' });
  });
  after(async () => server.stop());

  it('/healthz and /readyz answer without a token; readiness names the migrations', async () => {
    const health = await api(server, 'GET', '/healthz', { token: null });
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { ok: true });
    const ready = await api(server, 'GET', '/readyz', { token: null });
    assert.equal(ready.status, 200);
    assert.equal(ready.json.ready, true);
    assert.equal(ready.json.database, 'ok');
    assert.ok(Number(ready.json.migrations) >= 1);
  });

  it("/metrics refuses a missing or wrong token, and user tokens too (it names every organization's targets)", async () => {
    for (const token of [null, 'wrong-token-wrong-token', server.adminToken]) {
      const res = await api(server, 'GET', '/metrics', { token });
      assert.equal(res.status, 401, `token ${String(token)}`);
      assert.equal(res.json.code, 'FERRY_E_UNAUTHENTICATED');
      assert.match(String(res.json.message), /metrics token/);
      assert.doesNotMatch(res.body.toString(), /ferry_queue_depth/);
    }
  });

  it('counters and gauges move when a task runs', async () => {
    assert.equal((await server.cli(['target', 'create', 'metrics-box', '--type', 'shell'])).code, 0);
    const first = await scrape();
    assert.equal(first.family('ferry_queue_depth').type, 'GAUGE');
    assert.equal(first.value('ferry_queue_depth', { org: 'default', target: 'metrics-box' }), 0);
    assert.equal(first.value('ferry_agents_online', { pool: 'hosted' }), 1);
    assert.equal(first.value('ferry_agents_online', { pool: 'self-hosted' }), 0);

    const run = await server.cli(['run', 'metrics-box', '-c', 'printf "%0500d" 0']);
    assert.equal(run.code, 0, run.stderr);
    const second = await scrape();
    assert.equal(second.value('ferry_tasks', { status: 'succeeded' }) - first.value('ferry_tasks', { status: 'succeeded' }), 1);
    assert.equal(second.count('ferry_dispatch_latency_seconds') - first.count('ferry_dispatch_latency_seconds'), 1);
    assert.ok(second.value('ferry_output_uploaded_bytes_total') - first.value('ferry_output_uploaded_bytes_total') >= 500);
    assert.ok(second.value('ferry_output_stored_bytes') - first.value('ferry_output_stored_bytes') >= 500);
    const created = { method: 'POST', route: '/v1/tasks', status: '201' };
    assert.equal(second.value('ferry_http_requests_total', created) - first.value('ferry_http_requests_total', created), 1);
    // A 404 is counted under one label, not under the path it asked for.
    await api(server, 'GET', '/v1/no-such-thing-' + Date.now(), { token: null });
    const third = await scrape();
    assert.ok(third.value('ferry_http_requests_total', { route: '(unmatched)', status: '404' }) >= 1);
    assert.ok(![...third.families.values()].some((f) => f.metrics.some((m) => Object.values(m.labels ?? {}).some((v) => v.includes('no-such-thing')))));
  });

  it('a queued task shows in the queue depth, and a lease that lapses is counted', async () => {
    const running = await server.cli(['run', 'metrics-box', '--detach', '-c', 'echo started; sleep 60']);
    assert.equal(running.code, 0, running.stderr);
    const id = running.stdout.trim().split(/\s+/).pop() ?? '';
    await waitFor(async () => (await taskShow(server, id)).status === 'running', 15_000, 'task running');
    await agent?.stop('SIGKILL');
    const queued = await server.cli(['run', 'metrics-box', '--detach', '-c', 'echo later']);
    assert.equal(queued.code, 0, queued.stderr);
    const before = await scrape();
    assert.equal(before.value('ferry_queue_depth', { org: 'default', target: 'metrics-box' }), 1);
    await waitFor(async () => (await taskShow(server, id)).status === 'lost', 15_000, 'task lost');
    const after = await scrape();
    assert.equal(after.value('ferry_lease_expiries_total', { outcome: 'lost' }), 1);
    assert.equal(after.value('ferry_tasks', { status: 'lost' }), 1);
  });
});

/** Terminal colour codes (ESC [ … m), which pino-pretty writes to a terminal. */
const ANSI_COLOURS = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

describe('log format', () => {
  it('JSON lines when stderr is not a terminal, readable lines on a terminal or with --log-format pretty; a wrong format is a usage error', async () => {
    for (const format of [undefined, 'pretty'] as const) {
      const args = [
        CLI,
        'server',
        '--data-dir',
        tempDir('logfmt'),
        '--listen',
        '127.0.0.1:0',
        '--no-embedded-agent',
        ...(format ? ['--log-format', format] : []),
      ];
      const server = new FerryProcess(spawn(process.execPath, args, { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
      try {
        await waitFor(() => server.stderr.includes('Server listening'), 20_000, 'listening line');
      } finally {
        await server.stop();
      }
      const line = server.stderr.split('\n').find((l) => l.includes('Server listening')) ?? '';
      if (format === 'pretty') {
        assert.doesNotMatch(line, /^\{/);
        assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO.*Server listening at https:\/\/127\.0\.0\.1:\d+/);
      } else {
        const parsed = JSON.parse(line) as { level: number; msg: string; component: string };
        assert.equal(parsed.component, 'server');
        assert.match(parsed.msg, /Server listening/);
      }
    }
    // On a terminal (a pty from script(1)), readable lines without being asked; the server stops itself after 4 s.
    const inner = `timeout -s TERM 4 ${process.execPath} ${CLI} server --data-dir ${tempDir('logfmt')} --listen 127.0.0.1:0 --no-embedded-agent`;
    const tty = new FerryProcess(spawn('script', ['-qefc', inner, '/dev/null'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
    await tty.exited;
    const ttyLine =
      tty.stdout
        .replace(ANSI_COLOURS, '')
        .split(/\r?\n/)
        .find((l) => l.includes('Server listening')) ?? '';
    assert.match(ttyLine, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO.*Server listening at/, tty.stdout);

    const wrong = await runCli(['server', '--log-format', 'xml', '--data-dir', tempDir('logfmt')], cleanEnv());
    assert.equal(wrong.code, 255, "the CLI's own failures exit 255");
    assert.match(wrong.stderr, /logFormat: Invalid option: expected one of "json"\|"pretty"/);
  });
});
