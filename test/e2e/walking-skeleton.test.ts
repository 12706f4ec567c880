/**
 * Server, agent and CLI run a task end to end over HTTPS, as real processes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, startFerryServer, taskShow, taskSucceeded, tempDir, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

describe('walking skeleton (embedded hosted agent)', () => {
  let server: ServerHandle;

  before(async () => {
    server = await startFerryServer({ env: { LEAK_CHECK: 'agent-environment' } });
    await waitForAgents(server, 1);
    const r = await server.cli(['target', 'create', 'web1', '--type', 'shell']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => server?.stop());

  it('creates its data folder: CA, database, admin token with mode 0600', () => {
    for (const f of ['ca.pem', 'ferry.db', 'admin-token']) assert.ok(existsSync(join(server.dataDir, f)), f);
    assert.equal(statSync(join(server.dataDir, 'admin-token')).mode & 0o777, 0o600);
    assert.match(server.proc.stdout, /ferry login --server https:\/\/127\.0\.0\.1:\d+ --token "\$\(cat .*admin-token\)" --ca-fingerprint [0-9A-F:]{95}/);
  });

  it("stores tokens only hashed: no bearer secret appears in the database's bytes", () => {
    const agentToken = (JSON.parse(readFileSync(join(server.dataDir, 'hosted-agent', 'agent.json'), 'utf8')) as { token: string }).token;
    const db = Buffer.concat(['ferry.db', 'ferry.db-wal'].filter((f) => existsSync(join(server.dataDir, f))).map((f) => readFileSync(join(server.dataDir, f))));
    for (const token of [server.adminToken, agentToken]) {
      assert.ok(token.length > 40);
      assert.ok(!db.includes(Buffer.from(token)), 'a token in clear in the database');
    }
  });

  it('agents only dial out: the agent process listens on no port', () => {
    const agentPid = Number(
      execFileSync('pgrep', ['-P', String(server.proc.child.pid)], { encoding: 'utf8' })
        .trim()
        .split('\n')[0],
    );
    const sockets = new Set(
      readdirSync(`/proc/${agentPid}/fd`)
        .map((fd) => {
          try {
            return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${agentPid}/fd/${fd}`))?.[1];
          } catch {
            return undefined;
          }
        })
        .filter((x): x is string => x !== undefined),
    );
    assert.ok(sockets.size > 0, 'the agent has sockets (its connections to the server)');
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      const listening = readFileSync(table, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/))
        .filter((cols) => cols[3] === '0A' && sockets.has(cols[9] ?? ''));
      assert.deepEqual(listening, [], `the agent listens in ${table}`);
    }
  });

  it('streams output while the task runs: the first line arrives during the sleep', async () => {
    const run = server.spawnCli(['run', 'web1', '-c', 'echo first-line; sleep 5; echo second-line']);
    await waitFor(() => run.stdout.includes('first-line'), 10_000, 'first line');
    assert.equal(run.child.exitCode, null, 'the CLI is still running');
    assert.ok(!run.stdout.includes('second-line'), 'the second line has not been printed yet');
    assert.equal(await run.exited, 0);
    assert.equal(run.stdout, 'first-line\nsecond-line\n');
  });

  for (const code of [0, 1, 3, 255]) {
    it(`exit code ${code} becomes the CLI's exit code`, async () => {
      const r = await server.cli(['run', 'web1', '-c', `echo code ${code}; exit ${code}`]);
      assert.equal(r.code, code, r.stderr);
      assert.equal(r.stdout, `code ${code}\n`);
    });
  }

  it('delivers stdout to stdout and stderr to stderr', async () => {
    const r = await server.cli(['run', 'web1', '-c', 'echo to-out; echo to-err >&2']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'to-out\n');
    assert.match(r.stderr, /to-err\n/);
    assert.ok(!r.stdout.includes('to-err'));
  });

  it('reads the script from a file and from stdin', async () => {
    const dir = tempDir('script');
    const file = join(dir, 's.sh');
    appendFileSync(file, 'echo "from file $((6*7))"\n');
    const fromFile = await server.cli(['run', 'web1', '-f', file]);
    assert.equal(fromFile.stdout, 'from file 42\n');
    const fromStdin = await server.cli(['run', 'web1'], { input: 'echo from stdin\n' });
    assert.equal(fromStdin.stdout, 'from stdin\n');
  });

  it('runs with a clean environment in a fresh folder', async () => {
    const r = await server.cli(['run', 'web1', '-c', 'env | cut -d= -f1 | sort | tr "\\n" " "; echo; ls -A | wc -l; touch leftover']);
    const names = (r.stdout.split('\n')[0] ?? '').trim().split(' ');
    const allowed = new Set(['PATH', 'LANG', 'LC_ALL', 'TERM', 'FERRY_TASK_ID', 'FERRY_TARGET', 'HOME', 'TMPDIR', 'PWD', 'SHLVL', '_', 'OLDPWD']);
    assert.deepEqual(
      names.filter((n) => !allowed.has(n)),
      [],
      `unexpected variables in the task: ${names.join(' ')}`,
    );
    assert.ok(!names.includes('LEAK_CHECK'), "the agent's own environment does not reach the task");
    assert.equal(r.stdout.split('\n')[1], '0');
    const again = await server.cli(['run', 'web1', '-c', 'ls -A | wc -l']);
    assert.equal(again.stdout, '0\n', "the previous task's file is not visible");
  });

  it('delivers a 20 MB binary output whole and byte-exact', async () => {
    const r = await server.cli(['run', 'web1', '-c', 'head -c 20971520 /dev/urandom > blob; cat blob; sha256sum blob >&2; rm blob']);
    assert.equal(r.code, 0, r.stderr.slice(-500));
    assert.equal(r.stdoutBytes.length, 20971520);
    const digest = createHash('sha256').update(r.stdoutBytes).digest('hex');
    assert.match(r.stderr, new RegExp(`^${digest}  blob$`, 'm'));
    const logs = await server.cli(['task', 'list', '--json', '--limit', '1']);
    const [task] = JSON.parse(logs.stdout) as { outputBytes: number }[];
    assert.ok(task && task.outputBytes >= 20971520);
  });

  it('--detach prints the task id; task show/logs/list report it', async () => {
    const r = await server.cli(['run', 'web1', '--detach', '-c', 'echo detached']);
    assert.equal(r.code, 0);
    const id = r.stdout.trim().split('\n').pop() ?? '';
    assert.match(id, /^t_[0-9a-z]+$/);
    const done = await taskSucceeded(server, id);
    const full = JSON.parse((await server.cli(['task', 'show', id, '--json'])).stdout) as Record<string, unknown>;
    for (const key of ['id', 'target', 'status', 'exitCode', 'agent', 'createdAt', 'startedAt', 'finishedAt']) assert.ok(key in full, key);
    assert.equal(done.exitCode, 0);
    assert.equal(done.target, 'web1');
    assert.ok(done.agent);
    const logs = await server.cli(['task', 'logs', id]);
    assert.equal(logs.stdout, 'detached\n');
    const list = JSON.parse((await server.cli(['task', 'list', '--json', '--status', 'succeeded', '--target', 'web1'])).stdout) as { id: string }[];
    assert.ok(list.some((t) => t.id === id));
  });

  it('task logs --follow streams until the task ends', async () => {
    const r = await server.cli(['run', 'web1', '--detach', '-c', 'for i in 1 2 3; do echo tick $i; sleep 0.3; done']);
    const id = r.stdout.trim();
    const follow = await server.cli(['task', 'logs', id, '--follow']);
    assert.equal(follow.stdout, 'tick 1\ntick 2\ntick 3\n');
  });

  it('cancel stops a running task and its processes', async () => {
    const marker = `ferry-cancel-${Date.now()}`;
    const r = await server.cli(['run', 'web1', '--detach', '-c', `echo started; exec -a ${marker} sleep 300`]);
    const id = r.stdout.trim();
    await waitFor(async () => (await server.cli(['task', 'logs', id])).stdout.includes('started'), 10_000, 'task start');
    const cancel = await server.cli(['task', 'cancel', id]);
    assert.equal(cancel.code, 0, cancel.stderr);
    const t = await waitFor(
      async () => {
        const s = await taskShow(server, id);
        return s.status === 'cancelled' ? s : undefined;
      },
      20_000,
      'cancelled',
    );
    assert.match(t.reason ?? '', /SIGTERM/);
    const ps = readFileSync('/proc/loadavg', 'utf8') && (await server.cli(['run', 'web1', '-c', 'true'])).code;
    assert.equal(ps, 0, 'the agent keeps serving');
  });

  it('cancelling a finished task is a clear 409', async () => {
    const r = await server.cli(['run', 'web1', '--detach', '-c', 'true']);
    const id = r.stdout.trim();
    await waitFor(async () => (await taskShow(server, id)).status === 'succeeded');
    const cancel = await server.cli(['task', 'cancel', id]);
    assert.equal(cancel.code, 255);
    assert.match(cancel.stderr, /already ended as succeeded\. \(FERRY_E_TASK_FINISHED\)/);
  });

  it('--timeout ends a task as timed_out with exit code 124', async () => {
    const r = await server.cli(['run', 'web1', '--timeout', '1s', '-c', 'echo going; sleep 60']);
    assert.equal(r.code, 124, r.stderr);
    assert.match(r.stderr, /task t_\w+ timed out after 1s\n/);
  });

  it('sends HSTS and refuses TLS 1.1', async () => {
    const res = await api(server, 'GET', '/v1/health', { token: null });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['strict-transport-security']), /max-age=\d+/);
    const tls = await import('node:tls');
    const port = Number(new URL(server.url).port);
    const outcome = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', rejectUnauthorized: false });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', () => resolve('refused'));
    });
    assert.equal(outcome, 'refused');
  });

  it('agent list shows the embedded agent with name, host, version, online and last contact', async () => {
    const r = await server.cli(['agent', 'list']);
    assert.match(r.stdout, /^ID\s+NAME\s+HOST\s+VERSION\s+TARGETS\s+STATUS\s+RUNNING\s+LAST CONTACT/);
    assert.match(r.stdout, /\(hosted pool\)\s+online/);
  });
});
