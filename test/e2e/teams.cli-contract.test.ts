/**
 * The teams commands, checked from outside as a user runs them: `ferry org create` and
 * `ferry token create` print the new token as their last line; groups and grants decide who may
 * run on a target, and a refusal says which role or grant is missing; another organization's
 * admin is told the target does not exist. Tasks run for real on the embedded hosted agent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFerryServer, waitForAgents, type CliResult, type ServerHandle } from '../helpers/ferry.js';

const lastLine = (r: CliResult): string => r.stdout.trimEnd().split('\n').at(-1) ?? '';

describe('teams: the CLI contract', () => {
  let server: ServerHandle;
  /** Runs the CLI as the holder of `token` (the login's server and CA, another token). */
  const as = (token: string, args: readonly string[]): Promise<CliResult> => server.cli(args, { env: { FERRY_TOKEN: token } });
  const ok = async (args: readonly string[], token?: string): Promise<CliResult> => {
    const r = token ? await as(token, args) : await server.cli(args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const tokens: Record<string, string> = {};

  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
  });
  after(async () => {
    await server?.stop();
  });

  it('org create and token create print the token as the last line', async () => {
    tokens.acme = lastLine(await ok(['org', 'create', 'acme']));
    assert.match(tokens.acme, /^ferry_u_[A-Za-z0-9_-]{43}$/);
    for (const role of ['viewer', 'operator', 'admin']) {
      tokens[role] = lastLine(await ok(['token', 'create', `ci-${role}`, '--role', role]));
      assert.match(tokens[role], /^ferry_u_[A-Za-z0-9_-]{43}$/, role);
    }
    const mine = lastLine(await ok(['token', 'create', 'laptop', '--personal', '--expires', '30d']));
    assert.match(mine, /^ferry_u_/);
    const list = JSON.parse((await ok(['token', 'list', '--json'])).stdout) as { name: string; principal: string; role: string; expiresAt: string | null }[];
    const laptop = list.find((t) => t.name === 'laptop');
    assert.equal(laptop?.principal, 'admin');
    assert.ok(laptop?.expiresAt);
    assert.equal(list.find((t) => t.name === 'ci-viewer')?.role, 'viewer');
    // The new organization's admin works, and sees only its own organization.
    assert.deepEqual(
      (JSON.parse((await ok(['org', 'list', '--json'], tokens.acme)).stdout) as { name: string }[]).map((o) => o.name),
      ['acme'],
    );
  });

  it('groups and grants decide who runs; refusals name the missing role', async () => {
    await ok(['target', 'create', 'db1', '--type', 'shell']);
    await ok(['group', 'create', 'readers']);
    await ok(['group', 'add', 'readers', 'ci-viewer']);
    await ok(['group', 'create', 'ops']);
    await ok(['group', 'add', 'ops', 'ci-operator']);
    await ok(['target', 'grant', 'db1', '--group', 'readers', '--role', 'viewer']);

    const viewer = await as(tokens.viewer!, ['run', 'db1', '-c', 'echo hi']);
    assert.notEqual(viewer.code, 0);
    assert.match(viewer.stderr, /running tasks on db1 needs the operator role through a group granted on db1; your token has viewer/);

    const ungranted = await as(tokens.operator!, ['run', 'db1', '-c', 'echo hi']);
    assert.notEqual(ungranted.code, 0, 'an operator without a grant cannot run');
    assert.match(ungranted.stderr, /No target named "db1"/);

    await ok(['target', 'grant', 'db1', '--group', 'ops', '--role', 'operator']);
    const granted = await as(tokens.operator!, ['run', 'db1', '-c', 'echo ran-by-operator']);
    assert.equal(granted.code, 0, granted.stderr);
    assert.match(granted.stdout, /ran-by-operator/);

    const groups = JSON.parse((await ok(['group', 'list', '--json'])).stdout) as {
      name: string;
      members: string[];
      grants: { target: string; role: string }[];
    }[];
    const ops = groups.find((g) => g.name === 'ops');
    assert.deepEqual([ops?.members, ops?.grants], [['ci-operator'], [{ target: 'db1', role: 'operator' }]]);

    await ok(['target', 'revoke-grant', 'db1', '--group', 'ops']);
    const revoked = await as(tokens.operator!, ['run', 'db1', '-c', 'echo hi']);
    assert.notEqual(revoked.code, 0, 'and cannot once the grant is gone');

    // Taken out of the group, a member loses what the group's grant gave it.
    await ok(['target', 'grant', 'db1', '--group', 'ops', '--role', 'operator']);
    assert.match((await ok(['group', 'remove', 'ops', 'ci-operator'])).stdout, /Group ops: no members/);
    const removed = await as(tokens.operator!, ['run', 'db1', '-c', 'echo hi']);
    assert.notEqual(removed.code, 0, 'no longer a member, no longer granted');
    const entries = JSON.parse((await ok(['audit', 'list', '--action', 'group.member', '--target', 'ops', '--json'])).stdout) as { action: string }[];
    assert.deepEqual(entries, [], '--target names a target, not a group');
    const memberships = JSON.parse((await ok(['audit', 'list', '--action', 'group.member.', '--json'])).stdout) as { action: string; subject: string }[];
    assert.deepEqual(
      memberships.filter((e) => e.subject === 'ops').map((e) => e.action),
      ['group.member.remove', 'group.member.add'],
    );
  });

  it("another organization's admin gets not found for the target", async () => {
    const other = await as(tokens.acme!, ['run', 'db1', '-c', 'echo hi']);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /No target named "db1".*FERRY_E_TARGET_NOT_FOUND/);
    const show = await as(tokens.acme!, ['target', 'show', 'db1']);
    assert.match(show.stderr, /FERRY_E_TARGET_NOT_FOUND/);
  });

  it('a revoked token stops working at once; a Ferry token in task output is redacted', async () => {
    const leaked = await as(tokens.admin!, ['run', 'db1', '-c', `echo "my token is ${tokens.viewer}"`]);
    assert.equal(leaked.code, 0, leaked.stderr);
    assert.ok(!leaked.stdout.includes(tokens.viewer!), 'the token does not come back');
    assert.match(leaked.stdout, /my token is \[REDACTED:ferry-token\]/);

    await ok(['token', 'revoke', 'ci-viewer']);
    const after = await as(tokens.viewer!, ['target', 'list']);
    assert.notEqual(after.code, 0);
    assert.match(after.stderr, /FERRY_E_TOKEN_REVOKED/);
  });
});
