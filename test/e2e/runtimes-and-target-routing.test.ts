/**
 * Targets that do real work. Each runtime through `ferry run` against the real thing
 * (a throwaway PostgreSQL and MariaDB on loopback, the real python3/node/kubectl), and routing:
 * self-hosted agents serve only their own targets, whatever they ask the API for.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, startFerryServer, taskShow, tempDir, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';
import { startMariaDb, startPostgres, type DbServer } from '../helpers/databases.js';

async function setSecrets(server: ServerHandle, target: string, values: Record<string, string>): Promise<void> {
  for (const [k, v] of Object.entries(values)) {
    const r = await server.cli(['secret', 'set', target, k], { input: v });
    assert.equal(r.code, 0, r.stderr);
  }
}

describe('runtimes against real services', () => {
  let server: ServerHandle;
  let pg: DbServer;
  let maria: DbServer;

  before(async () => {
    // The databases listen on loopback, which a hosted target reaches only with --network host.
    [server, pg, maria] = await Promise.all([startFerryServer({ env: { FERRY_ALLOW_HOST_NETWORK: 'true' } }), startPostgres(), startMariaDb()]);
    await waitForAgents(server, 1);
    for (const [name, type] of [
      ['py', 'python'],
      ['js', 'node'],
      ['pg', 'postgres'],
      ['pgcsv', 'postgres-csv'],
      ['my', 'mysql'],
      ['mycsv', 'mysql-csv'],
      ['k8s', 'kubernetes'],
      ['cloud', 'aws'],
    ] as const) {
      const loopbackDb = type.startsWith('postgres') || type.startsWith('mysql');
      const r = await server.cli(['target', 'create', name, '--type', type, ...(loopbackDb ? ['--network', 'host'] : [])]);
      assert.equal(r.code, 0, r.stderr);
    }
    const pgSecrets = { PG_HOST: pg.host, PG_PORT: String(pg.port), PG_USER: pg.user, PG_PASS: pg.password, PG_DB: pg.database };
    await setSecrets(server, 'pg', pgSecrets);
    await setSecrets(server, 'pgcsv', pgSecrets);
    const mySecrets = { MYSQL_HOST: maria.host, MYSQL_PORT: String(maria.port), MYSQL_USER: maria.user, MYSQL_PASS: maria.password, MYSQL_DB: maria.database };
    await setSecrets(server, 'my', mySecrets);
    await setSecrets(server, 'mycsv', mySecrets);
  });
  after(async () => {
    await Promise.allSettled([server?.stop(), pg?.stop(), maria?.stop()]);
  });

  it("python: output and a traceback's exit 1", async () => {
    const ok = await server.cli(['run', 'py', '-c', 'import sys\nprint("sum", sum(range(10)))\nprint("py", sys.version_info[0])']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'sum 45\npy 3\n');
    const bad = await server.cli(['run', 'py', '-c', 'def f():\n    raise ValueError("boom")\nf()']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Traceback \(most recent call last\)[\s\S]*ValueError: boom/);
  });

  it('node: output and exit status', async () => {
    const r = await server.cli(['run', 'js', '-c', 'console.log([1,2,3].map((x) => x * 2).join(",")); process.exitCode = 4;']);
    assert.equal(r.stdout, '2,4,6\n');
    assert.equal(r.code, 4);
  });

  it("postgres: result rows tab-separated; a syntax error ends as failed with the database's message", async () => {
    const r = await server.cli([
      'run',
      'pg',
      '-c',
      "CREATE TABLE t (id int, name text); INSERT INTO t VALUES (1, 'ann'), (2, 'bob, jr'); SELECT id, name FROM t ORDER BY id;",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'id\tname\n1\tann\n2\tbob, jr\n');
    const bad = await server.cli(['run', 'pg', '-c', 'SELECT 1;\nSELEC oops;\nSELECT 2;']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /syntax error at or near "SELEC"/);
    assert.ok(!bad.stdout.includes('2\n'), 'stopped at the first error');
    const id = /task (t_[0-9a-z]+)/.exec(bad.stderr)?.[1] ?? '';
    assert.equal((await taskShow(server, id)).status, 'failed');
  });

  it('postgres-csv: CSV with quoting', async () => {
    const r = await server.cli(['run', 'pgcsv', '-c', 'SELECT id, name FROM t ORDER BY id;']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'id,name\n1,ann\n2,"bob, jr"\n');
  });

  it("mysql: tab-separated rows; an error ends as failed with the server's message", async () => {
    const r = await server.cli([
      'run',
      'my',
      '-c',
      "CREATE TABLE t (id int, name text); INSERT INTO t VALUES (1, 'ann'), (2, 'bob, \"jr\"'); SELECT id, name FROM t ORDER BY id;",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'id\tname\n1\tann\n2\tbob, "jr"\n');
    const bad = await server.cli(['run', 'my', '-c', 'SELECT 1;\nSELEC oops;\nSELECT 2;']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /You have an error in your SQL syntax/);
  });

  it('mysql-csv: CSV with quoting', async () => {
    const r = await server.cli(['run', 'mycsv', '-c', 'SELECT id, name FROM t ORDER BY id;']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'id,name\n1,ann\n2,"bob, ""jr"""\n');
  });

  it('a run missing a required secret ends as error naming it', async () => {
    const r = await server.cli(['run', 'cloud', '-c', 'aws sts get-caller-identity']);
    assert.equal(r.code, 70);
    assert.match(r.stderr, /could not start: target cloud \(aws\) needs secrets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY/);
  });

  it('aws: keys from secrets reach the task as the CLI expects them (no live account is called)', async () => {
    await setSecrets(server, 'cloud', {
      AWS_ACCESS_KEY_ID: 'AKIAFERRYTESTKEY0001',
      AWS_SECRET_ACCESS_KEY: 'ferry-test-secret-access-key-value',
      AWS_REGION: 'eu-west-1',
    });
    const r = await server.cli([
      'run',
      'cloud',
      '-c',
      '[ "$AWS_DEFAULT_REGION" = eu-west-1 ] && echo region-ok; echo "${#AWS_ACCESS_KEY_ID} ${#AWS_SECRET_ACCESS_KEY} pager=[$AWS_PAGER]"; echo "$AWS_SECRET_ACCESS_KEY"',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'region-ok\n20 34 pager=[]\n***\n', 'values arrive, and are masked like every secret');
  });

  it('kubernetes: kubectl reads the kubeconfig from the secret; the file exists only inside the sandbox', async () => {
    const marker = `ferry-kube-token-${Date.now()}`;
    const kubeconfig = [
      'apiVersion: v1',
      'kind: Config',
      'current-context: ferry-test',
      'clusters:',
      '- name: c',
      '  cluster: {server: "https://127.0.0.1:1"}',
      'contexts:',
      '- name: ferry-test',
      '  context: {cluster: c, user: u, namespace: ops}',
      'users:',
      '- name: u',
      `  user: {token: ${marker}}`,
      '',
    ].join('\n');
    await setSecrets(server, 'k8s', { KUBE_CONFIG: kubeconfig });
    const run = server.spawnCli([
      'run',
      'k8s',
      '-c',
      'kubectl config current-context; kubectl config view --minify -o jsonpath="{.contexts[0].context.namespace}"; echo; echo "$KUBECONFIG"; stat -c %a "$KUBECONFIG"; sleep 2',
    ]);
    await waitFor(() => run.stdout.includes('/ferry/files/kubeconfig'), 20_000, 'kubectl output');
    const roots = [tmpdir(), join(server.dataDir, 'hosted-agent', 'sandboxes')];
    const onHost = roots.flatMap((root) =>
      readdirSync(root)
        .filter((d) => d.startsWith('ferry-t_'))
        .flatMap((d) => {
          const walk = (p: string): string[] => (statSync(p).isDirectory() ? readdirSync(p).flatMap((n) => walk(join(p, n))) : [p]);
          try {
            return walk(join(root, d));
          } catch {
            return [];
          }
        }),
    );
    // The sandbox keeps no folder on the host at all (files are copied in from pipes), so the
    // kubeconfig cannot be on the agent's disk; the walk above stays as a guard if that changes.
    assert.deepEqual(
      readdirSync(roots[1]!).filter((d) => d.startsWith('ferry-t_')),
      [],
      'the sandbox keeps no task folder on the host',
    );
    for (const f of onHost) assert.ok(!readFileSync(f).includes(marker), `kubeconfig written to the host at ${f}`);
    assert.equal(await run.exited, 0, run.stderr);
    assert.equal(run.stdout, 'ferry-test\nops\n/ferry/files/kubeconfig\n444\n');
  });
});

describe('routing: self-hosted agents serve only their own targets', () => {
  let server: ServerHandle;
  const agentTokens: Record<string, string> = {};

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
    for (const name of ['site-a', 'site-b']) {
      assert.equal((await server.cli(['target', 'create', name, '--type', 'shell', '--agent', 'self-hosted'])).code, 0);
      const dir = tempDir(`agent-${name}`);
      await server.startAgent(await server.joinToken(['--target', name]), { dataDir: dir, name: `agent-${name}`, executor: 'process' });
      agentTokens[name] = (JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8')) as { token: string }).token;
    }
  });
  after(async () => server?.stop());

  it("each task runs only on its own target's agent", async () => {
    const ids: [string, string][] = [];
    for (let i = 0; i < 6; i++) {
      for (const target of ['site-a', 'site-b']) ids.push([target, (await server.cli(['run', target, '--detach', '-c', 'echo hi'])).stdout.trim()]);
    }
    for (const [target, id] of ids) {
      const t = await waitFor(async () => {
        const s = await taskShow(server, id);
        return s.status === 'succeeded' ? s : undefined;
      });
      assert.equal(t.agent, `agent-${target}`);
    }
  });

  it('one agent may serve several targets named when its token was made', async () => {
    for (const name of ['site-c', 'site-d']) assert.equal((await server.cli(['target', 'create', name, '--type', 'shell', '--agent', 'self-hosted'])).code, 0);
    await server.startAgent(await server.joinToken(['--target', 'site-c', 'site-d']), { name: 'agent-cd', executor: 'process' });
    for (const name of ['site-c', 'site-d']) {
      const r = await server.cli(['run', name, '-c', 'echo "$FERRY_TARGET"']);
      assert.equal(r.stdout, `${name}\n`);
      const id = /task (t_[0-9a-z]+)/.exec(r.stderr)?.[1] ?? '';
      assert.equal((await taskShow(server, id)).agent, 'agent-cd');
    }
    const list = JSON.parse((await server.cli(['agent', 'list', '--json'])).stdout) as { name: string; targets: string[] }[];
    assert.deepEqual(list.find((a) => a.name === 'agent-cd')?.targets.sort(), ['site-c', 'site-d']);
  });

  it("an agent cannot claim, read, write, finish or cancel another target's task, even calling the API directly", async () => {
    const id = (await server.cli(['run', 'site-b', '--detach', '-c', 'echo b-secret-output; sleep 5'])).stdout.trim();
    await waitFor(async () => (await taskShow(server, id)).status === 'running');
    const tokenA = agentTokens['site-a'] ?? '';
    const poll = await api(server, 'POST', '/v1/agent/poll', { token: tokenA, body: JSON.stringify({ free: 1, running: [id], waitSeconds: 0 }) });
    assert.equal(poll.status, 200);
    assert.equal(poll.json.task, null);
    const heartbeat = await api(server, 'POST', '/v1/agent/heartbeat', { token: tokenA, body: JSON.stringify({ running: [id] }) });
    assert.deepEqual(heartbeat.json.revoked, [id], 'the server says agent A does not hold it');
    for (const [method, path, body, type] of [
      ['POST', `/v1/agent/tasks/${id}/started`, undefined, undefined],
      ['PUT', `/v1/agent/tasks/${id}/output?offset=0`, Buffer.alloc(0), 'application/vnd.ferry.frames'],
      [
        'POST',
        `/v1/agent/tasks/${id}/finish`,
        JSON.stringify({ status: 'succeeded', exitCode: 0, signal: null, reason: null, outputBytes: 0, outputSha256: '0'.repeat(64) }),
        undefined,
      ],
    ] as const) {
      const res = await api(server, method, path, { token: tokenA, ...(body !== undefined ? { body, contentType: type ?? 'application/json' } : {}) });
      assert.equal(res.status, 409, `${method} ${path}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.code, 'FERRY_E_LEASE_LOST');
    }
    for (const [method, path] of [
      ['GET', `/v1/tasks/${id}`],
      ['GET', `/v1/tasks/${id}/output`],
      ['POST', `/v1/tasks/${id}/cancel`],
    ] as const) {
      const res = await api(server, method, path, { token: tokenA });
      assert.equal(res.status, 401, `${method} ${path}`);
    }
    const t = await waitFor(async () => {
      const s = await taskShow(server, id);
      return s.status === 'succeeded' ? s : undefined;
    }, 20_000);
    assert.equal(t.agent, 'agent-site-b');
    assert.equal((await server.cli(['task', 'logs', id])).stdout, 'b-secret-output\n');
  });
});
