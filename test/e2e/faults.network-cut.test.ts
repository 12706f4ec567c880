/**
 * A real network cut. The agent runs in a network namespace of its own, joined to
 * the host by a veth pair; the test takes the link down while a task prints, then brings it
 * back. Everything printed during the cut must arrive, byte-exact, and the task must finish.
 * Skipped by name where the machine does not allow network namespaces.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CLI, FerryProcess, cleanEnv, freePort, startFerryServer, taskShow, tempDir, waitFor, type ServerHandle } from '../helpers/ferry.js';

const tag = randomBytes(3).toString('hex');
const ns = `ferry-${tag}`;
const hostIf = `fh${tag}`;
const nsIf = `fa${tag}`;
const octet = 16 + (parseInt(tag, 16) % 200);
const hostIp = `10.199.${octet}.1`;
const nsIp = `10.199.${octet}.2`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function makeNamespace(): string | undefined {
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns);
    ip('addr', 'add', `${hostIp}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('-n', ns, 'addr', 'add', `${nsIp}/30`, 'dev', nsIf);
    ip('-n', ns, 'link', 'set', nsIf, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    return undefined;
  } catch (err) {
    return `this machine does not allow network namespaces here: ${(err as Error).message.split('\n')[0] ?? ''}`;
  }
}

const lines = (n: number): string => Array.from({ length: n }, (_, i) => `tick ${i + 1}\n`).join('');

describe('a network cut between agent and server', () => {
  const problem = makeNamespace();
  let server: ServerHandle | undefined;
  let agent: FerryProcess | undefined;

  before(async () => {
    if (problem) return;
    server = await startFerryServer({ embeddedAgent: false, host: hostIp, port: await freePort() });
    assert.equal((await server.cli(['target', 'create', 'remote', '--type', 'shell'])).code, 0);
    const token = await server.joinToken(['--hosted']);
    agent = new FerryProcess(
      spawn(
        'ip',
        ['netns', 'exec', ns, process.execPath, CLI, 'agent', 'start', '--join-token', token, '--data-dir', tempDir('netns-agent'), '--name', 'behind-veth'],
        {
          env: cleanEnv(),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    await waitFor(() => agent?.stderr.includes('"agent started"'), 20_000, 'agent in the namespace');
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop();
    try {
      ip('link', 'del', hostIf);
    } catch {
      /* already gone */
    }
    try {
      ip('netns', 'del', ns);
    } catch {
      /* already gone */
    }
  });

  it('output printed during an 8 s cut arrives whole once the link is back', problem ? { skip: problem } : {}, async () => {
    const s = server!;
    const id = (await s.cli(['run', 'remote', '--detach', '-c', 'for i in $(seq 1 120); do echo "tick $i"; sleep 0.1; done'])).stdout.trim();
    await waitFor(async () => (await s.cli(['task', 'logs', id])).stdout.includes('tick 10\n'), 20_000, 'output before the cut');
    ip('link', 'set', hostIf, 'down');
    await new Promise((r) => setTimeout(r, 1500));
    const early = (await taskShow(s, id)).outputBytes;
    await new Promise((r) => setTimeout(r, 6500)); // the rest of the 8 s cut
    const during = await taskShow(s, id);
    assert.equal(during.status, 'running', 'the task keeps running (its lease outlives the cut)');
    assert.equal(during.outputBytes, early, 'nothing crossed the cut: the link really was down');
    ip('link', 'set', hostIf, 'up');
    await waitFor(async () => (await taskShow(s, id)).status === 'succeeded', 60_000, 'task to finish after the cut');
    assert.equal((await s.cli(['task', 'logs', id])).stdout, lines(120));
  });
});
