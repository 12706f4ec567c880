/**
 * Ferry installed the way users install it, not run from the checkout:
 * - the workspaces' `npm pack` tarballs, installed with `npm install -g` into a fresh prefix,
 *   give a `ferry` that prints its version, starts a server, whose installed `ferry-agent`
 *   registers, and runs a task through the installed CLI;
 * - the self-contained agent tarball (scripts/build-agent-tarball.mjs: its own Node runtime and
 *   the bundled agent), unpacked in a folder outside the repository with no node_modules
 *   anywhere above it, runs a task.
 *
 * The install runs with --ignore-scripts and then puts the native SQLite addon that this
 * checkout built (same better-sqlite3 version, same Node ABI) where better-sqlite3's install
 * script would: that script downloads a prebuilt addon or compiles SQLite (minutes on two
 * cores), which is better-sqlite3's job, not what this test is about. Packages come from npm's
 * cache when it has them (--prefer-offline).
 */
import assert from 'node:assert/strict';
import { get as httpsGet } from 'node:https';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { FERRY_VERSION } from '@ferry/protocol';
import { FerryProcess, ROOT, cleanEnv, startFerryServer, taskShow, tempDir, untilAgentStarted, untilServerListening, waitFor } from '../helpers/ferry.js';

const run = promisify(execFile);
const work = tempDir('install');
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs a command from the installed prefix and returns its stdout; throws with its stderr. */
async function sh(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd = work): Promise<string> {
  try {
    const running = run(cmd, args, { env, cwd, maxBuffer: 16 * 1024 * 1024 });
    // Nothing on stdin: `ferry run -c` passes a piped stdin to the task, and would wait for its end.
    running.child.stdin?.end();
    return (await running).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

describe('installing Ferry', { timeout: 180_000 }, () => {
  it('npm pack + npm install -g into a fresh prefix gives a ferry that runs a server, an agent and a task', async () => {
    const packs = join(work, 'packs');
    const prefix = join(work, 'prefix');
    mkdirSync(packs);
    await sh('npm', ['pack', '--workspaces', '--silent', '--pack-destination', packs], process.env, ROOT);
    const tarballs = readdirSync(packs).map((f) => join(packs, f));
    assert.deepEqual(
      readdirSync(packs).sort(),
      ['agent', 'cli', 'client', 'protocol', 'server', 'web'].map((p) => `ferry-${p}-${FERRY_VERSION}.tgz`),
    );
    await sh(
      'npm',
      ['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs],
      process.env,
    );
    const addon = 'build/Release/better_sqlite3.node';
    const installed = join(prefix, 'lib/node_modules/@ferry/server/node_modules/better-sqlite3');
    mkdirSync(dirname(join(installed, addon)), { recursive: true });
    copyFileSync(join(ROOT, 'node_modules/better-sqlite3', addon), join(installed, addon));

    // Only the prefix's bin on PATH (and the system's, for bwrap and the shell): nothing of the checkout.
    const env = { ...cleanEnv(), PATH: `${join(prefix, 'bin')}:/usr/sbin:/usr/bin:/sbin:/bin`, FERRY_CONFIG: join(work, 'cli.json') };
    assert.equal((await sh('ferry', ['--version'], env)).trim(), FERRY_VERSION);
    assert.equal((await sh('ferry-agent', ['--version'], env)).trim(), FERRY_VERSION);

    const data = join(work, 'server');
    const server = new FerryProcess(spawn('ferry', ['server', '--data-dir', data, '--listen', '127.0.0.1:0', '--no-embedded-agent'], { env, cwd: work }));
    let agent: FerryProcess | undefined;
    try {
      const banner = await untilServerListening(server);
      const token = readFileSync(join(data, 'admin-token'), 'utf8').trim();
      await sh('ferry', ['login', '--server', banner[1] ?? '', '--token', token, '--ca-fingerprint', banner[2] ?? ''], env);
      await sh('ferry', ['target', 'create', 'installed', '--type', 'shell'], env);
      const join_ = (await sh('ferry', ['agent', 'token', 'create', '--hosted'], env)).trim();
      agent = new FerryProcess(
        spawn('ferry-agent', ['start', '--join-token', join_, '--data-dir', join(work, 'agent'), '--name', 'from-npm'], { env, cwd: work }),
      );
      assert.equal(await sh('ferry', ['run', 'installed', '-c', 'echo "hello from the installed ferry"'], env), 'hello from the installed ferry\n');
      // The web UI came with the server's packages: / answers the page, with its policy.
      const ui = await new Promise<{ csp: string; body: string }>((resolvePage, reject) => {
        httpsGet(`${banner[1] ?? ''}/`, { ca: readFileSync(join(data, 'ca.pem')) }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolvePage({ csp: String(res.headers['content-security-policy'] ?? ''), body }));
        }).on('error', reject);
      });
      assert.match(ui.csp, /script-src 'self'/, 'the UI is served with its policy');
      assert.match(ui.body, /<div id="app">/, 'the UI page, not the "UI not built" answer');
    } finally {
      await agent?.stop('SIGKILL');
      await server.stop();
    }
  });

  it('the self-contained agent tarball runs a task from a folder outside the repository, without node_modules', async (t) => {
    const out = join(work, 'release');
    const tarball = (await sh(process.execPath, [join(ROOT, 'scripts/build-agent-tarball.mjs'), out], process.env, ROOT)).trim();
    assert.match(tarball, new RegExp(`ferry-agent-${FERRY_VERSION}-linux-${process.arch}\\.tar\\.gz$`));
    // Unpacked under the system temp folder, in a folder of its own: no node_modules above it.
    const host = join(tmpdir(), `ferry-standalone-${process.pid}-${Date.now()}`);
    mkdirSync(host);
    t.after(() => rmSync(host, { recursive: true, force: true }));
    await sh('tar', ['-C', host, '-xzf', tarball], process.env);
    const home = join(host, `ferry-agent-${FERRY_VERSION}-linux-${process.arch}`);
    for (let dir = home; dir !== '/'; dir = dirname(dir)) assert.ok(!existsSync(join(dir, 'node_modules')), `node_modules in ${dir}`);
    assert.ok(!home.startsWith(ROOT));
    t.diagnostic(`tarball ${(statSync(tarball).size / 1e6).toFixed(1)} MB`);

    const env = { ...cleanEnv(), PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NODE_PATH: '' };
    assert.equal((await sh(join(home, 'ferry-agent'), ['--version'], env, host)).trim(), FERRY_VERSION);

    const server = await startFerryServer({ embeddedAgent: false });
    try {
      await server.cli(['target', 'create', 'far', '--type', 'shell']);
      const token = await server.joinToken(['--hosted']);
      const started = Date.now();
      const agent = new FerryProcess(
        spawn(join(home, 'ferry-agent'), ['start', '--join-token', token, '--data-dir', join(host, 'data'), '--name', 'standalone'], { env, cwd: host }),
      );
      await untilAgentStarted(agent);
      t.diagnostic(`registered and started in ${Date.now() - started} ms`);
      const r = await server.cli(['run', 'far', '--detach', '-c', 'echo "from $(basename "$PWD")"; echo standalone ok']);
      assert.equal(r.code, 0, r.stderr);
      const id = r.stdout.trim();
      const done = await waitFor(
        async () => {
          const s = await taskShow(server, id);
          return s.status === 'succeeded' ? s : undefined;
        },
        20_000,
        'task succeeded',
      );
      assert.equal(done.agent, 'standalone');
      assert.match((await server.cli(['task', 'logs', id])).stdout, /standalone ok\n$/);
      await agent.stop();
    } finally {
      await server.stop();
    }
  });
});
