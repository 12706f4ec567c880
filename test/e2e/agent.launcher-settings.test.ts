/**
 * The checkout's `./ferry` launcher starts `ferry agent start` with the agent's process settings
 * (AGENT_PROCESS in packages/agent/src/flags.ts: a V8 flag on node's command line, glibc malloc
 * tunables in its environment), and `exec`s node, so the pid users (and the bench) see is the
 * agent itself. Other commands, the server among them, get none of it. Read from the running
 * processes' /proc/<pid>/{cmdline,environ,exe} and, for GLIBC_TUNABLES, from the agent's own
 * "agent started" line: glibc 2.36 cuts the variable's text in the process's initial environment
 * block (what /proc/<pid>/environ shows) after the first tunable while it parses it, though it
 * applies them all and the process's environment has the whole value.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_PROCESS } from '@ferry/agent/flags';
import { FerryProcess, ROOT, cleanEnv, startFerryServer, tempDir, untilAgentStarted, untilServerListening, type ServerHandle } from '../helpers/ferry.js';

const LAUNCHER = join(ROOT, 'ferry');

function processOf(pid: number): { argv: string[]; env: Map<string, string>; exe: string } {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  const env = new Map(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
  );
  return { argv, env, exe: readlinkSync(`/proc/${pid}/exe`) };
}

/** The environment of a user who set nothing of this (the test's own may carry GLIBC_TUNABLES). */
function plainEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = cleanEnv();
  delete env.GLIBC_TUNABLES;
  delete env.NODE_OPTIONS;
  return { ...env, ...extra };
}

/** The `process` settings of the agent's "agent started" log line (start.ts). */
function startedWith(agent: FerryProcess): { execArgv: string[]; glibcTunables?: string; nodeOptions?: string } {
  const line = agent.stderr.split('\n').find((l) => l.includes('"agent started"')) ?? '{}';
  return (JSON.parse(line) as { process: { execArgv: string[]; glibcTunables?: string } }).process;
}

async function launchAgent(server: ServerHandle, name: string, env: NodeJS.ProcessEnv): Promise<FerryProcess> {
  const token = await server.joinToken(['--hosted']);
  const args = ['agent', 'start', '--join-token', token, '--data-dir', tempDir('agent'), '--executor', 'process', '--name', name];
  const agent = new FerryProcess(spawn(LAUNCHER, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  await untilAgentStarted(agent);
  return agent;
}

describe('./ferry: the agent process settings', () => {
  let server: ServerHandle;
  const started: FerryProcess[] = [];
  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
  });
  after(async () => {
    await Promise.all(started.map((p) => p.stop('SIGKILL')));
    await server?.stop();
  });

  it('`./ferry agent start` is node itself, with the V8 flag and the glibc tunables', async () => {
    const agent = await launchAgent(server, 'launcher-plain', plainEnv());
    started.push(agent);
    const p = processOf(agent.child.pid ?? 0);
    assert.equal(realpathSync(p.exe), realpathSync(process.execPath), 'the launcher exec-ed node: the pid is the agent, not a shell');
    const script = p.argv.findIndex((a) => a.endsWith('packages/cli/bundle/main.js'));
    assert.ok(script > 0, p.argv.join(' '));
    assert.deepEqual(p.argv.slice(1, script), [...AGENT_PROCESS.nodeArgs], "node's own flags are the agent's settings");
    assert.deepEqual(p.argv.slice(script + 1, script + 3), ['agent', 'start']);
    assert.deepEqual(startedWith(agent), { execArgv: [...AGENT_PROCESS.nodeArgs], glibcTunables: AGENT_PROCESS.glibcTunables });
  });

  it("a GLIBC_TUNABLES of the user's own is kept, after the agent's (so it wins)", async () => {
    const own = 'glibc.malloc.arena_max=4';
    const agent = await launchAgent(server, 'launcher-own', plainEnv({ GLIBC_TUNABLES: own }));
    started.push(agent);
    assert.equal(startedWith(agent).glibcTunables, `${AGENT_PROCESS.glibcTunables}:${own}`);
  });

  it('`./ferry server` gets none of the settings', async () => {
    const dataDir = tempDir('server');
    const srv = new FerryProcess(
      spawn(LAUNCHER, ['server', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--no-embedded-agent'], {
        env: plainEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    started.push(srv);
    await untilServerListening(srv);
    const p = processOf(srv.child.pid ?? 0);
    assert.equal(realpathSync(p.exe), realpathSync(process.execPath));
    assert.ok(p.argv[1]?.endsWith('packages/cli/bundle/main.js'), `no node flags before the script: ${p.argv.join(' ')}`);
    assert.equal(p.env.get('GLIBC_TUNABLES'), undefined);
    for (const flag of AGENT_PROCESS.nodeArgs) assert.ok(!p.argv.includes(flag));
  });
});
