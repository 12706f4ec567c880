/**
 * `ferry server` starting and stopping, as a user runs it: shutdown with agents connected (the
 * embedded one and an external one holding a long poll) takes under 2 s, a second signal stops
 * at once, one data folder serves one server (a killed server's folder restarts), and the
 * login line the server prints works from any folder.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CLI, FerryProcess, cleanEnv, startFerryServer, tempDir, waitFor, waitForAgents } from '../helpers/ferry.js';

const run = promisify(execFile);

function spawnServer(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): FerryProcess {
  return new FerryProcess(
    spawn(process.execPath, [CLI, 'server', '--listen', '127.0.0.1:0', ...args], {
      cwd: opts.cwd,
      env: { ...cleanEnv(), FERRY_LOG_LEVEL: 'info', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('server lifecycle', () => {
  it('stops in under 2 s with the embedded agent and an external agent holding a long poll', async () => {
    const server = await startFerryServer();
    const external = await (async () => {
      await waitForAgents(server, 1);
      const r = await server.cli(['target', 'create', 'ext', '--type', 'shell', '--agent', 'self-hosted']);
      assert.equal(r.code, 0, r.stderr);
      return server.startAgent(await server.joinToken(['--target', 'ext']), { name: 'external' });
    })();
    try {
      await waitForAgents(server, 2);
      // Both agents are now inside their long polls (30 s each).
      await new Promise((r) => setTimeout(r, 1000));
      const started = Date.now();
      const code = await server.proc.stop('SIGTERM', 30_000);
      const tookMs = Date.now() - started;
      assert.equal(code, 0, server.proc.stderr);
      assert.ok(tookMs < 2000, `shutdown took ${tookMs} ms`);
    } finally {
      await external.stop('SIGKILL');
      await server.stop();
    }
  });

  it('a second signal stops at once, embedded agent included, while the first one waits for a running task', async () => {
    const server = await startFerryServer();
    try {
      await waitForAgents(server, 1);
      const r = await server.cli(['target', 'create', 'slow', '--type', 'shell']);
      assert.equal(r.code, 0, r.stderr);
      const id = (await server.cli(['run', 'slow', '-c', 'echo started; sleep 60', '--detach'])).stdout.trim();
      await waitFor(async () => (await server.cli(['task', 'logs', id])).stdout.includes('started'), 20_000, 'the task to start');
      const agentPid = Number(/"pid":(\d+)[^\n]*embedded hosted agent started/.exec(server.proc.stderr)?.[1]);
      assert.ok(alive(agentPid));

      server.proc.child.kill('SIGTERM');
      await waitFor(() => server.proc.stderr.includes('SIGTERM: shutting down'), 5000, 'the first signal');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(server.proc.child.exitCode, null, 'the first signal drains the running task');
      const started = Date.now();
      const code = await server.proc.stop('SIGTERM', 30_000);
      assert.ok(Date.now() - started < 1000, `the second signal took ${Date.now() - started} ms`);
      assert.equal(code, 143);
      await waitFor(() => !alive(agentPid), 5000, 'the embedded agent to be gone');
    } finally {
      await server.stop();
    }
  });

  it('a second server on the same data folder exits at once naming the folder and the holder; a killed server’s folder starts again', async () => {
    const dataDir = tempDir('locked');
    const first = await startFerryServer({ dataDir, embeddedAgent: false });
    const second = spawnServer(['--data-dir', dataDir, '--no-embedded-agent']);
    const started = Date.now();
    const timer = setTimeout(() => second.child.kill('SIGKILL'), 15_000);
    const code = await second.exited;
    clearTimeout(timer);
    assert.notEqual(code, 0);
    assert.ok(Date.now() - started < 10_000);
    assert.match(second.stderr, new RegExp(`The data folder ${dataDir} is in use by another ferry server \\(pid ${first.proc.child.pid}\\)`));
    assert.doesNotMatch(second.stderr, /\n\s+at /, 'no stack trace');

    // Killed, it cannot release anything itself: the operating system releases the lock.
    await first.proc.stop('SIGKILL');
    const restarted = await startFerryServer({ dataDir, embeddedAgent: false });
    try {
      const r = await restarted.cli(['target', 'list']);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await restarted.stop();
    }
  });

  it('the login line the server prints works from another folder', async () => {
    const home = tempDir('server-cwd');
    // Started with a relative data folder, from its own folder.
    const hint = `'${process.execPath}' '${CLI}'`;
    const server = spawnServer(['--data-dir', 'data', '--no-embedded-agent'], { cwd: home, env: { FERRY_CLI_HINT: hint } });
    try {
      const line = await waitFor(
        () => {
          if (server.child.exitCode !== null) throw new Error(`server exited: ${server.stderr}`);
          return server.stdout.split('\n').find((l) => l.includes(' login --server '));
        },
        30_000,
        'the login line',
      );
      const elsewhere = tempDir('elsewhere');
      const env = { ...cleanEnv(), FERRY_CONFIG: join(elsewhere, 'config.json') };
      const login = await run('sh', ['-c', line.trim()], { cwd: elsewhere, env });
      assert.match(login.stdout, /Logged in to https:\/\/127\.0\.0\.1:\d+/);
      const list = await run(process.execPath, [CLI, 'target', 'list'], { cwd: elsewhere, env });
      assert.match(list.stdout, /NAME/);
    } finally {
      await server.stop('SIGTERM');
    }
  });
});
