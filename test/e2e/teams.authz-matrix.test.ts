/**
 * The authorization matrix: every route of the protocol's route table (`Routes`), called by
 * every kind of caller, against one real server over HTTPS, must answer the status in MATRIX.
 *
 * A route without a row fails the first test, which says what to add. A row builds its request
 * per caller (`request`), and may first make what that caller's request needs of its own (a
 * fresh target to delete, a fresh task to cancel) so that the calls can run in parallel without
 * one caller's success changing another's answer.
 *
 * The rules the statuses follow (packages/server/src/authz.ts):
 * - no, malformed, expired or revoked token: 401; an agent's token on a user route and a user's
 *   token on an agent route: 401;
 * - another organization's admin: 404 for anything named in this organization (never 403);
 * - a target without a grant to one of the caller's groups is invisible to non-admins: 404;
 *   visible but not enough role: 403; admin-only routes refuse other roles with 403 before
 *   looking anything up (so that says nothing about what exists).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sealSecret } from '@ferry/client';
import { OUTPUT_FRAMES_CONTENT_TYPE, Routes, Streams, decodeJoinToken, encodeFrames, routePath, type RouteDef } from '@ferry/protocol';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, startFerryServer, tempDir, waitFor, type ApiResult, type ServerHandle } from '../helpers/ferry.js';
import {
  TEST_PASSWORD,
  call,
  createOrg,
  createTarget,
  createTask,
  grant,
  group,
  invite,
  person,
  publicKeyPem,
  registerAgent,
  serviceAccount,
} from '../helpers/teams.js';

const CALLERS = [
  'none',
  'malformed',
  'expired',
  'revoked',
  'otherOrgAdmin',
  'viewerNoGrant',
  'viewerGrant',
  'operatorNoGrant',
  'operatorGrant',
  'admin',
  'instanceAdmin',
  'hostedAgent',
  'selfHostedOther',
] as const;
type Caller = (typeof CALLERS)[number];
type Expect = Record<Caller, number>;

/** What the tests set up once: the callers' tokens and the things the requests name. */
interface Fixture {
  server: ServerHandle;
  tokens: Record<Caller, string | null>;
  /** The organization admin (a service account, not an instance administrator) that prepares per-caller things. */
  admin: string;
  t1: { id: string };
  taskId: string;
  webhookId: string;
  /** A local Git repository with one runbook, `mx`, for t1. */
  runbookRepo: string;
  sealedBody: unknown;
  keyPem: string;
  fresh(prefix: string): string;
}

interface Request {
  params?: Record<string, string>;
  query?: Record<string, string>;
  /** JSON, or output frames (bytes). */
  body?: unknown;
}

interface Row {
  request?: (f: Fixture, caller: Caller) => Request | Promise<Request>;
  expect: Expect;
}

// ---- expectation profiles ----

const REFUSED = { none: 401, malformed: 401, expired: 401, revoked: 401 } as const;

function userRoute(s: { other: number; vNo: number; vG: number; oNo: number; oG: number; admin: number; instance?: number }): Expect {
  return {
    ...REFUSED,
    otherOrgAdmin: s.other,
    viewerNoGrant: s.vNo,
    viewerGrant: s.vG,
    operatorNoGrant: s.oNo,
    operatorGrant: s.oG,
    admin: s.admin,
    instanceAdmin: s.instance ?? s.admin,
    hostedAgent: 401,
    selfHostedOther: 401,
  };
}
/** Every user may call it (what it answers is filtered by what each may see). */
const everyUser = (ok: number): Expect => userRoute({ other: ok, vNo: ok, vG: ok, oNo: ok, oG: ok, admin: ok });
/** Admins only; `other`: what another organization's admin gets (its own organization's answer, or 404 for a name of this one). */
const adminOnly = (ok: number, other: number): Expect => userRoute({ other, vNo: 403, vG: 403, oNo: 403, oG: 403, admin: ok });
/** Reading a target of this organization: its grants decide. */
const targetRead = (ok: number): Expect => userRoute({ other: 404, vNo: 404, vG: ok, oNo: 404, oG: ok, admin: ok });
/** Running tasks on a target (or cancelling them). */
const targetRun = (ok: number): Expect => userRoute({ other: 404, vNo: 404, vG: 403, oNo: 404, oG: ok, admin: ok });
const agentRoute = (hosted: number, selfHostedOther: number): Expect => ({
  ...REFUSED,
  otherOrgAdmin: 401,
  viewerNoGrant: 401,
  viewerGrant: 401,
  operatorNoGrant: 401,
  operatorGrant: 401,
  admin: 401,
  instanceAdmin: 401,
  hostedAgent: hosted,
  selfHostedOther,
});
const everyone = (ok: number): Expect => Object.fromEntries(CALLERS.map((c) => [c, ok])) as Expect;

