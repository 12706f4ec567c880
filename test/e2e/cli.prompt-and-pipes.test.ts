/**
 * The CLI at a terminal and in pipelines: the hidden secret prompt edits like a shell line
 * (arrows move, backspace removes a whole character, Ctrl-D cancels), `--version` is the
 * protocol's version, and a closed pipe ends a command quietly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FERRY_VERSION } from '@ferry/protocol';
import { CLI, ROOT, runCli, startFerryServer, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

const PTY_RUN = join(ROOT, 'test/helpers/pty-run.py');

/** Types `keys` at the prompt of `ferry secret set TARGET NAME` running in a pseudo-terminal. */
function typeSecret(
  server: ServerHandle,
  target: string,
  name: string,
  keys: string,
  opts: { stderrToNull?: boolean } = {},
): Promise<{ code: number; output: string }> {
  const command = opts.stderrToNull
    ? ['bash', '-c', `exec "${process.execPath}" "${CLI}" secret set ${target} ${name} 2>/dev/null`]
    : [process.execPath, CLI, 'secret', 'set', target, name];
  const args = [PTY_RUN, 'not shown', Buffer.from(keys, 'utf8').toString('hex'), '--', ...command];
  const child = spawn('python3', args, { env: server.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  return new Promise((resolve) => {
    child.once('close', () => {
      const output = Buffer.concat(out).toString('utf8');
      const code = Number(/exit=(-?\d+)\s*$/.exec(output)?.[1] ?? NaN);
      resolve({ code, output });
    });
  });
}

describe('the CLI at a terminal and in pipes', () => {
  let server: ServerHandle;
  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
    const created = await server.cli(['target', 'create', 'tty', '--type', 'shell']);
    assert.equal(created.code, 0, created.stderr);
  });
  after(async () => server.stop());

  it('edits the hidden value like a shell line: arrows move the cursor, backspace removes a whole character', async () => {
    const LEFT = '\x1b[D';
    const BACKSPACE = '\x7f';
    // a b ← c é ⌫ x y z 1 2 3 ⏎  gives "ac" + "xyz123" + "b"
    const typed = await typeSecret(server, 'tty', 'TYPED_VALUE', `ab${LEFT}cé${BACKSPACE}xyz123\r`);
    assert.equal(typed.code, 0, typed.output);
    assert.doesNotMatch(typed.output, /acxyz123b/, 'the value is never echoed');
    // Reversed, the value escapes the masker, so the task's output shows what was stored.
    const run = await server.cli(['run', 'tty', '-c', 'printf %s "$TYPED_VALUE" | rev']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'b321zyxca');
  });

  it('never echoes the value, even with stderr redirected away from the terminal', async () => {
    const typed = await typeSecret(server, 'tty', 'QUIET_VALUE', 'hunter2secret\r', { stderrToNull: true });
    assert.equal(typed.code, 0, typed.output);
    assert.match(typed.output, /Value for QUIET_VALUE \(not shown\)/, 'the prompt reaches the terminal');
    assert.doesNotMatch(typed.output, /hunter2/);
    const run = await server.cli(['run', 'tty', '-c', 'printf %s "$QUIET_VALUE" | rev']);
    assert.equal(run.stdout, 'terces2retnuh');
  });

  it('cancels on Ctrl-D and on Ctrl-C without setting anything', async () => {
    for (const [key, label] of [
      ['\x04', 'Ctrl-D'],
      ['\x03', 'Ctrl-C'],
    ] as const) {
      const r = await typeSecret(server, 'tty', 'NEVER_SET', `abc${key}`);
      assert.equal(r.code, 255, r.output);
      assert.match(r.output, new RegExp(`cancelled \\(${label}\\)`));
    }
    const list = await server.cli(['secret', 'list', 'tty', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!(JSON.parse(list.stdout) as { name: string }[]).some((s) => s.name === 'NEVER_SET'));
  });

  it('reports errors from the agent and server packages in one line, with the CLI failure exit code (255)', async () => {
    const badConfig = await runCli(['agent', 'start', '--concurrency', 'abc', '--data-dir', '/tmp/ferry-never-used'], server.env);
    assert.equal(badConfig.code, 255, badConfig.stderr);
    assert.match(badConfig.stderr, /^ferry: invalid configuration:/);
    assert.doesNotMatch(badConfig.stderr, /\n\s+at /, 'no stack trace');
    const token = await server.joinToken(['--hosted']);
    const first = await server.startAgent(token, { executor: 'process' });
    await first.stop('SIGKILL');
    const reused = await runCli(
      ['agent', 'start', '--join-token', token, '--data-dir', `/tmp/ferry-reuse-${process.pid}`, '--executor', 'process'],
      server.env,
    );
    assert.equal(reused.code, 255, reused.stderr);
    assert.match(reused.stderr, /\nferry: The join token was already used\..*\(FERRY_E_JOIN_TOKEN_USED\)\n$/);
    assert.doesNotMatch(reused.stderr, /\n\s+at /, 'no stack trace');
  });

  it('prints the protocol version', async () => {
    const r = await runCli(['--version'], server.env);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), FERRY_VERSION);
  });

  it('ends quietly when the reader of its output goes away (`ferry task logs ID | head -1`)', async () => {
    const run = await server.cli(['run', 'tty', '--detach', '-c', 'seq 1 200000']);
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.trim();
    const done = await server.cli(['task', 'logs', id, '--follow']);
    assert.equal(done.code, 0, done.stderr);
    const piped = spawn('bash', ['-c', `"${process.execPath}" "${CLI}" task logs ${id} | head -1; echo "ferry=\${PIPESTATUS[0]}"`], { env: server.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    piped.stdout.on('data', (d: Buffer) => out.push(d));
    piped.stderr.on('data', (d: Buffer) => err.push(d));
    await new Promise((r) => piped.once('close', r));
    assert.equal(Buffer.concat(out).toString(), '1\nferry=0\n');
    assert.equal(Buffer.concat(err).toString(), '', 'no stack trace, no message');
  });
});
