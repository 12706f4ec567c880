/**
 * Write-only secrets. Secrets are sealed by the CLI, opened only by the agent, masked
 * in output in every common form, and the plaintext appears nowhere on the control plane: not in
 * API responses, stored output, the server's (and embedded agent's) log, or the database's bytes.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sealSecret } from '@ferry/client';
import { api, startFerryServer, taskShow, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

const SECRETS: Record<string, string> = {
  DB_PASSWORD: 'hunter2-Correct-Horse-Battery-9',
  MULTI_LINE: 'first-line-of-secret\nsecond-line-of-secret',
  JSON_SECRET: 'quote"and\\backslash-secret',
  SPACED_SECRET: "it's a spaced secret value",
};
const SHORT = { name: 'SHORTY', value: 'ab1' };

/** Every form the issue names, computed here independently of the masker. */
function forms(value: string): string[] {
  const out = new Set<string>([value]);
  for (const line of value.split('\n')) if (line.length >= 6) out.add(line);
  out.add(value.replace(/\s+/g, ' '));
  out.add(encodeURIComponent(value));
  out.add(JSON.stringify(value).slice(1, -1));
  out.add(value.replace(/([^A-Za-z0-9_./,:@+-])/g, '\\$1')); // printf %q
  for (const pad of ['', 'x', 'xy']) {
    const b64 = Buffer.from(pad + value).toString('base64');
    const stable = b64.slice(Math.ceil((pad.length * 4) / 3) + 1, -4);
    out.add(stable);
    out.add(stable.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...out].filter((f) => f.length >= 8);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('write-only secrets, end to end', () => {
  let server: ServerHandle;
  const seen: string[] = [];
  const record = (text: string): string => {
    seen.push(text);
    return text;
  };

  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
    for (const name of ['vault', 'other']) assert.equal((await server.cli(['target', 'create', name, '--type', 'shell'])).code, 0);
    for (const [name, value] of Object.entries(SECRETS)) {
      const r = await server.cli(['secret', 'set', 'vault', name], { input: `${value}\n` });
      assert.equal(r.code, 0, r.stderr);
      record(r.stdout + r.stderr);
    }
    const short = await server.cli(['secret', 'set', 'vault', SHORT.name], { input: SHORT.value });
    assert.match(short.stderr, /shorter than 6 characters, so it will NOT be masked/);
  });
  after(async () => server?.stop());

  it('lists names, who and when; never a value', async () => {
    const r = await server.cli(['secret', 'list', 'vault', '--json']);
    record(r.stdout);
    const list = JSON.parse(r.stdout) as { name: string; setBy: string; setAt: string }[];
    assert.deepEqual(list.map((s) => s.name).sort(), [...Object.keys(SECRETS), SHORT.name].sort());
    for (const s of list) assert.deepEqual(Object.keys(s).sort(), ['kid', 'name', 'setAt', 'setBy'], 'names, who and when: no value, no length');
  });

  it('gives the task its secrets and masks every form in its output', async () => {
    const script = [
      'echo "raw: $DB_PASSWORD"',
      'printf %s "$DB_PASSWORD"; echo',
      'printf %s "${DB_PASSWORD:0:7}"; sleep 0.4; printf %s "${DB_PASSWORD:7}"; echo " <- split across writes"',
      'echo "to stderr: $DB_PASSWORD" >&2; echo "interleaved $DB_PASSWORD"; echo "$JSON_SECRET" >&2',
      'for pad in "" x xy; do printf %s "$pad$DB_PASSWORD" | base64 -w0; echo; printf %s "$pad$SPACED_SECRET" | base64 -w0 | tr "+/" "-_"; echo; done',
      'echo "$MULTI_LINE"; echo "${MULTI_LINE%%$\'\\n\'*}"; echo $MULTI_LINE',
      'urlencode() { local s="$1" i c; for ((i=0; i<${#s}; i++)); do c=${s:i:1}; case "$c" in [a-zA-Z0-9.~_!\\(\\)*-]|"' +
        "'" +
        '") printf %s "$c";; *) printf "%%%02X" "\'$c";; esac; done; echo; }',
      'urlencode "$SPACED_SECRET"',
      'printf %s "$JSON_SECRET" | sed \'s/\\\\/\\\\\\\\/g; s/"/\\\\"/g\'; echo',
      'printf "%q\\n" "$SPACED_SECRET"',
      'echo "short: $SHORTY"',
      'echo "length: ${#DB_PASSWORD}"',
    ].join('\n');
    const r = await server.cli(['run', 'vault', '-c', script]);
    record(r.stdout + r.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^raw: \*\*\*$/m);
    assert.match(r.stdout, new RegExp(`length: ${SECRETS.DB_PASSWORD!.length}`), 'the task really had the value');
    assert.match(r.stdout, /short: ab1/, 'short values are not masked');
    assert.match(r.stderr, /secret SHORTY is shorter than 6 characters and is not masked/);
    for (const value of Object.values(SECRETS)) {
      for (const form of forms(value)) assert.ok(!r.stdout.includes(form) && !r.stderr.includes(form), `leaked form ${JSON.stringify(form)}`);
    }
    const id = /task (t_[0-9a-z]+)/.exec(r.stderr)?.[1] ?? '';
    record((await server.cli(['task', 'logs', id])).stdout);
    record(JSON.stringify(await taskShow(server, id)));
  });

  it('redacts token formats on the server before storing (default level: secrets)', async () => {
    const r = await server.cli(['run', 'vault', '-c', 'echo "key AKIAABCDEFGHIJKLMNOP and https://bob:pa55w0rd-xyz@db.example.com/x"']);
    record(r.stdout);
    assert.ok(!r.stdout.includes('AKIAABCDEFGHIJKLMNOP'));
    assert.ok(!r.stdout.includes('pa55w0rd-xyz'));
    assert.match(r.stdout, /REDACTED/);
  });

  it("a value sealed under another name is refused by the agent; another target's key is refused by the server", async () => {
    const key = JSON.parse((await server.cli(['target', 'show', 'vault', '--json'])).stdout) as { id: string; keyId: string };
    const pub = await api(server, 'GET', '/v1/targets/vault/key');
    const binding = { orgId: String(pub.json.orgId), targetId: String(pub.json.targetId) };
    const sealedAsA = await sealSecret(String(pub.json.publicKeyPem), { ...binding, name: 'NAME_A' }, Buffer.from('renamed-secret-value'));
    const put = await api(server, 'PUT', '/v1/targets/vault/secrets/NAME_B', { body: JSON.stringify({ sealed: sealedAsA }) });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    const r = await server.cli(['run', 'vault', '-c', 'echo "$NAME_B"']);
    assert.equal(r.code, 70);
    assert.match(r.stderr, /could not start: secret NAME_B was refused/);
    assert.ok(!r.stdout.includes('renamed-secret-value'));
    await server.cli(['secret', 'delete', 'vault', 'NAME_B']);
    const otherPut = await api(server, 'PUT', '/v1/targets/other/secrets/DB_PASSWORD', { body: JSON.stringify({ sealed: sealedAsA }) });
    assert.equal(otherPut.status, 409);
    assert.equal(otherPut.json.code, 'FERRY_E_KEY_MISMATCH');
    assert.ok(key.keyId);
  });

  it('refuses bad names, reserved names, oversized values and plaintext', async () => {
    const bad = await server.cli(['secret', 'set', 'vault', 'lower_case'], { input: 'whatever-value' });
    assert.equal(bad.code, 255);
    const pub = await api(server, 'GET', '/v1/targets/vault/key');
    const binding = { orgId: String(pub.json.orgId), targetId: String(pub.json.targetId) };
    const reserved = await api(server, 'PUT', '/v1/targets/vault/secrets/PATH', {
      body: JSON.stringify({ sealed: await sealSecret(String(pub.json.publicKeyPem), { ...binding, name: 'PATH' }, Buffer.from('/evil')) }),
    });
    assert.equal(reserved.status, 400);
    const big = await sealSecret(String(pub.json.publicKeyPem), { ...binding, name: 'HUGE' }, Buffer.alloc(49 * 1024, 'a'));
    const tooBig = await api(server, 'PUT', '/v1/targets/vault/secrets/HUGE', { body: JSON.stringify({ sealed: big }) });
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.json.code, 'FERRY_E_SECRET_TOO_LARGE');
    const plain = await api(server, 'PUT', '/v1/targets/vault/secrets/PLAIN', { body: JSON.stringify({ value: 'plaintext-attempt' }) });
    assert.equal(plain.status, 400);
  });

  it('the plaintext is nowhere on the control plane: API responses, stored output, logs, database bytes', async () => {
    for (const path of ['/v1/targets', '/v1/targets/vault', '/v1/targets/vault/secrets', '/v1/tasks?limit=1000', '/v1/audit?limit=10000', '/v1/agents']) {
      record((await api(server, 'GET', path)).body.toString('utf8'));
    }
    const tasks = (await api(server, 'GET', '/v1/tasks?limit=1000')).json.tasks as { id: string }[];
    for (const t of tasks) record((await api(server, 'GET', `/v1/tasks/${t.id}/output`)).body.toString('latin1'));
    const haystacks: [string, Buffer][] = [
      ['API responses and CLI output', Buffer.from(seen.join('\n'))],
      ['server and agent log', Buffer.from(server.proc.stdout + server.proc.stderr)],
      ...filesUnder(server.dataDir).map((f): [string, Buffer] => [f, readFileSync(f)]),
    ];
    assert.ok(haystacks.some(([name]) => name.endsWith('ferry.db')));
    for (const value of Object.values(SECRETS)) {
      for (const form of forms(value)) {
        for (const [name, bytes] of haystacks) assert.ok(!bytes.includes(Buffer.from(form)), `${JSON.stringify(form)} found in ${name}`);
      }
    }
  });
});
