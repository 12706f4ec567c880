/**
 * Target settings and `target update`, through the real CLI, server and agents: settings reach
 * tasks in clear (never masked, no "too short to mask" warning), are shown by `target show`,
 * feed a runtime's non-secret parts (a real PostgreSQL), and never share a name with a secret;
 * an update keeps the target's key, secrets and agents.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type DbServer } from '../helpers/databases.js';
import { api, startFerryServer, waitFor, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

interface TargetJson {
  keyId: string | null;
  network: string;
  redact: string;
  agentsOnline: number;
  limits: { memoryBytes: number; timeoutSeconds: number };
  settings: Record<string, string>;
}

async function ok(server: ServerHandle, args: string[], input?: string): Promise<string> {
  const r = await server.cli(args, input === undefined ? undefined : { input });
  assert.equal(r.code, 0, `ferry ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function showJson(server: ServerHandle, name: string): Promise<TargetJson> {
  return JSON.parse(await ok(server, ['target', 'show', name, '--json'])) as TargetJson;
}

/** The target's sealing key id, once its agent has made one. */
function sealingKey(server: ServerHandle, name: string): Promise<string> {
  return waitFor(async () => (await showJson(server, name)).keyId, 20_000, `a sealing key for ${name}`);
}

describe('target settings', () => {
  let server: ServerHandle;
  let pg: DbServer;

  before(async () => {
    // The database listens on loopback, which a hosted target reaches only with --network host.
    [server, pg] = await Promise.all([startFerryServer({ env: { FERRY_ALLOW_HOST_NETWORK: 'true' } }), startPostgres()]);
    await waitForAgents(server, 1);
  });
  after(async () => {
    await Promise.allSettled([server?.stop(), pg?.stop()]);
  });

  it('reach tasks as environment variables, unmasked and without the short-value warning; target show lists them', async () => {
    await ok(server, ['target', 'create', 'plain', '--type', 'shell', '--setting', 'GREETING=hello-plain', '--setting', 'PORTISH=5432', '--setting', 'EQ=a=b']);
    // A secret on the same target: masking is on, and still leaves settings alone.
    await sealingKey(server, 'plain');
    await ok(server, ['secret', 'set', 'plain', 'API_TOKEN'], 'tok-3f9a8b7c6d5e');
    const r = await server.cli(['run', 'plain', '-c', 'echo "$GREETING $PORTISH $EQ"; echo "$API_TOKEN"']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello-plain 5432 a=b\n***\n');
    assert.doesNotMatch(r.stdout + r.stderr, /shorter than/);
    const text = await ok(server, ['target', 'show', 'plain']);
    assert.match(text, /Setting: +EQ=a=b\nSetting: +GREETING=hello-plain\nSetting: +PORTISH=5432\n/);
    assert.deepEqual((await showJson(server, 'plain')).settings, { EQ: 'a=b', GREETING: 'hello-plain', PORTISH: '5432' });
  });

  it('update changes options and settings, and keeps the sealing key, the secrets and the agents', async () => {
    await ok(server, ['target', 'create', 'own', '--type', 'shell', '--agent', 'self-hosted', '--setting', 'COLOR=red', '--setting', 'SIZE=xl']);
    const agent = await server.startAgent(await server.joinToken(['--target', 'own']));
    const keyId = await sealingKey(server, 'own');
    await ok(server, ['secret', 'set', 'own', 'DB_PASSWORD'], 's3cret-value-42');
    const before = await showJson(server, 'own');

    await ok(server, [
      'target',
      'update',
      'own',
      '--setting',
      'COLOR=blue',
      '--unset-setting',
      'SIZE',
      '--memory',
      '256MiB',
      '--redact',
      'all',
      '--timeout',
      '10m',
    ]);
    const after = await showJson(server, 'own');
    assert.equal(after.keyId, keyId);
    assert.deepEqual(after.settings, { COLOR: 'blue' });
    assert.equal(after.limits.memoryBytes, 256 * 1024 * 1024);
    assert.equal(after.limits.timeoutSeconds, 600);
    assert.equal(after.redact, 'all');
    assert.equal(after.network, before.network);
    assert.equal(after.agentsOnline, 1);

    const r = await server.cli(['run', 'own', '-c', 'echo "color=$COLOR size=${SIZE-unset}"; test "$DB_PASSWORD" = s3cret-value-42 && echo secret-ok']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'color=blue size=unset\nsecret-ok\n');
    assert.equal(agent.child.exitCode, null, 'the agent is still running');

    const audit = JSON.parse(await ok(server, ['audit', 'list', '--json'])) as { action: string; subject: string; details: Record<string, unknown> }[];
    const update = audit.find((e) => e.action === 'target.update' && e.subject === 'own');
    assert.ok(update, 'the update is audited');
    assert.deepEqual(update.details.settingsSet, { COLOR: 'blue' });
    assert.deepEqual(update.details.settingsUnset, ['SIZE']);
    assert.deepEqual(update.details.redact, { from: 'secrets', to: 'all' });
    assert.ok(update.details.limits);
    assert.equal(update.details.network, undefined, 'what did not change is not listed');
  });

  it('a postgres target takes PG_HOST, PG_PORT, PG_USER and PG_DB from settings and only PG_PASS from a secret; the results are not masked', async () => {
    await ok(server, [
      'target',
      'create',
      'pgset',
      '--type',
      'postgres',
      '--network',
      'host',
      '--setting',
      `PG_HOST=${pg.host}`,
      '--setting',
      `PG_PORT=${pg.port}`,
      '--setting',
      `PG_USER=${pg.user}`,
      '--setting',
      `PG_DB=${pg.database}`,
    ]);
    await sealingKey(server, 'pgset');
    await ok(server, ['secret', 'set', 'pgset', 'PG_PASS'], pg.password);
    const r = await server.cli(['run', 'pgset', '-c', 'SELECT current_database() AS db, current_user AS who;']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `db\twho\n${pg.database}\t${pg.user}\n`);
    assert.doesNotMatch(r.stdout + r.stderr, /\*\*\*|shorter than/);
  });

  it('a setting and a secret may not share a name, whichever comes second', async () => {
    await ok(server, ['target', 'create', 'clash', '--type', 'shell', '--setting', 'REGION=eu-west-1']);
    await sealingKey(server, 'clash');
    const secretOverSetting = await server.cli(['secret', 'set', 'clash', 'REGION'], { input: 'eu-central-1' });
    assert.notEqual(secretOverSetting.code, 0);
    assert.match(secretOverSetting.stderr, /already has a setting named REGION; a name is either a setting or a secret.*--unset-setting REGION/);
    assert.match(secretOverSetting.stderr, /FERRY_E_SETTING_CONFLICT/);

    await ok(server, ['secret', 'set', 'clash', 'API_KEY'], 'key-0123456789');
    const settingOverSecret = await server.cli(['target', 'update', 'clash', '--setting', 'API_KEY=visible']);
    assert.notEqual(settingOverSecret.code, 0);
    assert.match(settingOverSecret.stderr, /already has a secret named API_KEY;.*ferry secret delete clash API_KEY/);
    assert.deepEqual((await showJson(server, 'clash')).settings, { REGION: 'eu-west-1' }, 'nothing changed');
  });

  it('bad names and values are refused with what is wrong, by the CLI and by the API', async () => {
    const cases: [string[], RegExp][] = [
      [['--setting', 'PATH=/tmp'], /PATH is reserved/],
      [['--setting', 'FERRY_X=1'], /FERRY_X is reserved/],
      [['--setting', '1ABC=1'], /"1ABC" is not a setting name/],
      [['--setting', 'NOEQUALS'], /write it as KEY=VALUE/],
      [['--setting', 'A=line\nbreak'], /control character/],
      [['--setting', `BIG=${'x'.repeat(4097)}`], /over 4096 bytes/],
    ];
    for (const [flags, message] of cases) {
      const r = await server.cli(['target', 'create', 'bad', '--type', 'shell', ...flags]);
      assert.notEqual(r.code, 0, flags.join(' '));
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`S${i}`, 'v']));
    const tooMany = await api(server, 'POST', '/v1/targets', { body: JSON.stringify({ name: 'many', type: 'shell', settings: many }) });
    assert.equal(tooMany.status, 400);
    assert.match(String(tooMany.json.message), /at most 64 settings/);
    const esc = await api(server, 'PATCH', '/v1/targets/plain', { body: JSON.stringify({ settings: { GREETING: 'a\u001b[2Jb' } }) });
    assert.equal(esc.status, 400);
    assert.match(String(esc.json.message), /control character/);
    const nothing = await server.cli(['target', 'update', 'plain']);
    assert.notEqual(nothing.code, 0);
    assert.match(nothing.stderr, /Nothing to change/);
  });
});
