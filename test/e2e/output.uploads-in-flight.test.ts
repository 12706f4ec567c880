/**
 * Two output uploads of one task in flight at once, end to end: a real server and a real
 * sandboxed agent, the agent reaching the server through a TCP relay the test runs in front of
 * it. The relay sees, per connection, what arrives at the server and when the server answers
 * (TLS passes through it untouched): a task printing ~19 MB has a second upload (half a MiB and
 * more) arrive on one connection while an upload on another has not been answered yet, and its
 * output is stored byte-exact. Then the relay cuts the agent's connections in the middle of
 * uploads, several times: the agent resends what was lost, the upload behind it waits on the
 * server or is sent again, and the output is still byte-exact.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startFerryServer, taskSucceeded, type FerryProcess, type ServerHandle } from '../helpers/ferry.js';

/** What `seq 1 N` prints. */
function seq(n: number): string {
  const lines: string[] = [];
  for (let i = 1; i <= n; i++) lines.push(String(i));
  return lines.join('\n') + '\n';
}

/** Bytes of a request that make it an output upload (polls, heartbeats and reports are small). */
const UPLOAD_BYTES = 512 * 1024;

/**
 * A TCP relay to the server that can cut connections: once armed, the first connection that
 * has carried more than `cutAfter` bytes from the agent since is destroyed (both sides), the
 * counters start again, up to `cuts` times. It counts, per connection, the bytes sent to the
 * server since the server last answered on it, and how often two connections both had an
 * upload's worth unanswered at once (`overlaps`).
 */
class CuttingRelay {
  cuts = 0;
  overlaps = 0;
  private readonly unanswered = new Map<Socket, number>();
  private armed = 0;
  private cutAfter = 0;
  private readonly counted = new Map<Socket, number>();
  private constructor(private readonly server: Server) {}

  static async start(target: URL): Promise<CuttingRelay> {
    const server = createServer();
    const relay = new CuttingRelay(server);
    server.on('connection', (client) => relay.relay(client, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get url(): string {
    const { port } = this.server.address() as { port: number };
    return `https://127.0.0.1:${port}`;
  }

  arm(cuts: number, cutAfter: number): void {
    this.armed = cuts;
    this.cutAfter = cutAfter;
    for (const c of this.counted.keys()) this.counted.set(c, 0);
  }

  private relay(client: Socket, target: URL): void {
    const upstream = connect(Number(target.port), target.hostname);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      this.counted.delete(client);
      this.unanswered.delete(client);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    this.counted.set(client, 0);
    upstream.on('data', () => this.unanswered.set(client, 0));
    client.on('data', (d: Buffer) => {
      const was = this.unanswered.get(client) ?? 0;
      this.unanswered.set(client, was + d.length);
      if (was < UPLOAD_BYTES && was + d.length >= UPLOAD_BYTES && [...this.unanswered].some(([c, n]) => c !== client && n >= UPLOAD_BYTES)) this.overlaps += 1;
      const n = (this.counted.get(client) ?? 0) + d.length;
      this.counted.set(client, n);
      if (this.armed > 0 && n > this.cutAfter) {
        this.armed -= 1;
        this.cuts += 1;
        for (const c of this.counted.keys()) this.counted.set(c, 0);
        close();
      }
    });
    client.pipe(upstream);
    upstream.pipe(client);
  }

  close(): Promise<void> {
    for (const c of this.counted.keys()) c.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('two output uploads of a task in flight', () => {
  let server: ServerHandle;
  let relay: CuttingRelay;
  let agent: FerryProcess;
  const LINES = 2_500_000;
  const expected = seq(LINES);

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
    assert.equal((await server.cli(['target', 'create', 'inflight', '--type', 'shell'])).code, 0);
    relay = await CuttingRelay.start(new URL(server.url));
    const token = await server.joinToken(['--hosted']);
    agent = await server.startAgent(token, { name: 'through-relay', env: { FERRY_SERVER: relay.url } });
  });
  after(async () => {
    await server?.stop();
    await relay?.close();
  });

  async function run(): Promise<string> {
    const r = await server.cli(['run', 'inflight', '--detach', '-c', `seq 1 ${LINES}`]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    await taskSucceeded(server, id, 60_000);
    const logs = await server.cli(['task', 'logs', id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout.length, expected.length, 'every byte, once');
    assert.ok(logs.stdout === expected, 'the stored output is byte-exact');
    return id;
  }

  it('a second upload reaches the server before the first is answered, and the output is byte-exact', { timeout: 120_000 }, async () => {
    await run();
    assert.ok(relay.overlaps > 0, 'an upload arrived while another was unanswered');
  });

  it('connections cut in the middle of uploads: the output is still byte-exact', { timeout: 120_000 }, async () => {
    const warnings = (): number => agent.stderr.split('\n').filter((l) => l.includes('output upload failed; retrying')).length;
    const before = warnings();
    relay.arm(3, 700 * 1024);
    await run();
    assert.equal(relay.cuts, 3, 'the relay cut three connections in the middle of uploads');
    assert.ok(warnings() > before, 'the agent saw uploads fail and retried them');
  });
});
