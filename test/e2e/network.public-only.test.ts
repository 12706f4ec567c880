/**
 * `--network public` in network namespaces this test makes, so nothing touches the machine's
 * own network:
 *
 *   root namespace (test, ferry server on 203.0.113.1, the "control plane")
 *     └ veth ─ agent namespace (the agent host: 203.0.113.2, 198.51.100.2; a service on its loopback)
 *                └ veth ─ world namespace: 198.51.100.1 and 2001:db8:100::1, the "internet"
 *                         (documentation addresses), and hosts on 10.20.0.1, 172.16.5.1,
 *                         192.168.77.1, 100.64.0.1, 169.254.169.254 (metadata), fd12::1, and
 *                         fe80::99 on the agent host's link
 *
 * Each has a TCP service that names itself. The agent runs in the agent namespace, its default
 * route leads to the world namespace. `host` (control) reaches every service, `none` (control)
 * none; `public` only the internet ones. Skipped by name where the machine cannot do this.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CLI, FerryProcess, cleanEnv, freePort, startFerryServer, taskShow, tempDir, waitFor, type ServerHandle } from '../helpers/ferry.js';

const tag = randomBytes(3).toString('hex');
const agentNs = `fpa-${tag}`;
const worldNs = `fpw-${tag}`;
const rootIf = `fpr${tag}`;
const agentUp = `fpu${tag}`;
const agentDown = `fpd${tag}`;
const worldIf = `fpw${tag}`;
const CONTROL_PLANE = '203.0.113.1';
const PORT = 8080;

const INTERNET = ['198.51.100.1', '2001:db8:100::1'];
const PRIVATE = ['10.20.0.1', '172.16.5.1', '192.168.77.1', '100.64.0.1', '169.254.169.254', 'fd12::1'];
/** The world's link-local address on the agent host's link, and a private address written as IPv4-mapped IPv6. */
const LINK_LOCAL = `fe80::99%${agentDown}`;
const MAPPED = '::ffff:10.20.0.1';
/** The agent host's own services: its loopback and its address towards the control plane. */
const AGENT_HOST = ['127.0.0.1', '::1', '203.0.113.2'];

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/** A TCP service on each address that says which address answered; UDP datagrams are logged on stdout. */
const SERVICE = `
const net = require('node:net'), dgram = require('node:dgram');
const [port, ...addrs] = process.argv.slice(1);
for (const a of addrs) {
  net.createServer((s) => s.end('hello ' + a + '\\n')).listen(Number(port), a);
  if (a.includes('.')) {
    const u = dgram.createSocket('udp4');
    u.on('message', (m, r) => console.log('udp ' + a + ' from ' + r.address));
    u.bind(53, a);
  }
}
console.log('listening');
`;