const t1 = { name: 't1' };
const sealedOf = (f: Fixture): { kid: string } => (f.sealedBody as { sealed: { kid: string } }).sealed;
const onTask = (f: Fixture): Request => ({ params: { id: f.taskId } });

/** One row per route of `Routes`. A new route needs one here: see the first test's message. */
const MATRIX: Record<string, Row> = {
  health: { expect: everyone(200) },
  caCertificate: { expect: everyone(200) },
  openApi: { expect: everyone(200) },

  createTarget: { request: (f) => ({ body: { name: f.fresh('ct'), type: 'shell', agent: 'self-hosted' } }), expect: adminOnly(201, 201) },
  listTargets: { expect: everyUser(200) },
  getTarget: { request: () => ({ params: t1 }), expect: targetRead(200) },
  deleteTarget: {
    request: async (f) => {
      const name = f.fresh('del');
      await createTarget(f.server, f.admin, name, 'self-hosted');
      return { params: { name } };
    },
    expect: adminOnly(204, 404),
  },
  updateTarget: { request: () => ({ params: t1, body: { redact: 'secrets' } }), expect: adminOnly(200, 404) },
  getTargetKey: { request: () => ({ params: t1 }), expect: targetRead(200) },
  rotateTargetKey: { request: () => ({ params: t1 }), expect: adminOnly(202, 404) },
  setSecret: { request: (f) => ({ params: { ...t1, secret: 'MATRIX_SECRET' }, body: f.sealedBody }), expect: adminOnly(200, 404) },
  listSecrets: { request: () => ({ params: t1 }), expect: targetRead(200) },
  deleteSecret: {
    request: async (f) => {
      const secret = f
        .fresh('S')
        .toUpperCase()
        .replace(/[^A-Z0-9]/g, '_');
      await call(f.server, f.admin, 'PUT', `/v1/targets/t1/secrets/${secret}`, f.sealedBody, 200);
      return { params: { ...t1, secret } };
    },
    expect: adminOnly(204, 404),
  },

  createTask: { request: () => ({ body: { target: 't1', script: 'true' } }), expect: targetRun(201) },
  listTasks: { expect: everyUser(200) },
  getTask: { request: onTask, expect: targetRead(200) },
  getTaskScript: { request: onTask, expect: targetRead(200) },
  cancelTask: { request: async (f) => ({ params: { id: await createTask(f.server, f.admin, 't1') } }), expect: targetRun(200) },
  readOutput: { request: onTask, expect: targetRead(200) },

  // rv1 (rule any) is granted like t1; each caller reviews a fresh task of the organization's
  // admin: a viewer may see but not run (403), the author itself may not approve (403) but may
  // reject, the instance administrator (an admin of the same organization) may do both.
  approveTask: {
    request: async (f) => ({ params: { id: await createTask(f.server, f.admin, 'rv1') }, body: {} }),
    expect: userRoute({ other: 404, vNo: 404, vG: 403, oNo: 404, oG: 200, admin: 403, instance: 200 }),
  },
  rejectTask: {
    request: async (f) => ({ params: { id: await createTask(f.server, f.admin, 'rv1') }, body: { comment: 'matrix' } }),
    expect: userRoute({ other: 404, vNo: 404, vG: 403, oNo: 404, oG: 200, admin: 200 }),
  },
  listReviews: { expect: everyUser(200) },

  // Webhooks are the organization's: admins only; another organization's admin lists its own,
  // and a webhook of this one is not found for it.
  createWebhook: { request: () => ({ body: { url: 'https://127.0.0.1:9/matrix', events: ['task.finished'] } }), expect: adminOnly(201, 201) },
  listWebhooks: { expect: adminOnly(200, 200) },
  deleteWebhook: {
    request: async (f) => {
      const made = await call(f.server, f.admin, 'POST', '/v1/webhooks', { url: 'https://127.0.0.1:9/matrix', events: ['task.finished'] }, 201);
      return { params: { id: String(made.json.id) } };
    },
    expect: adminOnly(204, 404),
  },
  listWebhookDeliveries: { request: (f) => ({ params: { id: f.webhookId } }), expect: adminOnly(200, 404) },

  // Runbook sources are the organization's (admins); runbooks are read by every member of it, and
  // running one is running a task on its target (t1, the runbook's default).
  addRunbookSource: { request: (f) => ({ body: { name: f.fresh('rs'), git: f.runbookRepo } }), expect: adminOnly(201, 201) },
  listRunbookSources: { expect: everyUser(200) },
  syncRunbookSource: { request: () => ({ params: { name: 'mx-source' } }), expect: adminOnly(200, 404) },
  listRunbooks: { expect: everyUser(200) },
  getRunbook: { request: () => ({ params: { name: 'mx' } }), expect: userRoute({ other: 404, vNo: 200, vG: 200, oNo: 200, oG: 200, admin: 200 }) },
  runRunbook: { request: () => ({ params: { name: 'mx' }, body: {} }), expect: targetRun(201) },

  createJoinToken: { request: () => ({ body: { targets: ['t1'] } }), expect: adminOnly(201, 404) },
  listAgents: { expect: everyUser(200) },
  revokeAgent: {
    request: async (f, caller) => ({ params: { id: (await registerAgent(f.server, f.admin, { targets: ['t1'] }, `revokable-${caller}`)).id } }),
    expect: adminOnly(204, 404),
  },

  // Another organization's admin prunes its own organization's agents.
  pruneAgents: { request: () => ({ body: {} }), expect: adminOnly(200, 200) },

  listAudit: { expect: adminOnly(200, 200) },
  verifyAudit: { expect: adminOnly(200, 200) },

  createOrg: {
    request: (f) => ({ body: { name: f.fresh('org') } }),
    expect: userRoute({ other: 403, vNo: 403, vG: 403, oNo: 403, oG: 403, admin: 403, instance: 201 }),
  },
  listOrgs: { expect: everyUser(200) },
  createToken: {
    request: (f) => ({ body: { name: f.fresh('sa'), role: 'operator' } }),
    // Never above the creator's role: viewers cannot make operators.
    expect: userRoute({ other: 201, vNo: 403, vG: 403, oNo: 201, oG: 201, admin: 201 }),
  },
  listTokens: { expect: everyUser(200) },
  revokeToken: {
    request: async (f) => {
      const name = f.fresh('rv');
      await serviceAccount(f.server, f.admin, name, 'viewer');
      return { params: { token: name } };
    },
    // Not theirs, so not found for everyone but admins.
    expect: userRoute({ other: 404, vNo: 404, vG: 404, oNo: 404, oG: 404, admin: 204 }),
  },
  createGroup: { request: (f) => ({ body: { name: f.fresh('grp') } }), expect: adminOnly(201, 201) },
  listGroups: { expect: adminOnly(200, 200) },
  addGroupMember: { request: () => ({ params: { group: 'g-spare', member: 'm-spare' } }), expect: adminOnly(200, 404) },
  removeGroupMember: {
    request: async (f) => {
      const name = f.fresh('gm');
      await group(f.server, f.admin, name, ['m-spare']);
      return { params: { group: name, member: 'm-spare' } };
    },
    expect: adminOnly(200, 404),
  },
  grantTarget: { request: () => ({ params: { ...t1, group: 'g-spare' }, body: { role: 'viewer' } }), expect: adminOnly(200, 404) },
  revokeGrant: {
    request: async (f) => {
      const name = f.fresh('gr');
      await group(f.server, f.admin, name, []);
      await grant(f.server, f.admin, 't1', name, 'viewer');
      return { params: { ...t1, group: name } };
    },
    expect: adminOnly(204, 404),
  },

  inviteUser: { request: (f) => ({ body: { email: `${f.fresh('inv')}@example.com`, role: 'viewer' } }), expect: adminOnly(201, 201) },
  listUsers: { expect: adminOnly(200, 200) },
  setUserRole: { request: () => ({ params: { email: 'person@example.com' }, body: { role: 'viewer' } }), expect: adminOnly(200, 404) },
  removeUser: {
    request: async (f) => {
      const email = `${f.fresh('rm')}@example.com`;
      await person(f.server, f.admin, email, 'viewer');
      return { params: { email } };
    },
    expect: adminOnly(204, 404),
  },
  // Unauthenticated: an invitation's secret or a password is the credential, whatever token comes along.
  invitationPage: { expect: everyone(200) },
  getInvitation: {
    request: async (f) => ({ body: { invitation: await invite(f.server, f.admin, `${f.fresh('look')}@example.com`, 'viewer') } }),
    expect: everyone(200),
  },
  acceptInvitation: {
    request: async (f) => ({ body: { invitation: await invite(f.server, f.admin, `${f.fresh('acc')}@example.com`, 'viewer'), password: TEST_PASSWORD } }),
    expect: everyone(201),
  },
  signIn: { request: () => ({ body: { email: 'person@example.com', password: TEST_PASSWORD } }), expect: everyone(201) },
  // No provider runs here: an admin's settings get as far as reading the provider (502), others are refused first.
  setSso: {
    request: () => ({ body: { issuer: 'https://127.0.0.1:1', clientId: 'c', clientSecret: 's', domains: ['example.com'] } }),
    expect: userRoute({ other: 502, vNo: 403, vG: 403, oNo: 403, oG: 403, admin: 502 }),
  },
  getSso: { expect: adminOnly(404, 404) },
  ssoStart: { request: () => ({ body: { org: 'default', loopbackPort: 45678, cliChallenge: 'a'.repeat(43) } }), expect: everyone(404) },
  ssoCallback: { request: () => ({ query: { code: 'c', state: 'not-a-state' } }), expect: everyone(400) },
  ssoExchange: { request: () => ({ body: { code: 'not-a-code', verifier: 'v'.repeat(43) } }), expect: everyone(400) },
  ssoDeviceStart: { request: () => ({ body: { org: 'default' } }), expect: everyone(404) },
  ssoDevicePoll: { request: () => ({ body: { handle: 'not-a-handle' } }), expect: everyone(400) },
  // The web UI's session: sign-in is the password's, whatever token comes along; the session
  // routes are any user's own (signing out a bearer token ends no browser session: 204, nothing revoked).
  webSignIn: { request: () => ({ body: { email: 'person@example.com', password: TEST_PASSWORD } }), expect: everyone(201) },
  webLinkSignIn: { request: () => ({ body: { link: 'ferry_u_not-a-sign-in-link' } }), expect: everyone(401) },
  webSession: { expect: everyUser(200) },
  webSignOut: { expect: everyUser(204) },
  webSsoStart: { request: () => ({ body: { org: 'default' } }), expect: everyone(404) },

  registerAgent: {
    request: async (f, caller) => {
      const made = await call(f.server, f.admin, 'POST', '/v1/agent-tokens', { targets: ['t1'] }, 201);
      const secret = decodeJoinToken(String(made.json.token))?.secret;
      return { body: { joinSecret: secret, name: `reg-${caller}`, hostname: 'h', version: '0', platform: 'linux', concurrency: 1 } };
    },
    expect: everyone(201),
  },
  poll: { request: () => ({ body: { free: 1, running: [], waitSeconds: 0 } }), expect: agentRoute(200, 200) },
  // t1 is self-hosted and served by its own agent only: for these agents it does not exist.
  publishKey: { request: (f) => ({ params: { id: f.t1.id }, body: { publicKeyPem: f.keyPem } }), expect: agentRoute(404, 404) },
  // The key routes name t1, which only its own agent serves: for these agents it does not exist.
  handOverKey: {
    request: (f) => ({ params: { id: f.t1.id, agent: 'a_nobody' }, body: { keyId: sealedOf(f).kid, wrapped: sealedOf(f) } }),
    expect: agentRoute(404, 404),
  },
  keyReceived: { request: (f) => ({ params: { id: f.t1.id }, body: { keyId: sealedOf(f).kid } }), expect: agentRoute(404, 404) },
  rotateKey: {
    request: (f) => ({ params: { id: f.t1.id }, body: { oldKeyId: sealedOf(f).kid, publicKeyPem: f.keyPem, secrets: [] } }),
    expect: agentRoute(404, 404),
  },
  heartbeat: { request: () => ({ body: { running: [] } }), expect: agentRoute(200, 200) },
  // The task is queued on t1: no agent holds it.
  confirmStart: { request: onTask, expect: agentRoute(409, 409) },
  uploadOutput: {
    request: (f) => ({ params: { id: f.taskId }, query: { offset: '0' }, body: encodeFrames([{ stream: Streams.stdout, time: 0, data: Buffer.from('x') }]) }),
    expect: agentRoute(409, 409),
  },
  finishTask: {
    request: (f) => ({
      params: { id: f.taskId },
      body: { status: 'succeeded', exitCode: 0, signal: null, reason: null, outputBytes: 0, outputSha256: createHash('sha256').digest('hex') },
    }),
    expect: agentRoute(409, 409),
  },
};

