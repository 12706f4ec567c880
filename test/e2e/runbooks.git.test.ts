/**
 * Runbooks from local bare Git repositories (made here with the system's git): a source syncs
 * the runbooks of a commit; missing, mistyped or disallowed parameters get clear 400s; values
 * such as `'; rm -rf / #` and `$(id)` reach the script as data (environment variables) and show
 * literally, running nothing; the task pins the commit it ran from; an unreachable repository
 * keeps the last good copy and says so. Tasks run for real on the embedded agent.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, startFerryServer, tempDir, waitForAgents, type CliResult, type ServerHandle } from '../helpers/ferry.js';

const GREET = (line: string): string => `#!/bin/sh
# ---
# description: Print who asked for what
# target-type: shell
# default-target: box
# param who: string, required -- whom it is for
# param times: int, default=1
# param env: string, allowed=staging|production, default=staging
# param unit: string, pattern=[a-z][a-z0-9-]* -- a unit name
# ---
printf '${line}\\n' "$who" "$times" "$env"
`;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', ...args], { cwd, encoding: 'utf8' }).trim();
}

describe('runbooks from local bare Git repositories', () => {
  let server: ServerHandle;
  const dir = tempDir('runbook-repos');
  const work = join(dir, 'work');
  const bare = join(dir, 'runbooks.git');
  let first: string;

  const ok = async (args: readonly string[]): Promise<CliResult> => {
    const r = await server.cli(args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const run = (params: Record<string, string>, target?: string): ReturnType<typeof api> =>
    api(server, 'POST', '/v1/runbooks/greet/run', { body: JSON.stringify({ params, ...(target ? { target } : {}) }) });

  before(async () => {
    execFileSync('git', ['init', '--quiet', work]);
    writeFileSync(join(work, 'greet.sh'), GREET('who=[%s] times=%s env=%s'));
    writeFileSync(join(work, 'notes.md'), 'not a runbook: no front matter\n');
    git(work, 'add', '.');
    git(work, 'commit', '--quiet', '-m', 'first');
    execFileSync('git', ['clone', '--quiet', '--bare', work, bare]);
    first = git(bare, 'rev-parse', 'HEAD');
    server = await startFerryServer();
    await waitForAgents(server, 1);
    await ok(['target', 'create', 'box', '--type', 'shell']);
    await ok(['target', 'create', 'pg', '--type', 'postgres']);
  });
  after(async () => {
    await server?.stop();
  });

  it('a source syncs the runbooks of its commit', async () => {
    const added = await ok(['runbook', 'source', 'add', 'ops', '--git', bare]);
    assert.match(added.stdout, new RegExp(`ops: commit ${first.slice(0, 12)}, 1 runbook`));
    const list = JSON.parse((await ok(['runbook', 'list', '--json'])).stdout) as { name: string; commit: string; params: { name: string }[] }[];
    assert.deepEqual(
      list.map((r) => [r.name, r.commit, r.params.map((p) => p.name)]),
      [['greet', first, ['who', 'times', 'env', 'unit']]],
    );
    const shown = await ok(['runbook', 'show', 'greet']);
    assert.match(shown.stdout, /Param env:\s+string, optional, default staging, one of staging\|production/);
  });

  it('missing, mistyped or disallowed parameters get clear 400s', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /missing parameter who \(string: whom it is for\)/],
      [{ who: 'a', times: 'three' }, /parameter times: "three" is not a whole number/],
      [{ who: 'a', env: 'prod' }, /parameter env: "prod" is not one of staging, production/],
      [{ who: 'a', unit: 'Bad Unit' }, /parameter unit: "Bad Unit" does not match \[a-z\]\[a-z0-9-\]\*/],
      [{ who: 'a', colour: 'red' }, /unknown parameter colour \(this runbook takes who, times, env, unit\)/],
    ];
    for (const [params, message] of cases) {
      const res = await run(params);
      assert.equal(res.status, 400, JSON.stringify(params));
      assert.equal(res.json.code, 'FERRY_E_RUNBOOK_PARAMS');
      assert.match(String(res.json.message), message);
    }
    const wrongType = await run({ who: 'a' }, 'pg');
    assert.equal(wrongType.status, 400);
    assert.match(String(wrongType.json.message), /Runbook greet is for shell targets; pg is postgres/);
    const cli = await server.cli(['runbook', 'run', 'greet', '--param', 'times=x']);
    assert.equal(cli.code, 255);
    assert.match(cli.stderr, /missing parameter who.*parameter times: "x" is not a whole number.*FERRY_E_RUNBOOK_PARAMS/);
  });

  it("'; rm -rf / #' and $(id) reach the script as data: shown literally, nothing runs", async () => {
    const hostile = await ok(['runbook', 'run', 'greet', '--param', "who='; rm -rf / #", '--param', 'env=production']);
    assert.match(hostile.stdout, /who=\['; rm -rf \/ #\] times=1 env=production/);
    const subst = await ok(['runbook', 'run', 'greet', '--param', 'who=$(id)`id`']);
    assert.match(subst.stdout, /who=\[\$\(id\)`id`\] times=1 env=staging/);
    assert.doesNotMatch(subst.stdout, /uid=/);
  });

  it('the task pins the commit it ran from; a new commit is used after a sync, old tasks keep theirs', async () => {
    const before = lastTask(await ok(['runbook', 'run', 'greet', '--detach', '--param', 'who=pinned']));
    const shown = JSON.parse((await ok(['task', 'show', before, '--json'])).stdout) as {
      runbook: { commit: string; source: string; file: string; params: Record<string, string> };
    };
    assert.deepEqual(shown.runbook, { source: 'ops', name: 'greet', file: 'greet.sh', commit: first, params: { who: 'pinned', times: '1', env: 'staging' } });

    writeFileSync(join(work, 'greet.sh'), GREET('v2 who=%s times=%s env=%s'));
    git(work, 'commit', '--quiet', '-am', 'second');
    git(work, 'push', '--quiet', bare, 'HEAD');
    const second = git(bare, 'rev-parse', 'HEAD');
    assert.notEqual(second, first);
    assert.match((await ok(['runbook', 'source', 'sync', 'ops'])).stdout, new RegExp(`commit ${second.slice(0, 12)}`));
    const after = await ok(['runbook', 'run', 'greet', '--param', 'who=new']);
    assert.match(after.stdout, /v2 who=new/);
    const old = JSON.parse((await ok(['task', 'show', before, '--json'])).stdout) as { runbook: { commit: string } };
    assert.equal(old.runbook.commit, first);
  });

  it('an unreachable repository keeps the last good copy and says so', async () => {
    const good = (JSON.parse((await ok(['runbook', 'source', 'list', '--json'])).stdout) as { commit: string }[])[0]!.commit;
    renameSync(bare, `${bare}.away`);
    try {
      const synced = JSON.parse((await ok(['runbook', 'source', 'sync', 'ops', '--json'])).stdout) as { commit: string; lastError: string | null };
      assert.equal(synced.commit, good);
      assert.match(synced.lastError ?? '', new RegExp(`sync failed at .*; still using commit ${good}`));
      const stillRuns = await ok(['runbook', 'run', 'greet', '--param', 'who=offline']);
      assert.match(stillRuns.stdout, /who=offline/);
    } finally {
      renameSync(`${bare}.away`, bare);
    }
    const back = JSON.parse((await ok(['runbook', 'source', 'sync', 'ops', '--json'])).stdout) as { lastError: string | null };
    assert.equal(back.lastError, null);
  });

  it('sources and runs are audited', async () => {
    const entries = JSON.parse((await ok(['audit', 'list', '--json', '--limit', '500'])).stdout) as { action: string; details: Record<string, unknown> }[];
    const actions = entries.map((e) => e.action);
    assert.ok(actions.includes('runbook.source_add'));
    assert.ok(actions.includes('runbook.sync'));
    assert.ok(actions.includes('runbook.sync_failed'), 'the failed sync too');
    const created = entries.find((e) => e.action === 'task.create' && e.details.runbook !== undefined);
    assert.deepEqual((created?.details.runbook as { name: string }).name, 'greet');
  });
});

function lastTask(r: CliResult): string {
  return r.stdout.trimEnd().split('\n').at(-1) ?? '';
}
