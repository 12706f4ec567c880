/**
 * Property-based requests over every route of the route table against one running server:
 * random JSON bodies and mutations of a valid one, random path parameters (dot segments, NUL,
 * very long, unicode) and query strings, as the admin, with no token and with an agent's token.
 * No answer may be a 5xx, every error answer has the registry's body shape with a registered
 * code, and the server still answers `/v1/health` at the end. The per-address limits on failed
 * attempts and per token are off so that the fuzz reaches the handlers instead of the 429 of a used-up bucket.
 * Seeds are printed on failure by fast-check; FUZZ_SEED replays one, FUZZ_RUNS runs more per route.
 * Every request has its own connection: with keep-alive, a socket the server closes after an
 * error answer races the next request on it (ECONNRESET on the client, not a server fault).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, Routes, decodeJoinToken, type RouteDef } from '@ferry/protocol';
import { api, startFerryServer, type ServerHandle } from '../helpers/ferry.js';

const RUNS_PER_ROUTE = Number(process.env.FUZZ_RUNS ?? 30);
const SEED = process.env.FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED);

interface Answer {
  status: number;
  body: string;
}

/** A raw request: the path goes on the wire as written (no URL normalisation of `..`). */
function send(server: ServerHandle, agent: Agent, method: string, path: string, token: string | null, body?: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${path}: no answer in 15 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Valid-looking bodies to mutate, for the routes whose shape matters most; others start from {}. */
const SAMPLES: Partial<Record<keyof typeof Routes, Record<string, unknown>>> = {
  createTarget: { name: 'fuzz-target', type: 'shell' },
  updateTarget: { redact: 'all' },
  createTask: { target: 'pool', script: 'true' },
  setSecret: { sealed: 'AAAA', keyId: 'k1' },
  createJoinToken: { hosted: true },
  createOrg: { name: 'fuzz-org' },
  createToken: { name: 'fuzz', role: 'viewer' },
  createGroup: { name: 'fuzz-group' },
  inviteUser: { email: 'fuzz@example.com', role: 'viewer' },
  signIn: { email: 'nobody@example.com', password: 'not-the-password' },
  acceptInvitation: { invitation: 'x', password: 'long enough password' },
  getInvitation: { invitation: 'x' },
  registerAgent: { joinSecret: 'x', name: 'fuzz', hostname: 'h', version: '0', platform: 'linux', concurrency: 1 },
  poll: { free: 1, running: [], waitSeconds: 0 },
  heartbeat: { running: [] },
  finishTask: { status: 'succeeded', exitCode: 0 },
  createWebhook: { url: 'https://127.0.0.1:1/hook', events: ['task.finished'] },
  ssoStart: { org: 'default' },
};

// Node refuses to send raw spaces, NUL or non-ASCII in a path, so those go percent-encoded; `..` and a lone `%` go raw.
const weird = fc.constantFrom('..', '%2e%2e', '%00', '%2F', '%ff', 'x'.repeat(5000), encodeURIComponent('é😀漢'), '%', '%20', '~', 'null', '-1', '0');
const pathParam = fc.oneof(weird, fc.string({ maxLength: 40 }).map(encodeURIComponent), fc.uuid());
const queryString = fc.oneof(
  fc.constant(''),
  fc
    .dictionary(
      fc.string({ maxLength: 10 }),
      fc.oneof(
        fc.string({ maxLength: 20 }),
        weird.filter((w) => w.length < 100),
      ),
      { maxKeys: 5 },
    )
    .map((d) => `?${new URLSearchParams(d).toString()}`),
  fc.constantFrom('?limit=-1', '?limit=1e309', '?offset=NaN', '?wait=99999999999', '?%zz', '?a=1&a=2'),
);

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

/** A body: random JSON, or a sample with one field dropped, of a wrong type, huge, with control characters, or deep. */
function bodyArb(sample: Record<string, unknown>): fc.Arbitrary<string | undefined> {
  const keys = Object.keys(sample);
  const key = keys.length ? fc.constantFrom(...keys) : fc.constant('extra');
  const mutated = fc.oneof(
    key.map((k) => Object.fromEntries(Object.entries(sample).filter(([name]) => name !== k))),
    fc.tuple(key, fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer()), fc.object())).map(([k, v]) => ({ ...sample, [k]: v })),
    key.map((k) => ({ ...sample, [k]: 'x'.repeat(200_000) })),
    fc
      .tuple(key, fc.string({ unit: fc.integer({ min: 0, max: 31 }).map((c) => String.fromCharCode(c)), maxLength: 30 }))
      .map(([k, v]) => ({ ...sample, [k]: v })),
    fc.tuple(key, fc.integer({ min: 50, max: 3000 })).map(([k, d]) => ({ ...sample, [k]: nested(d) })),
  );
  return fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    mutated.map((v) => JSON.stringify(v)),
    fc.constantFrom('{', '', 'null', '[]', '"\u0000"', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}'),
    fc.constant(undefined),
  );
}