/** What a new route needs, spelled out for the failure message. */
function missingRowHelp(name: string, def: RouteDef): string {
  return (
    `Route ${name} (${def.method} ${def.path}) has no row in the authorization matrix. Add one to MATRIX in test/e2e/teams.authz-matrix.test.ts, e.g.\n` +
    `  ${name}: { request: (f, caller) => ({ params: {…}, body: … }), expect: targetRead(200) },\n` +
    '(profiles: everyone, everyUser, adminOnly(ok, otherOrg), targetRead(ok), targetRun(ok), agentRoute(hosted, selfHostedOther), or userRoute({...}) for anything else)'
  );
}

async function send(f: Fixture, def: RouteDef, caller: Caller, req: Request): Promise<ApiResult> {
  const query = req.query ? `?${new URLSearchParams(req.query).toString()}` : '';
  const path = routePath(def, req.params) + query;
  const token = f.tokens[caller];
  if (req.body instanceof Uint8Array) return api(f.server, def.method, path, { token, body: Buffer.from(req.body), contentType: OUTPUT_FRAMES_CONTENT_TYPE });
  return api(f.server, def.method, path, { token, body: req.body === undefined ? undefined : JSON.stringify(req.body) });
}

/** Runs `jobs` with at most `width` at once. */
async function inParallel<T>(jobs: readonly (() => Promise<T>)[], width: number): Promise<T[]> {
  const results: T[] = new Array<T>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

/** A local repository holding one runbook for t1, made with the system's git. */
function makeRunbookRepo(): string {
  const dir = tempDir('matrix-runbooks');
  const work = join(dir, 'work');
  execFileSync('git', ['init', '--quiet', work]);
  writeFileSync(join(work, 'mx.sh'), '# ---\n# target-type: shell\n# default-target: t1\n# ---\necho mx\n');
  execFileSync('git', ['add', 'mx.sh'], { cwd: work });
  execFileSync('git', ['-c', 'user.name=T', '-c', 'user.email=t@example.com', 'commit', '--quiet', '-m', 'mx'], { cwd: work });
  return work;
}

async function setUp(server: ServerHandle): Promise<Fixture> {
  let n = 0;
  const fresh = (prefix: string): string => `${prefix}-${++n}`;
  const instance = server.adminToken;
  const admin = await serviceAccount(server, instance, 'org-admin', 'admin');
  const target = await createTarget(server, admin, 't1', 'self-hosted');
  await createTarget(server, admin, 'other-target', 'self-hosted');
  // t1's own agent makes its sealing key (and then stays silent: t1's tasks stay queued).
  const t1Agent = await registerAgent(server, admin, { targets: ['t1'] }, 't1-agent');
  const keyPem = publicKeyPem();
  await call(server, t1Agent.token, 'POST', `/v1/agent/targets/${target.id}/key`, { publicKeyPem: keyPem }, 201);
  const key = (await call(server, admin, 'GET', '/v1/targets/t1/key', undefined, 200)).json as { orgId: string; targetId: string };
  const sealed = await sealSecret(keyPem, { orgId: key.orgId, targetId: key.targetId, name: 'MATRIX_SECRET' }, 'not-a-real-secret');

  const tokens: Record<Caller, string | null> = {
    none: null,
    malformed: 'ferry_u_this-is-not-a-token',
    expired: await serviceAccount(server, admin, 'expiring', 'admin', 1),
    revoked: await serviceAccount(server, admin, 'revoked', 'admin'),
    otherOrgAdmin: await createOrg(server, 'other'),
    viewerNoGrant: await serviceAccount(server, admin, 'viewer-no-grant', 'viewer'),
    viewerGrant: await serviceAccount(server, admin, 'viewer-grant', 'viewer'),
    operatorNoGrant: await serviceAccount(server, admin, 'operator-no-grant', 'operator'),
    operatorGrant: await serviceAccount(server, admin, 'operator-grant', 'operator'),
    admin,
    instanceAdmin: instance,
    hostedAgent: (await registerAgent(server, admin, { hosted: true }, 'hosted-agent')).token,
    selfHostedOther: (await registerAgent(server, admin, { targets: ['other-target'] }, 'other-target-agent')).token,
  };
  await call(server, admin, 'DELETE', '/v1/tokens/revoked', undefined, 204);
  // The groups of the callers without grants exist, but have no grant on t1.
  await group(server, admin, 'g-viewers', ['viewer-grant']);
  await group(server, admin, 'g-operators', ['operator-grant']);
  await group(server, admin, 'g-nothing', ['viewer-no-grant', 'operator-no-grant']);
  await grant(server, admin, 't1', 'g-viewers', 'viewer');
  await grant(server, admin, 't1', 'g-operators', 'operator');
  await call(server, admin, 'POST', '/v1/targets', { name: 'rv1', type: 'shell', agent: 'self-hosted', review: { rule: 'any' } }, 201);
  await grant(server, admin, 'rv1', 'g-viewers', 'viewer');
  await grant(server, admin, 'rv1', 'g-operators', 'operator');
  await serviceAccount(server, admin, 'm-spare', 'viewer');
  await group(server, admin, 'g-spare', []);
  await person(server, admin, 'person@example.com', 'viewer');
  const taskId = await createTask(server, admin, 't1');
  const hook = await call(server, admin, 'POST', '/v1/webhooks', { url: 'https://127.0.0.1:9/matrix', events: ['task.finished'] }, 201);
  const runbookRepo = makeRunbookRepo();
  await call(server, admin, 'POST', '/v1/runbook-sources', { name: 'mx-source', git: runbookRepo }, 201);
  const f: Fixture = { server, tokens, admin, t1: target, taskId, webhookId: String(hook.json.id), runbookRepo, sealedBody: { sealed }, keyPem, fresh };
  // The 1-second token has expired by now, or will have in a moment.
  await waitFor(async () => (await api(server, 'GET', '/v1/targets', { token: tokens.expired })).status === 401, 5000, 'the token to expire');
  return f;
}

describe('teams: the authorization matrix (every route × every kind of caller)', () => {
  let server: ServerHandle;
  let f: Fixture;

  before(async () => {
    // The matrix makes hundreds of refused attempts from one address on purpose.
    server = await startFerryServer({
      embeddedAgent: false,
      env: { FERRY_AUTH_FAILURES_PER_MINUTE: '0', FERRY_FAILED_REGISTRATIONS_PER_MINUTE: '0', FERRY_FAILED_SIGN_INS_PER_MINUTE: '0' },
    });
    f = await setUp(server);
  });
  after(async () => {
    await server?.stop();
  });

  it('has a row for every route of the route table, and none for a route that is gone', () => {
    const missing = Object.entries(Routes as Record<string, RouteDef>).filter(([name]) => !(name in MATRIX));
    assert.deepEqual(
      missing.map(([name, def]) => missingRowHelp(name, def)),
      [],
      missing.map(([name, def]) => missingRowHelp(name, def)).join('\n'),
    );
    const stale = Object.keys(MATRIX).filter((name) => !(name in Routes));
    assert.deepEqual(stale, [], `MATRIX has rows for routes the table no longer has: ${stale.join(', ')}; remove them.`);
  });

  it('answers every route × caller with the expected status', async () => {
    const routes = Object.entries(Routes as Record<string, RouteDef>).filter(([name]) => name in MATRIX);
    const jobs = routes.flatMap(([name, def]) =>
      CALLERS.map((caller) => async () => {
        const row = MATRIX[name]!;
        const req = row.request ? await row.request(f, caller) : {};
        const res = await send(f, def, caller, req);
        const expected = row.expect[caller];
        return res.status === expected
          ? undefined
          : `${name} (${def.method} ${def.path}) as ${caller}: expected ${expected}, got ${res.status} ${res.body.toString('utf8', 0, 300)}`;
      }),
    );
    const started = Date.now();
    const wrong = (await inParallel(jobs, 16)).filter((x): x is string => x !== undefined);
    assert.deepEqual(wrong, [], `${wrong.length} of ${jobs.length} answers were not as expected:\n${wrong.join('\n')}`);
    assert.equal(jobs.length, Object.keys(Routes).length * CALLERS.length);
    process.stderr.write(`authorization matrix: ${jobs.length} requests in ${Date.now() - started} ms\n`);
  });

  it('expired and revoked tokens say so, with their own codes', async () => {
    const expired = await api(server, 'GET', '/v1/targets', { token: f.tokens.expired });
    assert.equal(expired.json.code, 'FERRY_E_TOKEN_EXPIRED');
    assert.match(String(expired.json.message), /expired at \d{4}-/);
    const revoked = await api(server, 'GET', '/v1/targets', { token: f.tokens.revoked });
    assert.equal(revoked.json.code, 'FERRY_E_TOKEN_REVOKED');
    assert.equal((await api(server, 'GET', '/v1/targets', { token: f.tokens.malformed })).json.code, 'FERRY_E_UNAUTHENTICATED');
  });

  it("a 403 names the missing role and grant; another organization's admin gets 404, never 403", async () => {
    const viewer = await api(server, 'POST', '/v1/tasks', { token: f.tokens.viewerGrant, body: JSON.stringify({ target: 't1', script: 'true' }) });
    assert.equal(viewer.status, 403);
    assert.equal(viewer.json.message, 'running tasks on t1 needs the operator role through a group granted on t1; your token has viewer.');
    const other = await api(server, 'GET', `/v1/tasks/${f.taskId}`, { token: f.tokens.otherOrgAdmin });
    assert.equal(other.json.code, 'FERRY_E_TASK_NOT_FOUND');
  });

  it('lists show only what the caller may see', async () => {
    const names = async (caller: Caller): Promise<string[]> =>
      ((await call(server, f.tokens[caller], 'GET', '/v1/targets', undefined, 200)).json.targets as { name: string }[]).map((t) => t.name);
    assert.deepEqual(await names('viewerNoGrant'), []);
    assert.deepEqual(await names('viewerGrant'), ['rv1', 't1']);
    assert.ok(!(await names('otherOrgAdmin')).includes('t1'));
    assert.ok((await names('admin')).includes('other-target'));

    const tasks = async (caller: Caller): Promise<string[]> =>
      ((await call(server, f.tokens[caller], 'GET', '/v1/tasks?limit=1000', undefined, 200)).json.tasks as { id: string }[]).map((t) => t.id);
    assert.deepEqual(await tasks('operatorNoGrant'), []);
    assert.ok((await tasks('operatorGrant')).includes(f.taskId));
    assert.ok(!(await tasks('otherOrgAdmin')).includes(f.taskId));
    assert.equal((await api(server, 'GET', '/v1/tasks?target=t1', { token: f.tokens.viewerNoGrant })).status, 404);

    const tokenNames = async (caller: Caller): Promise<string[]> =>
      ((await call(server, f.tokens[caller], 'GET', '/v1/tokens', undefined, 200)).json.tokens as { name: string }[]).map((t) => t.name);
    assert.deepEqual(await tokenNames('viewerGrant'), ['viewer-grant']);
    assert.ok((await tokenNames('admin')).includes('viewer-grant'));
    assert.ok(!(await tokenNames('otherOrgAdmin')).includes('viewer-grant'));

    const orgs = async (caller: Caller): Promise<string[]> =>
      ((await call(server, f.tokens[caller], 'GET', '/v1/orgs', undefined, 200)).json.orgs as { name: string }[]).map((o) => o.name);
    assert.deepEqual(await orgs('otherOrgAdmin'), ['other']);
    assert.deepEqual(await orgs('admin'), ['default']);
    assert.ok((await orgs('instanceAdmin')).includes('other'));
  });

  it("agent and audit lists show only the caller's organization; the shared pool only as existing and online", async () => {
    await registerAgent(server, f.tokens.instanceAdmin!, { hosted: true, shared: true }, 'shared-pool-agent');
    const agents = async (caller: Caller): Promise<{ name: string; hostname: string; runningTasks: number }[]> =>
      (await call(server, f.tokens[caller], 'GET', '/v1/agents', undefined, 200)).json.agents as { name: string; hostname: string; runningTasks: number }[];
    const seenByOther = await agents('otherOrgAdmin');
    assert.deepEqual(
      seenByOther.map((a) => a.name),
      ['shared-pool-agent'],
    );
    assert.equal(seenByOther[0]!.hostname, '(shared hosted pool)');
    assert.ok((await agents('admin')).some((a) => a.name === 'hosted-agent'));
    assert.equal((await agents('instanceAdmin')).find((a) => a.name === 'shared-pool-agent')!.hostname, 'test-host');
    // An organization's admin cannot add to the shared pool.
    const refused = await api(server, 'POST', '/v1/agent-tokens', { token: f.admin, body: JSON.stringify({ hosted: true, shared: true }) });
    assert.equal(refused.status, 403);
    assert.match(String(refused.json.message), /instance administrator/);

    const audit = async (caller: Caller): Promise<{ actor: string; action: string; subject: string }[]> =>
      (await call(server, f.tokens[caller], 'GET', '/v1/audit?limit=10000', undefined, 200)).json.entries as {
        actor: string;
        action: string;
        subject: string;
      }[];
    const otherAudit = await audit('otherOrgAdmin');
    assert.ok(!otherAudit.some((e) => e.subject === 't1' || e.subject === 'other'), 'no entry of another organization or of the instance');
    assert.ok(!(await audit('admin')).some((e) => e.action === 'org.create'), 'org admins do not see the instance entries');
    assert.ok((await audit('instanceAdmin')).some((e) => e.action === 'org.create' && e.subject === 'other'));
  });

  it('every audit entry names the principal and the token used', async () => {
    const made = await call(server, f.tokens.operatorGrant, 'POST', '/v1/tasks', { target: 't1', script: 'true' }, 201);
    const tokens = (await call(server, f.admin, 'GET', '/v1/tokens', undefined, 200)).json.tokens as { id: string; name: string; lastUsedAt: string | null }[];
    const operatorToken = tokens.find((t) => t.name === 'operator-grant')!;
    const entries = (await call(server, f.admin, 'GET', '/v1/audit?limit=10000', undefined, 200)).json.entries as {
      actor: string;
      action: string;
      subject: string;
    }[];
    const entry = entries.find((e) => e.action === 'task.create' && e.subject === made.json.id);
    assert.equal(entry?.actor, `service:operator-grant (token ${operatorToken.id})`);
    assert.ok(operatorToken.lastUsedAt !== null, 'last use is recorded');
    const userEntries = entries.filter((e) => !e.actor.startsWith('agent:') && e.actor !== 'server');
    // A sign-in names the session (personal token) it made; joining names the invitation used.
    for (const e of userEntries) {
      assert.match(e.actor, /^(service|person):\S+ \((?:(?:token|session) k_[0-9a-z]+|invitation i_[0-9a-z]+)\)$/, `${e.action} ${e.subject}: ${e.actor}`);
    }
  });
});
