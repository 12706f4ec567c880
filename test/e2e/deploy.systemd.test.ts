/**
 * `ferry agent install|uninstall` and `ferry server install|uninstall` on a Linux host, written
 * under a scratch root (--root: no systemctl, no service enabled here): the units pass
 * `systemd-analyze verify`, their `systemd-analyze security` exposure stays at what
 * docs/deploy.md states, the join token is kept 0600, uninstall undoes install. And the agent
 * unit's capability bounding set is enough for the sandbox: real sandboxed tasks run under
 * exactly that bounding set (setpriv; systemd itself does not run on the test machine).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeJoinToken } from '@ferry/protocol';
import { AGENT_PROCESS } from '@ferry/agent/flags';
import { AGENT_CAPABILITIES } from '../../packages/cli/src/systemd.js';
import { CLI, FerryProcess, cleanEnv, runCli, startFerryServer, tempDir, untilAgentStarted } from '../helpers/ferry.js';

const token = encodeJoinToken({ url: 'https://ferry.example.com:8443', fp: Array(32).fill('AB').join(':'), secret: 'a-join-secret-for-the-test' });
const mode = (path: string): number => statSync(path).mode & 0o777;

async function analyze(args: readonly string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn('systemd-analyze', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stderr.on('data', (d: Buffer) => chunks.push(d));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  return { code, out: Buffer.concat(chunks).toString('utf8') };
}

/** `systemd-analyze security`'s overall exposure (0 best, 10 worst). */
async function exposure(root: string, unit: string): Promise<number> {
  const r = await analyze(['security', '--offline=yes', `--root=${root}`, unit]);
  const m = /Overall exposure level for \S+: ([\d.]+)/.exec(r.out);
  assert.ok(m, r.out);
  return Number(m[1]);
}

