/**
 * People with local accounts, checked from outside as they use them: an admin invites by
 * e-mail (the URL is the last line), the person accepts with `ferry user accept URL` (a weak
 * password is refused, the invitation works once), signs in with `ferry login --email`, acts as
 * themselves (the audit names their e-mail and token), and is removed, which stops their
 * tokens at once. Sign-in is throttled per address and per account (429 with Retry-After).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, runCli, startFerryServer, tempDir, cleanEnv, type CliResult, type ServerHandle } from '../helpers/ferry.js';
import { call } from '../helpers/teams.js';

const lastLine = (r: CliResult): string => r.stdout.trimEnd().split('\n').at(-1) ?? '';
const GOOD = 'correct-walrus-lantern-42';

describe('people: invitations, local accounts, sign-in', () => {
  let server: ServerHandle;
  /** The person's own CLI settings (another machine, in effect). */
  const personEnv = (): NodeJS.ProcessEnv => ({ ...cleanEnv(), FERRY_CONFIG: join(tempDir('person'), 'config.json') });
  const ok = async (args: readonly string[], env?: NodeJS.ProcessEnv, input?: string): Promise<CliResult> => {
    const r = env ? await runCli(args, env, input) : await server.cli(args, { input: input ?? '' });
    assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const signIn = (email: string, password: string): ReturnType<typeof api> =>
    api(server, 'POST', '/v1/sessions', { token: null, body: JSON.stringify({ email, password }) });

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
  });
  after(async () => {
    await server?.stop();
  });

  it('invite → accept (password policy, once only) → login --email → acts as the person, audited by e-mail and token', async () => {
    const invited = await ok(['user', 'invite', 'Ada@Example.com', '--role', 'admin']);
    const url = lastLine(invited);
    assert.match(url, new RegExp(`^${server.url}/ui/invite#ferry_i_[A-Za-z0-9_-]+$`));

    const env = personEnv();
    const accept = (password: string): Promise<CliResult> => runCli(['user', 'accept', url, '--ca-fingerprint', server.fingerprint], env, `${password}\n`);
    for (const [weak, why] of [
      ['short-one', /at least 12 characters/],
      ['ada@example.com!!', /e-mail address/],
      ['password1234', /common password/],
    ] as const) {
      const refused = await accept(weak);
      assert.notEqual(refused.code, 0, weak);
      assert.match(refused.stderr, why, weak);
    }
    const accepted = await accept(GOOD);
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.match(accepted.stdout, /Welcome, ada@example\.com \(admin of default\)/);
    // Signed in: the person's own settings hold a personal token that acts as them.
    const mine = JSON.parse((await ok(['token', 'list', '--json'], env)).stdout) as { principal: string; principalKind: string; name: string }[];
    assert.ok(mine.some((t) => t.principal === 'ada@example.com' && t.principalKind === 'person' && t.name.startsWith('session-')));

    const replay = await accept(GOOD);
    assert.notEqual(replay.code, 0);
    assert.match(replay.stderr, /unknown, already used or expired/);

    const login = await ok(['login', '--server', server.url, '--email', 'ada@example.com', '--ca-fingerprint', server.fingerprint], env, `${GOOD}\n`);
    assert.match(login.stdout, /Logged in to .* as ada@example\.com \(admin of default/);
    await ok(['group', 'create', 'made-by-ada'], env);

    const wrong = await runCli(
      ['login', '--server', server.url, '--email', 'ada@example.com', '--ca-fingerprint', server.fingerprint],
      env,
      'not-the-password\n',
    );
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /Wrong e-mail address or password/);

    const entries = (await call(server, server.adminToken, 'GET', '/v1/audit?limit=1000', undefined, 200)).json.entries as {
      actor: string;
      action: string;
      subject: string;
    }[];
    const made = entries.find((e) => e.action === 'group.create' && e.subject.includes('made-by-ada'));
    assert.match(made?.actor ?? '', /^person:ada@example\.com \(token k_[0-9a-z]+\)$/);
    assert.match(entries.find((e) => e.action === 'user.sign-in')?.actor ?? '', /^person:ada@example\.com \(session k_[0-9a-z]+\)$/);
    assert.ok(entries.some((e) => e.action === 'user.invite' && e.subject === 'ada@example.com'));
    assert.ok(entries.some((e) => e.action === 'user.join' && e.subject === 'ada@example.com'));
  });

  it('list, set-role and remove; removal stops the person’s tokens and sessions at once', async () => {
    const url = lastLine(await ok(['user', 'invite', 'bob@example.com', '--role', 'operator']));
    const pending = JSON.parse((await ok(['user', 'list', '--json'])).stdout) as { invitations: { email: string }[] };
    assert.ok(pending.invitations.some((i) => i.email === 'bob@example.com'));
    const env = personEnv();
    await ok(['user', 'accept', url, '--ca-fingerprint', server.fingerprint], env, `${GOOD}\n`);
    const second = JSON.parse((await signIn('bob@example.com', GOOD)).body.toString()) as { token: string; role: string };
    assert.equal(second.role, 'operator');

    const refused = await runCli(['user', 'list'], env);
    assert.notEqual(refused.code, 0, 'operators cannot list people');
    assert.match(refused.stderr, /admin role/);

    const changed = JSON.parse((await ok(['user', 'set-role', 'bob@example.com', 'viewer', '--json'])).stdout) as { role: string };
    assert.equal(changed.role, 'viewer');
    const users = JSON.parse((await ok(['user', 'list', '--json'])).stdout) as { users: { email: string; role: string }[] };
    assert.equal(users.users.find((u) => u.email === 'bob@example.com')?.role, 'viewer');

    await ok(['user', 'remove', 'bob@example.com']);
    const after = await runCli(['target', 'list'], env);
    assert.notEqual(after.code, 0);
    assert.match(after.stderr, /revoked/);
    assert.equal((await api(server, 'GET', '/v1/targets', { token: second.token })).status, 401);
    assert.equal((await signIn('bob@example.com', GOOD)).status, 401, 'a removed person cannot sign in');
    const gone = await server.cli(['user', 'remove', 'bob@example.com']);
    assert.match(gone.stderr, /No person bob@example\.com/);
    // The e-mail can be invited again.
    assert.match(lastLine(await ok(['user', 'invite', 'bob@example.com', '--role', 'viewer'])), /#ferry_i_/);
  });

  it('login --token reads the token from stdin or FERRY_TOKEN, never needing the command line', async () => {
    const env = personEnv();
    const piped = await ok(['login', '--server', server.url, '--token', '-', '--ca-fingerprint', server.fingerprint], env, `${server.adminToken}\n`);
    assert.match(piped.stdout, /Logged in/);
    const fromEnv = personEnv();
    await ok(['login', '--server', server.url, '--ca-fingerprint', server.fingerprint], { ...fromEnv, FERRY_TOKEN: server.adminToken });
    await ok(['target', 'list'], { ...fromEnv, FERRY_TOKEN: '' });
    const none = await runCli(['login', '--server', server.url, '--ca-fingerprint', server.fingerprint], personEnv(), '');
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /No token on stdin/);
  });

  it('the invitation URL opens a page that sets the password through the API', async () => {
    const page = await api(server, 'GET', '/v1/invite', { token: null });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /text\/html/);
    assert.match(page.body.toString(), /\/v1\/invitations\/accept/);
    const bad = await api(server, 'POST', '/v1/invitations/lookup', { token: null, body: JSON.stringify({ invitation: 'ferry_i_not-a-real-invitation' }) });
    assert.equal(bad.status, 404);
    assert.equal(bad.json.code, 'FERRY_E_INVITATION_INVALID');
  });
});