function fillPath(def: RouteDef, params: string[]): string {
  let i = 0;
  return def.path.replace(/:([A-Za-z]+)/g, () => params[i++] ?? 'x');
}

function checkAnswer(what: string, a: Answer): void {
  assert.ok(a.status < 500, `${what} → ${a.status} ${a.body.slice(0, 500)}`);
  if (a.status < 400) return;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(a.body) as Record<string, unknown>;
  } catch {
    assert.fail(`${what} → ${a.status} with a body that is not JSON: ${a.body.slice(0, 300)}`);
  }
  assert.equal(typeof parsed.message, 'string', `${what}: ${a.body.slice(0, 300)}`);
  assert.equal(typeof parsed.error, 'string', `${what}: ${a.body.slice(0, 300)}`);
  assert.equal(parsed.statusCode, a.status, `${what}: ${a.body.slice(0, 300)}`);
  const code = String(parsed.code);
  assert.ok(Object.hasOwn(ErrorCodes, code), `${what}: unregistered code ${code}`);
  assert.equal(ErrorCodes[code as keyof typeof ErrorCodes].status, a.status, `${what}: ${code} with status ${a.status}`);
}

describe('API fuzz: every route, random input, three callers', { timeout: 180_000 }, () => {
  let server: ServerHandle;
  let agentToken: string;
  let keepAlive: Agent;

  before(async () => {
    server = await startFerryServer({
      embeddedAgent: false,
      env: {
        FERRY_AUTH_FAILURES_PER_MINUTE: '0',
        FERRY_FAILED_REGISTRATIONS_PER_MINUTE: '0',
        FERRY_FAILED_SIGN_INS_PER_MINUTE: '0',
        FERRY_REQUESTS_PER_TOKEN_PER_MINUTE: '0',
      },
    });
    assert.equal((await api(server, 'POST', '/v1/targets', { body: JSON.stringify({ name: 'pool', type: 'shell' }) })).status, 201);
    const joinToken = decodeJoinToken(await server.joinToken(['--hosted']));
    const reg = await api(server, 'POST', '/v1/agents/register', {
      token: null,
      body: JSON.stringify({ joinSecret: joinToken?.secret, name: 'fuzz-agent', hostname: 'h', version: '0', platform: 'linux', concurrency: 1 }),
    });
    assert.equal(reg.status, 201, reg.body.toString());
    agentToken = String(reg.json.token);
    keepAlive = new Agent({ ca: readFileSync(join(server.dataDir, 'ca.pem'), 'utf8'), keepAlive: false });
  });

  after(async () => {
    keepAlive?.destroy();
    await server?.stop();
  });

  it('answers every route with a 4xx of the registry or a success, never a 5xx, and stays healthy', async () => {
    const started = Date.now();
    let requests = 0;
    const entries = Object.entries(Routes) as [keyof typeof Routes, RouteDef][];
    for (const [index, [name, def]] of entries.entries()) {
      const paramCount = (def.path.match(/:[A-Za-z]+/g) ?? []).length;
      const caller = fc.constantFrom<string | null>(server.adminToken, null, agentToken, 'ferry_u_not-a-real-token');
      const body = def.body === undefined || def.body === 'frames' ? fc.constant(undefined) : bodyArb(SAMPLES[name] ?? {});
      await fc.assert(
        fc.asyncProperty(fc.array(pathParam, { minLength: paramCount, maxLength: paramCount }), queryString, body, caller, async (params, query, b, token) => {
          const path = fillPath(def, params) + query;
          const what = `${name}: ${def.method} ${path.slice(0, 200)} as ${token === server.adminToken ? 'admin' : token === agentToken ? 'agent' : String(token)}`;
          requests++;
          const answer = await send(server, keepAlive, def.method, path, token, b).catch((err: unknown) => {
            throw new Error(`${what}: ${String(err)}`);
          });
          checkAnswer(what, answer);
        }),
        { numRuns: RUNS_PER_ROUTE, seed: SEED + index, endOnFailure: true, includeErrorInReport: true },
      );
    }
    const health = await api(server, 'GET', '/v1/health', { token: null });
    assert.equal(health.status, 200, health.body.toString());
    // The admin still works after the fuzz: its token was not revoked, the pool target not deleted by accident.
    assert.equal((await api(server, 'GET', '/v1/targets')).status, 200);
    console.log(`fuzz: ${requests} requests over ${entries.length} routes in ${Date.now() - started} ms (seed ${SEED})`);
  });
});