function service(ns: string, addrs: readonly string[]): FerryProcess {
  return new FerryProcess(spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVICE, String(PORT), ...addrs], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

function makeNamespaces(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const tool of ['pasta', 'nft']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  try {
    ip('netns', 'add', agentNs);
    ip('netns', 'add', worldNs);
    // root ↔ agent host: the control plane's link.
    ip('link', 'add', rootIf, 'type', 'veth', 'peer', 'name', agentUp, 'netns', agentNs);
    ip('addr', 'add', `${CONTROL_PLANE}/24`, 'dev', rootIf);
    ip('link', 'set', rootIf, 'up');
    ip('-n', agentNs, 'addr', 'add', '203.0.113.2/24', 'dev', agentUp);
    ip('-n', agentNs, 'link', 'set', agentUp, 'up');
    // agent host ↔ world: its default route.
    ip('-n', agentNs, 'link', 'add', agentDown, 'type', 'veth', 'peer', 'name', worldIf, 'netns', worldNs);
    ip('-n', agentNs, 'addr', 'add', '198.51.100.2/24', 'dev', agentDown);
    ip('-n', agentNs, '-6', 'addr', 'add', '2001:db8:100::2/64', 'dev', agentDown, 'nodad');
    ip('-n', agentNs, 'link', 'set', agentDown, 'up');
    ip('-n', agentNs, 'link', 'set', 'lo', 'up');
    ip('-n', agentNs, 'route', 'add', 'default', 'via', '198.51.100.254');
    ip('-n', agentNs, '-6', 'route', 'add', 'default', 'via', '2001:db8:100::fe');
    for (const a of ['198.51.100.254/24', '198.51.100.1/24']) ip('-n', worldNs, 'addr', 'add', a, 'dev', worldIf);
    for (const a of ['2001:db8:100::fe/64', '2001:db8:100::1/64']) ip('-n', worldNs, '-6', 'addr', 'add', a, 'dev', worldIf, 'nodad');
    ip('-n', worldNs, 'link', 'set', worldIf, 'up');
    ip('-n', worldNs, 'link', 'set', 'lo', 'up');
    for (const a of PRIVATE) ip('-n', worldNs, 'addr', 'add', a.includes(':') ? `${a}/128` : `${a}/32`, 'dev', 'lo');
    ip('-n', worldNs, '-6', 'addr', 'add', 'fe80::99/64', 'dev', worldIf, 'nodad');
    return undefined;
  } catch (err) {
    return `this machine does not allow network namespaces here: ${(err as Error).message.split('\n')[0] ?? ''}`;
  }
}

function removeNamespaces(): void {
  for (const args of [
    ['link', 'del', rootIf],
    ['netns', 'del', agentNs],
    ['netns', 'del', worldNs],
  ]) {
    try {
      ip(...args);
    } catch {
      /* already gone */
    }
  }
}

/** The task's script: one line per address, REACH with the service's greeting or BLOCKED. */
function probeScript(targets: readonly { addr: string; port: number }[]): string {
  const lines = targets.map(
    ({ addr, port }) =>
      `if out=$(timeout 4 bash -c 'exec 3<>/dev/tcp/${addr}/${port} && { timeout 1 head -n1 <&3 || true; }' 2>/dev/null); then echo "REACH ${addr} $out"; else echo "BLOCKED ${addr}"; fi`,
  );
  return lines.join('\n') + '\n';
}

/** What the agent with this pid left: namespace and pid files, and pasta processes attached to its namespaces. */
function leftBy(pid: number): { files: string[]; pastas: string } {
  const files = readdirSync('/run/ferry/netns').filter((n) => n.startsWith(`ferry-pub-${pid}-`));
  const pastas = spawnSync('pgrep', ['-f', `ferry-pub-${pid}-`], { encoding: 'utf8' }).stdout.trim();
  return { files, pastas };
}

function verdicts(stdout: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [verdict, addr, ...rest] = line.split(' ');
    if (addr && (verdict === 'REACH' || verdict === 'BLOCKED')) found.set(addr, [verdict, ...rest].join(' '));
  }
  return found;
}