describe('people: sign-in is throttled per address and per account', () => {
  let server: ServerHandle;
  before(async () => {
    server = await startFerryServer({ embeddedAgent: false, env: { FERRY_FAILED_SIGN_INS_PER_MINUTE: '8' } });
  });
  after(async () => {
    await server?.stop();
  });
  const attempt = (email: string, password: string): ReturnType<typeof api> =>
    api(server, 'POST', '/v1/sessions', { token: null, body: JSON.stringify({ email, password }) });

  it('five failures lock the account (even the right password) and eight the address, with Retry-After', async () => {
    const url = lastLine(await server.cli(['user', 'invite', 'eve@example.com', '--role', 'viewer']));
    const secret = decodeURIComponent(new URL(url).hash.slice(1));
    await call(server, null, 'POST', '/v1/invitations/accept', { invitation: secret, password: GOOD }, 201);
    assert.equal((await attempt('eve@example.com', GOOD)).status, 201, 'a success gives its attempt back');
    for (let i = 0; i < 5; i++) assert.equal((await attempt('eve@example.com', `wrong-password-${i}`)).status, 401);
    const locked = await attempt('eve@example.com', GOOD);
    assert.equal(locked.status, 429);
    assert.match(String(locked.json.message), /Too many failed sign-ins for eve@example\.com; retry in \d+ s/);
    assert.ok(Number(locked.headers['retry-after']) > 0);
    // Six failures from this address so far: two more for other accounts, then the address is refused.
    for (let i = 0; i < 2; i++) assert.equal((await attempt(`nobody${i}@example.com`, 'whatever-password')).status, 401);
    const byAddress = await attempt('nobody9@example.com', 'whatever-password');
    assert.equal(byAddress.status, 429);
    assert.match(String(byAddress.json.message), /from this address/);
    assert.ok(Number(byAddress.headers['retry-after']) > 0);
  });
});
