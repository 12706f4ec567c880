/**
 * The CLI's day-two edges, through the real `ferry` bundle against a real server and its
 * embedded (sandboxed) agent: closed pipes end quietly, stdin and arguments reach the task,
 * `--env` gives plain variables, `secret set` refuses a value on the command line, `task wait`
 * and `task logs -f` exit with the task's code, every ending but success has a line on stderr,
 * the CLI's own failures exit 255, limit flags are checked in the user's units, known errors
 * have no stack trace, an OOM kill says so with the limit, and a non-root agent refuses to run
 * unsandboxed unless told.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, api, cleanEnv, runCli, startFerryServer, taskShow, tempDir, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

const CLI_FAILURE = 255;
const NO_STACK = /\n\s+at /;

/** Runs `script` with bash -c (a real shell pipeline) where `ferry` is the bundle, with the server's CLI settings. */
function shell(server: ServerHandle, script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const withFerry = `ferry() { "$FERRY_NODE" "$FERRY_CLI" "$@"; }\n${script}`;
  const env = { ...server.env, FERRY_NODE: process.execPath, FERRY_CLI: CLI };
  const child = spawn('bash', ['-c', withFerry], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  return new Promise((resolve) => {
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

describe('the CLI on day two', () => {
  let server: ServerHandle;
  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
    for (const [name, extra] of [
      ['day2', []],
      ['small', ['--memory', '64MiB']],
    ] as const) {
      const created = await server.cli(['target', 'create', name, '--type', 'shell', ...extra]);
      assert.equal(created.code, 0, created.stderr);
    }
  });
  after(async () => server.stop());

  describe('broken pipes', () => {
    it('`ferry run … | head -1` ends without a message or a stack trace', async () => {
      const r = await shell(server, `ferry run day2 -c "seq 1 300000" | head -1; echo "ferry=\${PIPESTATUS[0]}"`);
      assert.equal(r.stdout, '1\nferry=0\n');
      assert.match(r.stderr, /^ferry: task t_\w+ on day2\n$/, 'only the task line that precedes the output');
    });

    it('`ferry task logs -f ID 2>&1 | head -1` ends quietly too, stderr into the closed pipe', async () => {
      const run = await server.cli(['run', 'day2', '--detach', '-c', 'seq 1 300000 >&2']);
      const id = run.stdout.trim();
      const r = await shell(server, `ferry task logs -f ${id} 2>&1 | head -1; echo "ferry=\${PIPESTATUS[0]}"`);
      assert.equal(r.stdout, '1\nferry=0\n');
      assert.equal(r.stderr, '');
    });
  });

  describe("the task's input", () => {
    it('stdin reaches the task when the script comes from -c or -f', async () => {
      const viaC = await shell(server, `printf 'data\\nmore\\n' | ferry run day2 -c cat`);
      assert.equal(viaC.code, 0, viaC.stderr);
      assert.equal(viaC.stdout, 'data\nmore\n');
      const dir = tempDir('day2-script');
      writeFileSync(join(dir, 'count.sh'), 'wc -c\n');
      const viaF = await shell(server, `head -c 5000 /dev/zero | ferry run day2 -f ${join(dir, 'count.sh')}`);
      assert.equal(viaF.stdout.trim(), '5000');
      const binary = await server.cli(['run', 'day2', '-c', 'od -An -tx1 | tr -d " \\n"'], { input: Buffer.from([0, 1, 0xff, 0x0a]) });
      assert.equal(binary.stdout, '0001ff0a', 'bytes, not text');
    });

    it('-n gives the task an empty stdin, and a script on stdin is the script as before', async () => {
      const none = await server.cli(['run', 'day2', '-n', '-c', 'wc -c'], { input: 'not for the task' });
      assert.equal(none.stdout.trim(), '0');
      const script = await server.cli(['run', 'day2'], { input: 'echo from-stdin-script' });
      assert.equal(script.stdout, 'from-stdin-script\n');
    });

    it('stdin over 1 MiB is refused with a clear message, by the CLI and by the server', async () => {
      const big = await server.cli(['run', 'day2', '-c', 'cat'], { input: Buffer.alloc(1024 * 1024 + 1) });
      assert.equal(big.code, CLI_FAILURE);
      assert.match(big.stderr, /^ferry: stdin is over 1 MiB, the most Ferry takes\./);
      const res = await api(server, 'POST', '/v1/tasks', {
        body: JSON.stringify({ target: 'day2', script: 'cat', stdin: Buffer.alloc(1024 * 1024 + 3).toString('base64') }),
      });
      assert.equal(res.status, 400);
      assert.match(String(res.json.message), /stdin is over 1 MiB/);
    });

    it('arguments after -- are $1 $2 … for -c and -f, and must follow --', async () => {
      const viaC = await server.cli(['run', 'day2', '-c', 'printf "%s|" "$#" "$1" "$2"', '--', 'a', 'b c']);
      assert.equal(viaC.code, 0, viaC.stderr);
      assert.equal(viaC.stdout, '2|a|b c|');
      const dir = tempDir('day2-args');
      writeFileSync(join(dir, 'args.sh'), 'echo "first=$1 second=$2"\n');
      const viaF = await server.cli(['run', 'day2', '-f', join(dir, 'args.sh'), '--', 'x', 'y']);
      assert.equal(viaF.stdout, 'first=x second=y\n');
      const shown = await server.cli(['task', 'show', /task (t_\w+)/.exec(viaF.stderr)?.[1] ?? '']);
      assert.match(shown.stdout, /Arguments: +"x" "y"/);
      const forgot = await server.cli(['run', 'day2', 'echo', 'hi']);
      assert.equal(forgot.code, CLI_FAILURE);
      assert.match(forgot.stderr, /Put the script's arguments after --/);
      const control = await server.cli(['run', 'day2', '-c', 'true', '--', 'a\x1b[2J']);
      assert.equal(control.code, CLI_FAILURE);
      assert.match(control.stderr, /must not contain control characters/);
    });

    it('--env gives plain, unmasked variables; reserved names, bad names and secret names are refused', async () => {
      const r = await server.cli(['run', 'day2', '--env', 'GREETING=hello-plain', '-e', 'EMPTY=', '-c', 'echo "$GREETING[$EMPTY]"']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hello-plain[]\n');
      for (const [pair, message] of [
        ['PATH=/tmp', /--env PATH: PATH is set by Ferry for every task/],
        ['FERRY_TASK_ID=x', /--env FERRY_TASK_ID: FERRY_TASK_ID is set by Ferry/],
        ['1BAD=x', /is not a variable name/],
        ['NOEQUALS', /is not KEY=VALUE/],
      ] as const) {
        const bad = await server.cli(['run', 'day2', '--env', pair, '-c', 'true']);
        assert.equal(bad.code, CLI_FAILURE, pair);
        assert.match(bad.stderr, message);
      }
      const set = await server.cli(['secret', 'set', 'day2', 'API_TOKEN'], { input: 'a-long-secret-value' });
      assert.equal(set.code, 0, set.stderr);
      const clash = await server.cli(['run', 'day2', '--env', 'API_TOKEN=plain', '-c', 'true']);
      assert.equal(clash.code, CLI_FAILURE);
      assert.match(clash.stderr, /--env API_TOKEN: target day2 has a secret of that name, and secrets win.*\(FERRY_E_TASK_ENV_REFUSED\)/);
    });
  });

  it('`secret set T K VALUE` refuses the value, saying why and how', async () => {
    const r = await server.cli(['secret', 'set', 'day2', 'DB_PASSWORD', 'hunter2-on-the-command-line']);
    assert.equal(r.code, CLI_FAILURE);
    assert.match(r.stderr, /shell history/);
    assert.match(r.stderr, /printf %s "\$VALUE" \| ferry secret set day2 DB_PASSWORD/);
    const list = await server.cli(['secret', 'list', 'day2', '--json']);
    assert.ok(!(JSON.parse(list.stdout) as { name: string }[]).some((s) => s.name === 'DB_PASSWORD'), 'nothing was set');
  });

  describe('endings', () => {
    it('`task wait` and `task logs -f` exit with the task code and print the summary line', async () => {
      const run = await server.cli(['run', 'day2', '--detach', '-c', 'echo working; sleep 1; exit 3']);
      const id = run.stdout.trim();
      const wait = await server.cli(['task', 'wait', id]);
      assert.equal(wait.code, 3);
      assert.equal(wait.stdout, '');
      assert.equal(wait.stderr, `ferry: task ${id} failed with exit code 3\n`);
      const logs = await server.cli(['task', 'logs', '-f', id]);
      assert.equal(logs.code, 3);
      assert.equal(logs.stdout, 'working\n');
      assert.equal(logs.stderr, `ferry: task ${id} failed with exit code 3\n`);
      const ok = await server.cli(['run', 'day2', '--detach', '-c', 'true']);
      const okWait = await server.cli(['task', 'wait', ok.stdout.trim()]);
      assert.equal(okWait.code, 0);
      assert.equal(okWait.stderr, '', 'no line for a success');
    });

    it('`task wait` hears the end when the server stores it, not by asking again and again', async () => {
      const metricsToken = readFileSync(join(server.dataDir, 'metrics-token'), 'utf8').trim();
      const taskReads = async (): Promise<number> => {
        const res = await api(server, 'GET', '/metrics', { token: metricsToken });
        const line = /^ferry_http_requests_total\{method="GET",route="\/v1\/tasks\/:id",status="200"\} (\d+)$/m.exec(res.body.toString('utf8'));
        return Number(line?.[1] ?? 0);
      };
      const run = await server.cli(['run', 'day2', '--detach', '-c', 'sleep 4; exit 5']);
      const readsBefore = await taskReads();
      const wait = await server.cli(['task', 'wait', run.stdout.trim()]);
      assert.equal(wait.code, 5, wait.stderr);
      // Once before the end and once after it: it looked after 0.25, 0.5, 1, then every 2 s (6 times here).
      const reads = (await taskReads()) - readsBefore;
      assert.ok(reads >= 1 && reads <= 3, `\`task wait\` read the task ${reads} times`);
    });

    it('`ferry run` prints one line for each ending but success', async () => {
      const failed = await server.cli(['run', 'day2', '-c', 'exit 4']);
      assert.equal(failed.code, 4);
      assert.match(failed.stderr, /\nferry: task t_\w+ failed with exit code 4\n$/);
      const timedOut = await server.cli(['run', 'day2', '--timeout', '1s', '-c', 'sleep 30']);
      assert.equal(timedOut.code, 124);
      assert.match(timedOut.stderr, /\nferry: task t_\w+ timed out after 1s\n$/);
      const run = await server.cli(['run', 'day2', '--detach', '-c', 'sleep 30']);
      const id = run.stdout.trim();
      await server.cli(['task', 'cancel', id]);
      const cancelled = await server.cli(['task', 'wait', id]);
      assert.equal(cancelled.code, 130);
      assert.equal(cancelled.stderr, `ferry: task ${id} was cancelled\n`);
      const aws = await server.cli(['target', 'create', 'day2-aws', '--type', 'aws']);
      assert.equal(aws.code, 0, aws.stderr);
      const error = await server.cli(['run', 'day2-aws', '-c', 'true']);
      assert.equal(error.code, 70);
      assert.match(error.stderr, /\nferry: task t_\w+ could not start: target day2-aws \(aws\) needs secrets AWS_ACCESS_KEY_ID/);
      const ok = await server.cli(['run', 'day2', '-c', 'echo fine']);
      assert.equal(ok.code, 0);
      assert.match(ok.stderr, /^ferry: task t_\w+ on day2\n$/, 'no summary for a success');
    });

    it('an OOM kill says so, with the limit, in the summary and in `task show`', async () => {
      const r = await server.cli(['run', 'small', '-c', 'head -c 600M /dev/zero | tail']);
      assert.equal(r.code, 137);
      assert.match(r.stderr, /\nferry: task t_\w+ was killed: out of memory \(limit 64 MiB\)\n$/);
      const id = /task (t_\w+)/.exec(r.stderr)?.[1] ?? '';
      const task = await taskShow(server, id);
      assert.equal(task.status, 'failed');
      assert.equal(task.reason, 'out of memory (limit 64 MiB)');
      const shown = await server.cli(['task', 'show', id]);
      assert.match(shown.stdout, /Reason: +out of memory \(limit 64 MiB\)/);
      const fine = await server.cli(['run', 'small', '-c', 'exit 137']);
      assert.equal(fine.code, 137);
      assert.match(fine.stderr, /failed with exit code 137\n$/, 'a task that exits 137 by itself is not called out of memory');
    });
  });

  describe("the CLI's own failures", () => {
    it('exit 255 with one line: unknown flags, refused requests, missing or bad files, bad URLs, refused connections', async () => {
      const dir = tempDir('day2-files');
      writeFileSync(join(dir, 'bad.pem'), 'not a certificate\n');
      const cases: [string[], RegExp][] = [
        [['run', 'day2', '--bogus'], /unknown option '--bogus'/],
        [['task', 'show', 't_0000000000nothere'], /FERRY_E_TASK_NOT_FOUND/],
        [['run', 'day2', '-f', join(dir, 'missing.sh')], /^ferry: Cannot read -f .*missing\.sh: no such file\.\n$/],
        [['login', '--server', server.url, '--token', 'x', '--ca-file', 'missing.pem'], /^ferry: Cannot read --ca-file missing\.pem: no such file\.\n$/],
        [['login', '--server', server.url, '--token', 'x', '--ca-file', join(dir, 'bad.pem')], /^ferry: --ca-file .*bad\.pem is not a PEM certificate/],
        [['login', '--server', 'not a url', '--token', 'x', '--ca-file', 'x.pem'], /^ferry: --server not a url is not a URL/],
        [['login', '--server', 'https://127.0.0.1:1', '--token', 'x', '--ca-fingerprint', 'ab'.repeat(32)], /connection refused.*\(FERRY_E_NETWORK\)\n$/],
      ];
      for (const [args, message] of cases) {
        const r = await runCli(args, server.env);
        assert.equal(r.code, CLI_FAILURE, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.doesNotMatch(r.stderr, NO_STACK, `${args.join(' ')}: no stack trace`);
      }
    });

    it('limit flags are checked in the units the user wrote, and sizes are shown in units', async () => {
      const cases: [string[], RegExp][] = [
        [['--memory', '512'], /^ferry: --memory 512 is 512 bytes; the minimum is 16 MiB \(write e\.g\. --memory 512MiB\)\.\n$/],
        [['--max-output', '100'], /--max-output 100 is 100 bytes; the minimum is 1 KiB/],
        [['--timeout', '30d'], /--timeout 30d is above the maximum of 7d/],
        [['--max-processes', '2'], /--max-processes 2; the minimum is 8 processes/],
        [['--memory', 'lots'], /--memory lots is not understood; write e\.g\. --memory 512MiB/],
        [['--type', 'bogus'], /--type: /],
      ];
      for (const [flags, message] of cases) {
        const args = flags[0] === '--type' ? ['target', 'create', 'never', ...flags] : ['target', 'create', 'never', '--type', 'shell', ...flags];
        const r = await server.cli(args);
        assert.equal(r.code, CLI_FAILURE, flags.join(' '));
        assert.match(r.stderr, message);
        assert.doesNotMatch(r.stderr, /Too small|expected number/);
      }
      const overServer = await server.cli(['run', 'day2', '--timeout', '2d', '-c', 'true']);
      assert.equal(overServer.code, CLI_FAILURE);
      assert.match(overServer.stderr, /^ferry: --timeout 2d is above this server's maximum of 1d\.\n$/);
      const limit = await server.cli(['task', 'list', '--limit', '0']);
      assert.equal(limit.code, CLI_FAILURE);
      assert.match(limit.stderr, /^ferry: --limit 0: give a whole number from 1 to 1000\.\n$/);
      const shown = await server.cli(['target', 'show', 'small']);
      assert.match(shown.stdout, /Memory: +64 MiB\n/);
      assert.match(shown.stdout, /Max output: +\d+(\.\d)? [KMG]iB\n/);
    });
  });

  it('a non-root agent refuses to run unsandboxed unless given --executor process, naming the cause', async () => {
    const dir = tempDir('day2-nobody');
    chmodSync(dir, 0o755);
    chownSync(dir, 65534, 65534);
    const token = await server.joinToken(['--hosted']);
    const asNobody = (extra: string[]) =>
      spawn(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          '--',
          process.execPath,
          CLI,
          'agent',
          'start',
          '--join-token',
          token,
          '--data-dir',
          join(dir, 'a'),
          ...extra,
        ],
        { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
      );
    const refused = asNobody([]);
    const err: Buffer[] = [];
    refused.stderr.on('data', (d: Buffer) => err.push(d));
    const code = await new Promise((r) => refused.once('close', r));
    const stderr = Buffer.concat(err).toString();
    assert.equal(code, CLI_FAILURE, stderr);
    assert.match(stderr, /^ferry: the sandbox cannot run here: the bubblewrap sandbox needs root, and this agent runs as uid 65534/);
    assert.match(stderr, /--executor process/);
    assert.doesNotMatch(stderr, NO_STACK);
    // Chosen knowingly, it starts (and says what it gives up).
    const chosen = asNobody(['--executor', 'process']);
    const chosenErr: Buffer[] = [];
    chosen.stderr.on('data', (d: Buffer) => chosenErr.push(d));
    try {
      await waitFor(() => Buffer.concat(chosenErr).toString().includes('"agent started"'), 20_000, 'the agent as nobody with --executor process');
      assert.match(Buffer.concat(chosenErr).toString(), /no filesystem, process or network isolation/);
    } finally {
      chosen.kill('SIGKILL');
      await new Promise((r) => chosen.once('close', r));
    }
  });
});