describe('network public: the internet, not the agent host, private or link-local ranges, nor the control plane', () => {
  const problem = makeNamespaces();
  const skip = problem ? { skip: problem } : {};
  let server: ServerHandle | undefined;
  let agent: FerryProcess | undefined;
  const services: FerryProcess[] = [];
  let targets: { addr: string; port: number }[] = [];
  let token = '';
  const agentDir = tempDir('public-agent');
  /** The agent, in the agent host's namespace (the same data folder each time: a restart). */
  const startAgent = (): FerryProcess => {
    const args = ['netns', 'exec', agentNs, process.execPath, CLI, 'agent', 'start', '--join-token', token, '--data-dir', agentDir, '--name', 'agent-host'];
    return new FerryProcess(spawn('ip', args, { env: { ...cleanEnv(), FERRY_PUBLIC_DNS: '198.51.100.1' }, stdio: ['ignore', 'pipe', 'pipe'] }));
  };

  before(async () => {
    if (problem) return;
    services.push(service(worldNs, [...INTERNET, ...PRIVATE, `fe80::99%${worldIf}`]), service(agentNs, AGENT_HOST));
    await Promise.all(services.map((s) => waitFor(() => s.stdout.includes('listening'), 10_000, 'test services')));
    const port = await freePort();
    server = await startFerryServer({ embeddedAgent: false, host: CONTROL_PLANE, port, env: { FERRY_ALLOW_HOST_NETWORK: 'true' } });
    const local = [...INTERNET, ...PRIVATE, LINK_LOCAL, MAPPED, ...AGENT_HOST];
    targets = [...local.map((addr) => ({ addr, port: PORT })), { addr: CONTROL_PLANE, port }];
    for (const [name, network] of [
      ['pub', 'public'],
      ['hostnet', 'host'],
      ['nonet', 'none'],
    ] as const) {
      const r = await server.cli(['target', 'create', name, '--type', 'shell', '--network', network]);
      assert.equal(r.code, 0, r.stderr);
    }
    token = await server.joinToken(['--hosted']);
    agent = startAgent();
    await waitFor(
      () => {
        if (agent?.child.exitCode !== null) throw new Error(`agent exited: ${agent?.stderr}`);
        return agent.stderr.includes('"agent started"');
      },
      20_000,
      'agent in the namespace',
    );
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop();
    await Promise.all(services.map((s) => s.stop('SIGKILL')));
    removeNamespaces();
  });

  it('host (control): every service answers, so the others prove something', skip, async () => {
    const r = await server!.cli(['run', 'hostnet', '-c', probeScript(targets)]);
    assert.equal(r.code, 0, r.stderr);
    const seen = verdicts(r.stdout);
    const greeting = (addr: string): string => (addr === LINK_LOCAL ? `fe80::99%${worldIf}` : addr === MAPPED ? '10.20.0.1' : addr);
    for (const { addr } of targets.filter((t) => t.addr !== CONTROL_PLANE)) assert.equal(seen.get(addr), `REACH hello ${greeting(addr)}`, r.stdout);
    assert.match(seen.get(CONTROL_PLANE) ?? '', /^REACH/, 'the control plane is reachable from the agent host');
  });

  it('none (control): nothing answers', skip, async () => {
    const r = await server!.cli(['run', 'nonet', '-c', probeScript(targets)]);
    assert.equal(r.code, 0, r.stderr);
    const seen = verdicts(r.stdout);
    for (const { addr } of targets) assert.equal(seen.get(addr), 'BLOCKED', r.stdout);
  });

  it('public: the internet answers; loopback, private, metadata, the agent host and the control plane do not', skip, async () => {
    const r = await server!.cli(['run', 'pub', '-c', probeScript(targets)]);
    assert.equal(r.code, 0, r.stderr);
    const seen = verdicts(r.stdout);
    for (const addr of INTERNET) assert.equal(seen.get(addr), `REACH hello ${addr}`, r.stdout);
    for (const addr of [...PRIVATE, LINK_LOCAL, MAPPED, ...AGENT_HOST, CONTROL_PLANE])
      assert.equal(seen.get(addr), 'BLOCKED', `${addr} must be blocked:\n${r.stdout}`);
  });

  it('public: DNS goes to the configured public resolver, and a private resolver gets nothing', skip, async () => {
    const world = services[0]!;
    const before = world.stdout;
    const script = 'cat /etc/resolv.conf; echo q > /dev/udp/10.20.0.1/53; echo q > /dev/udp/198.51.100.1/53; sleep 0.5';
    const r = await server!.cli(['run', 'pub', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'nameserver 198.51.100.1\n');
    await waitFor(() => world.stdout.slice(before.length).includes('udp 198.51.100.1 from'), 5_000, 'the datagram to the public resolver');
    assert.doesNotMatch(world.stdout.slice(before.length), /udp 10\.20\.0\.1/, 'nothing reached the private resolver');
  });

  it('public: the task cannot get around the filter (raw and ping sockets, its own routes and rules)', skip, async () => {
    const script = [
      `perl -MSocket -e 'socket(my $s, PF_INET, SOCK_RAW, 1) ? print "raw socket\\n" : print "no raw socket\\n"'`,
      `perl -MSocket -e 'socket(my $s, PF_INET, SOCK_DGRAM, 1) ? print "ping socket\\n" : print "no ping socket\\n"'`,
      'ip route add 10.20.0.1/32 dev lo 2>/dev/null && echo "route added" || echo "no route change"',
      'nft flush ruleset 2>/dev/null && echo "rules flushed" || echo "no rule change"',
      probeScript([{ addr: '10.20.0.1', port: PORT }]),
    ].join('\n');
    const r = await server!.cli(['run', 'pub', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'no raw socket\nno ping socket\nno route change\nno rule change\nBLOCKED 10.20.0.1\n');
  });

  it('public: after the tasks only pooled sandboxes hold a namespace, and a stopped agent leaves nothing', skip, async () => {
    const pid = agent!.child.pid!;
    // Sandboxes waiting in the pool (at most the concurrency, 4) were launched with their network:
    // a namespace file, its pid file and a pasta each. Nothing of a finished task stays: its
    // namespace goes right after its final status (the runner removes it once the status is
    // delivered), so the last task's may still be on its way out when the CLI has the result.
    const pooledOnly = (w: ReturnType<typeof leftBy>) =>
      w.files.length % 2 === 0 && w.files.length <= 2 * 4 && w.pastas.split('\n').filter(Boolean).length === w.files.length / 2;
    const waiting = await waitFor(
      () => {
        const w = leftBy(pid);
        return pooledOnly(w) ? w : undefined;
      },
      5_000,
      'only pooled sandboxes to hold a namespace',
    ).catch(() => leftBy(pid));
    assert.equal(waiting.files.length % 2, 0, JSON.stringify(waiting));
    assert.ok(waiting.files.length <= 2 * 4, `at most one namespace per pooled sandbox: ${JSON.stringify(waiting)}`);
    assert.equal(waiting.pastas.split('\n').filter(Boolean).length, waiting.files.length / 2, 'one pasta per namespace');
    await agent!.stop('SIGTERM');
    assert.deepEqual(leftBy(pid), { files: [], pastas: '' });
    agent = startAgent();
    await waitFor(() => agent?.stderr.includes('"agent started"'), 20_000, 'the agent again');
  });

  it('public: kill -9 of the agent mid-task leaves a namespace and its pasta, which the restarted agent removes', skip, async () => {
    const run = server!.spawnCli(['run', 'pub', '-c', 'echo started; sleep 60']);
    await waitFor(() => run.stdout.includes('started'), 20_000, 'the task to start');
    const killed = agent!.child.pid!;
    // The running task's namespace and pid file, plus those of any sandbox waiting in the pool.
    assert.ok(leftBy(killed).files.length >= 2, 'a namespace file and its pid file while the task runs');
    await agent!.stop('SIGKILL');
    assert.notEqual(leftBy(killed).pastas, '', 'pasta outlives an agent killed with -9');
    agent = startAgent();
    await waitFor(() => agent?.stderr.includes('removed network namespaces left by an earlier run'), 20_000, 'the sweep');
    assert.deepEqual(leftBy(killed), { files: [], pastas: '' });
    await run.stop('SIGKILL');
  });
});

describe('network policies: defaults and who may have the host network', () => {
  let server: ServerHandle;
  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
  });
  after(async () => server?.stop());

  const networkOf = async (name: string): Promise<string> => {
    const r = await server.cli(['target', 'show', name, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { network: string }).network;
  };

  it('hosted database, cluster and cloud targets default to public, self-hosted ones to host, scripts to none', async () => {
    for (const [name, type, agentMode, expected] of [
      ['h-pg', 'postgres', 'hosted', 'public'],
      ['h-k8s', 'kubernetes', 'hosted', 'public'],
      ['h-aws', 'aws', 'hosted', 'public'],
      ['s-pg', 'postgres', 'self-hosted', 'host'],
      ['h-sh', 'shell', 'hosted', 'none'],
    ] as const) {
      const r = await server.cli(['target', 'create', name, '--type', type, '--agent', agentMode]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await networkOf(name), expected, `${name}`);
    }
  });

  it('host is refused for hosted targets by default, with what to use instead; self-hosted ones may have it', async () => {
    const hosted = await server.cli(['target', 'create', 'h-host', '--type', 'shell', '--network', 'host']);
    assert.notEqual(hosted.code, 0);
    assert.match(hosted.stderr, /--network public/);
    const update = await server.cli(['target', 'update', 'h-sh', '--network', 'host']);
    assert.notEqual(update.code, 0);
    assert.equal((await server.cli(['target', 'create', 's-host', '--type', 'shell', '--agent', 'self-hosted', '--network', 'host'])).code, 0);
    assert.equal((await server.cli(['target', 'update', 'h-sh', '--network', 'public'])).code, 0);
    assert.equal(await networkOf('h-sh'), 'public');
  });

  it('an agent that cannot give public refuses the task with the reason, rather than another network', async () => {
    assert.equal((await server.cli(['target', 'create', 'weak', '--type', 'shell', '--agent', 'self-hosted', '--network', 'public'])).code, 0);
    const agent = await server.startAgent(await server.joinToken(['--target', 'weak']), { executor: 'process' });
    assert.match(agent.stderr, /tasks of targets with --network public will be refused on this agent/);
    const r = await server.cli(['run', 'weak', '-c', 'echo ran']);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout, /ran/);
    const list = await server.cli(['task', 'list', '--json']);
    const task = (JSON.parse(list.stdout) as { id: string; target: string }[]).find((t) => t.target === 'weak');
    const shown = await taskShow(server, task!.id);
    assert.equal(shown.status, 'error');
    assert.match(shown.reason ?? '', /network "public" is not available on this agent: the process executor has no network isolation/);
  });
});