describe('systemd units', () => {
  it('install writes a unit that verifies, the token 0600; uninstall undoes it', async () => {
    const root = tempDir('sysroot');
    const env = cleanEnv();
    const agent = await runCli(['agent', 'install', '--root', root, '--join-token', token, '--data-dir', '/var/lib/ferry-agent', '--name', 'web-1'], env);
    assert.equal(agent.code, 0, agent.stderr);
    const server = await runCli(['server', 'install', '--root', root, '--listen', '0.0.0.0:9443', '--public-url', 'https://ferry.example.com:9443'], env);
    assert.equal(server.code, 0, server.stderr);

    const agentUnit = join(root, 'etc/systemd/system/ferry-agent.service');
    const serverUnit = join(root, 'etc/systemd/system/ferry-server.service');
    const envFile = join(root, 'etc/ferry/agent.env');
    assert.equal(mode(agentUnit), 0o644);
    assert.equal(mode(envFile), 0o600);
    assert.equal(mode(join(root, 'etc/ferry')), 0o700);
    assert.equal(mode(join(root, 'var/lib/ferry-agent')), 0o700);
    assert.equal(readFileSync(envFile, 'utf8'), `FERRY_JOIN_TOKEN=${token}\n`);
    const unitText = readFileSync(agentUnit, 'utf8');
    assert.ok(!unitText.includes(token), 'the token is not in the world-readable unit');
    // The agent's process settings, as every agent launcher sets them (its memory after work); not the server's.
    assert.match(unitText, new RegExp(`^Environment=NODE_OPTIONS=${AGENT_PROCESS.nodeArgs.join(' ')}$`, 'm'), "the agent's V8 young generation is capped");
    assert.match(
      unitText,
      new RegExp(`^Environment=GLIBC_TUNABLES=${AGENT_PROCESS.glibcTunables.replaceAll('.', '\\.')}$`, 'm'),
      'glibc gives output buffers back',
    );
    assert.doesNotMatch(readFileSync(serverUnit, 'utf8'), /NODE_OPTIONS|GLIBC_TUNABLES/, "the server unit has none of the agent's settings");
    assert.match(unitText, new RegExp(`^ExecStart=${process.execPath} \\S+ agent start --name web-1 --data-dir /var/lib/ferry-agent$`, 'm'));
    assert.match(
      readFileSync(serverUnit, 'utf8'),
      /^ExecStart=\S+ \S+ server --data-dir \/var\/lib\/ferry --listen 0\.0\.0\.0:9443 --no-embedded-agent --public-url https:\/\/ferry\.example\.com:9443$/m,
    );

    const verify = await analyze(['verify', agentUnit, serverUnit]);
    assert.equal(verify.code, 0, verify.out);
    assert.equal(verify.out.trim(), '', 'no warnings');
    // The figures docs/deploy.md states; hardening that regresses fails here.
    assert.ok((await exposure(root, 'ferry-agent.service')) <= 5.1);
    assert.ok((await exposure(root, 'ferry-server.service')) <= 1.4);

    // The unit's command works as written (its binary and script exist).
    const exec = (/^ExecStart=(.*)$/m.exec(unitText)?.[1] ?? '').split(' ');
    const help = await new Promise<number | null>((r) => spawn(exec[0] ?? '', [...exec.slice(1, 4), '--help'], { stdio: 'ignore' }).once('close', r));
    assert.equal(help, 0);

    const removed = await runCli(['agent', 'uninstall', '--root', root], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /data is kept in \/var\/lib\/ferry-agent/);
    assert.ok(!existsSync(agentUnit) && !existsSync(envFile));
    assert.ok(existsSync(join(root, 'var/lib/ferry-agent')));
    assert.equal((await runCli(['agent', 'install', '--root', root, '--join-token', token], env)).code, 0);
    assert.equal((await runCli(['agent', 'uninstall', '--root', root, '--purge'], env)).code, 0);
    assert.ok(!existsSync(join(root, 'var/lib/ferry-agent')));
    // The server's settings file is the operator's: kept, unless --purge.
    writeFileSync(join(root, 'etc/ferry/server.env'), 'FERRY_LOG_LEVEL=debug\n');
    assert.equal((await runCli(['server', 'uninstall', '--root', root], env)).code, 0);
    assert.ok(!existsSync(serverUnit));
    assert.ok(existsSync(join(root, 'etc/ferry/server.env')));
  });

  it("bad input is refused with a message and exit 255 (the CLI's own failures)", async () => {
    const root = tempDir('sysroot-bad');
    const env = cleanEnv();
    for (const [args, message] of [
      [['agent', 'install', '--root', root], /Give --join-token TOKEN/],
      [['agent', 'install', '--root', root, '--join-token', 'not-a-token'], /not a join token/],
      [['agent', 'install', '--root', root, '--join-token', token, '--data-dir', 'relative/dir'], /absolute path/],
      [['agent', 'uninstall', '--root', root], /nothing to uninstall/],
    ] as const) {
      const r = await runCli(args, env);
      assert.equal(r.code, 255, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });

  it("sandboxed tasks run under the agent unit's capability bounding set", async () => {
    const server = await startFerryServer({ embeddedAgent: false, env: { FERRY_ALLOW_HOST_NETWORK: 'true' } });
    const caps = ['-all', ...AGENT_CAPABILITIES.map((c) => `+${c.slice(4).toLowerCase()}`)].join(',');
    const dataDir = tempDir('agent-caps');
    mkdirSync(dataDir, { recursive: true });
    const joinToken = await server.joinToken(['--hosted']);
    const agent = new FerryProcess(
      spawn(
        'setpriv',
        ['--bounding-set', caps, process.execPath, CLI, 'agent', 'start', '--join-token', joinToken, '--data-dir', dataDir, '--executor', 'sandbox'],
        {
          env: cleanEnv(),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    try {
      await untilAgentStarted(agent);
      assert.equal((await server.cli(['target', 'create', 'caps', '--type', 'shell'])).code, 0);
      assert.equal((await server.cli(['target', 'create', 'caps-net', '--type', 'shell', '--network', 'host'])).code, 0);
      const r = await server.cli(['run', 'caps', '-c', 'grep CapBnd /proc/self/status; echo "uid $(id -u)"; echo data > /work/f && cat /work/f']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^CapBnd:\s+0+\nuid \d+\ndata\n$/);
      const net = await server.cli(['run', 'caps-net', '-c', 'echo host network']);
      assert.equal(net.code, 0, net.stderr);
      assert.equal(net.stdout, 'host network\n');
      // --network public: the namespace, its filter and pasta are made under the same bounding set.
      assert.equal((await server.cli(['target', 'create', 'caps-public', '--type', 'shell', '--network', 'public'])).code, 0);
      const pub = await server.cli(['run', 'caps-public', '-c', 'ip -o link show | grep -c UP; echo public network']);
      assert.equal(pub.code, 0, pub.stderr);
      assert.equal(pub.stdout, '2\npublic network\n', 'loopback and the tap interface are up');
    } finally {
      await agent.stop('SIGKILL');
      await server.stop();
    }
  });
});
