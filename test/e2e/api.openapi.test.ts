/**
 * The OpenAPI document (GET /v1/openapi.json) against the route table and against the server's
 * real answers. Every route of the table is in the document and nothing else is; then one
 * client (the real @ferry/client, over the real pinned transport) walks every route, as a user
 * and as an agent, and every answer it gets, successes and errors alike, is validated with ajv
 * against the document the server served, not against the zod schemas it was made from.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { FerryClient, sealSecret, type FetchLike } from '@ferry/client';
import { pinnedTransport } from '@ferry/client/node';
import { Routes, Streams, decodeJoinToken, encodeFrames, openApiPath, type RouteDef } from '@ferry/protocol';
import { api, startFerryServer, tempDir, type ServerHandle } from '../helpers/ferry.js';

interface Operation {
  operationId: string;
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, object> };
}

/** Finds the operation a request went to, by method and path template. */
function operationFor(doc: Document, method: string, url: string): Operation {
  const path = new URL(url).pathname;
  for (const [template, item] of Object.entries(doc.paths)) {
    const pattern = new RegExp('^' + template.replace(/\{[A-Za-z]+\}/g, '[^/]+') + '$');
    const op = item[method.toLowerCase()];
    if (op && pattern.test(path)) return op;
  }
  throw new Error(`no operation in the document for ${method} ${path}`);
}

describe('the OpenAPI document', () => {
  let server: ServerHandle;
  let doc: Document;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  const validators = new Map<object, ValidateFunction>();
  const validate = (schema: object, value: unknown, what: string): void => {
    let v = validators.get(schema);
    if (!v) validators.set(schema, (v = ajv.compile(schema)));
    if (!v(value)) problems.push(`${what}: ${ajv.errorsText(v.errors)}\n${JSON.stringify(value).slice(0, 500)}`);
  };
  /** Answers that did not match (kept here too: the client would wrap a throw from its fetch). */
  const problems: string[] = [];
  /** Operations whose answers were checked, and with which statuses. */
  const checked = new Map<string, Set<number>>();

  /** A fetch that checks every answer against the document before handing it on. */
  const checkingFetch = (inner: FetchLike): FetchLike => {
    return async (url, init) => {
      const res = await inner(url, init);
      try {
        return await check(res, url, init.method);
      } catch (err) {
        problems.push(String(err));
        throw err;
      }
    };
  };
  const check = async (res: Awaited<ReturnType<FetchLike>>, url: string, method: string): ReturnType<FetchLike> => {
    const body = new Uint8Array(await res.arrayBuffer());
    const op = operationFor(doc, method, url);
    const declared = op.responses[String(res.status)];
    const response = declared ?? op.responses.default;
    assert.ok(response, `${op.operationId}: status ${res.status} not declared`);
    if (!declared) assert.ok(res.status >= 400, `${op.operationId}: success status ${res.status} is not the declared one`);
    const type = (res.headers.get('content-type') ?? '').split(';')[0] ?? '';
    const content = response.content;
    if (!content) assert.equal(body.length, 0, `${op.operationId}: an empty answer has a body`);
    else {
      const media = content[type];
      assert.ok(media, `${op.operationId} ${res.status}: content type ${type} not declared (${Object.keys(content).join(', ')})`);
      if (type === 'application/json') {
        const schema = '$ref' in media.schema ? (doc.components.schemas.Error as object) : media.schema;
        validate(schema, JSON.parse(Buffer.from(body).toString('utf8')), `${op.operationId} ${res.status}`);
      }
    }
    const seen = checked.get(op.operationId) ?? new Set<number>();
    checked.set(op.operationId, seen.add(res.status));
    return {
      status: res.status,
      headers: res.headers,
      arrayBuffer: () => Promise.resolve(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)),
    };
  };

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false });
    const res = await api(server, 'GET', '/v1/openapi.json', { token: null });
    assert.equal(res.status, 200);
    doc = res.json as unknown as Document;
  });
  after(async () => server.stop());

  it('lists every route of the table, with its method and operation id, and nothing else', () => {
    assert.equal(doc.openapi, '3.1.0');
    const table = Object.entries(Routes as Record<string, RouteDef>).map(([name, def]) => `${def.method} ${openApiPath(def.path)} ${name}`);
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`),
    );
    assert.deepEqual([...documented].sort(), [...table].sort());
    assert.ok(doc.paths['/v1/tasks']?.post && doc.paths['/v1/tasks/{id}']?.get, 'the task routes are listed');
  });

  it('every schema in it compiles as JSON Schema 2020-12', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [status, r] of Object.entries(op.responses)) {
          const schema = r.content?.['application/json']?.schema;
          if (schema && !('$ref' in schema)) assert.doesNotThrow(() => ajv.compile(schema), `${method} ${path} ${status}`);
        }
      }
    }
  });

  it("the server's real answers, on every route, as a user and as an agent, match it", async () => {
    const ca = readFileSync(join(server.dataDir, 'ca.pem'), 'utf8');
    const transport = pinnedTransport(ca);
    const client = (token?: string): FerryClient => new FerryClient({ baseUrl: server.url, fetch: checkingFetch(transport.fetch), token });
    const user = client(server.adminToken);
    try {
      await user.call(Routes.health);
      await user.call(Routes.caCertificate);
      await user.call(Routes.openApi);
      const target = await user.call(Routes.createTarget, { body: { name: 'oa', type: 'shell' } });
      await user.call(Routes.listTargets);
      await user.call(Routes.getTarget, { params: { name: 'oa' } });
      await assert.rejects(user.call(Routes.getTarget, { params: { name: 'nope' } }), { code: 'FERRY_E_TARGET_NOT_FOUND' });
      await assert.rejects(user.call(Routes.createTarget, { body: { name: 'oa', type: 'shell' } }), { code: 'FERRY_E_TARGET_EXISTS' });

      // An agent of the hosted pool, by hand: register, publish the target's key.
      const joined = await user.call(Routes.createJoinToken, { body: { hosted: true } });
      const secret = decodeJoinToken(joined.token)?.secret ?? '';
      const registered = await client().call(Routes.registerAgent, {
        body: { joinSecret: secret, name: 'by-hand', hostname: 'test', version: '0.1.0', platform: 'linux', concurrency: 1 },
      });
      const agent = client(registered.token);
      const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
      await agent.call(Routes.publishKey, { params: { id: target.id }, body: { publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() } });
      await user.call(Routes.listAgents);

      const key = await user.call(Routes.getTargetKey, { params: { name: 'oa' } });
      const sealed = await sealSecret(key.publicKeyPem, { orgId: key.orgId, targetId: key.targetId, name: 'TOKEN' }, 'value-for-the-test');
      await user.call(Routes.setSecret, { params: { name: 'oa', secret: 'TOKEN' }, body: { sealed } });
      await user.call(Routes.listSecrets, { params: { name: 'oa' } });
      await user.call(Routes.deleteSecret, { params: { name: 'oa', secret: 'TOKEN' } });

      // A task, run by the hand-made agent: claim, start, upload, heartbeat, finish.
      const task = await user.call(Routes.createTask, { body: { target: 'oa', script: 'echo hi' } });
      await user.call(Routes.getTask, { params: { id: task.id } });
      await user.call(Routes.listTasks, { query: { target: 'oa' } });
      await user.call(Routes.getTaskScript, { params: { id: task.id } });
      const polled = await agent.call(Routes.poll, { body: { free: 1, running: [], waitSeconds: 0 } });
      assert.equal(polled.task?.id, task.id);
      await agent.call(Routes.confirmStart, { params: { id: task.id } });
      const data = new TextEncoder().encode('hi\n');
      await agent.call(Routes.uploadOutput, { params: { id: task.id }, query: { offset: 0 }, body: encodeOne(data) });
      await agent.call(Routes.heartbeat, { body: { running: [task.id] } });
      await user.call(Routes.readOutput, { params: { id: task.id }, query: { offset: 0 } });
      const sha = createHash('sha256').update(data).digest('hex');
      await agent.call(Routes.finishTask, {
        params: { id: task.id },
        body: { status: 'succeeded', exitCode: 0, signal: null, reason: null, outputBytes: data.length, outputSha256: sha },
      });
      await assert.rejects(user.call(Routes.cancelTask, { params: { id: task.id } }), { code: 'FERRY_E_TASK_FINISHED' });
      const queued = await user.call(Routes.createTask, { body: { target: 'oa', script: 'echo never' } });
      await user.call(Routes.cancelTask, { params: { id: queued.id } });

      // Target settings, teams and key custody. Some of the agent's key calls are refused here
      // (nothing to hand over, no rotation asked of it): their error answers are checked too.
      await user.call(Routes.updateTarget, { params: { name: 'oa' }, body: { redact: 'all', settings: { GREETING: 'hello' } } });
      await user.call(Routes.createOrg, { body: { name: 'oa-org' } });
      await user.call(Routes.listOrgs);
      await user.call(Routes.createToken, { body: { name: 'oa-bot', role: 'viewer' } });
      await user.call(Routes.listTokens);
      await user.call(Routes.createGroup, { body: { name: 'oa-group' } });
      await user.call(Routes.addGroupMember, { params: { group: 'oa-group', member: 'oa-bot' } });
      await user.call(Routes.listGroups);
      await user.call(Routes.removeGroupMember, { params: { group: 'oa-group', member: 'oa-bot' } });
      await user.call(Routes.addGroupMember, { params: { group: 'oa-group', member: 'oa-bot' } });
      await user.call(Routes.grantTarget, { params: { name: 'oa', group: 'oa-group' }, body: { role: 'viewer' } });
      await user.call(Routes.revokeGrant, { params: { name: 'oa', group: 'oa-group' } });
      await user.call(Routes.revokeToken, { params: { token: 'oa-bot' } });

      // Reviews: the target's tasks wait for approval by someone other than their author.
      await user.call(Routes.updateTarget, { params: { name: 'oa' }, body: { review: { rule: 'any' } } });
      const reviewer = client((await user.call(Routes.createToken, { body: { name: 'oa-reviewer', role: 'admin' } })).token);
      const pending = await user.call(Routes.createTask, { body: { target: 'oa', script: 'echo reviewed' } });
      await assert.rejects(user.call(Routes.approveTask, { params: { id: pending.id }, body: {} }), { code: 'FERRY_E_SELF_APPROVAL' });
      await reviewer.call(Routes.listReviews);
      await reviewer.call(Routes.approveTask, { params: { id: pending.id }, body: { comment: 'looks right' } });
      await user.call(Routes.cancelTask, { params: { id: pending.id } });
      const refused = await user.call(Routes.createTask, { body: { target: 'oa', script: 'echo never' } });
      await reviewer.call(Routes.rejectTask, { params: { id: refused.id }, body: { comment: 'not today' } });
      await assert.rejects(reviewer.call(Routes.rejectTask, { params: { id: refused.id }, body: { comment: 'again' } }), {
        code: 'FERRY_E_NOT_PENDING_REVIEW',
      });
      await user.call(Routes.updateTarget, { params: { name: 'oa' }, body: { review: { rule: 'none' } } });

      // Runbooks, from a local repository made here.
      const repo = tempDir('openapi-runbooks');
      execFileSync('git', ['init', '--quiet', repo]);
      writeFileSync(join(repo, 'hello.sh'), '# ---\n# target-type: shell\n# default-target: oa\n# param who: string, required\n# ---\necho "hello $who"\n');
      execFileSync('git', ['add', 'hello.sh'], { cwd: repo });
      execFileSync('git', ['-c', 'user.name=T', '-c', 'user.email=t@example.com', 'commit', '--quiet', '-m', 'hello'], { cwd: repo });
      await user.call(Routes.addRunbookSource, { body: { name: 'oa-runbooks', git: repo } });
      await user.call(Routes.listRunbookSources);
      await user.call(Routes.syncRunbookSource, { params: { name: 'oa-runbooks' } });
      await user.call(Routes.listRunbooks);
      await user.call(Routes.getRunbook, { params: { name: 'hello' } });
      await assert.rejects(user.call(Routes.runRunbook, { params: { name: 'hello' }, body: {} }), { code: 'FERRY_E_RUNBOOK_PARAMS' });
      const ran = await user.call(Routes.runRunbook, { params: { name: 'hello' }, body: { params: { who: 'openapi' } } });
      await user.call(Routes.cancelTask, { params: { id: ran.id } });

      // Webhooks (the receiver is never reached: port 9 on loopback refuses).
      const hook = await user.call(Routes.createWebhook, { body: { url: 'https://127.0.0.1:9/hook', events: ['task.finished'], format: 'slack' } });
      await user.call(Routes.listWebhooks);
      await user.call(Routes.listWebhookDeliveries, { params: { id: hook.id } });
      await user.call(Routes.deleteWebhook, { params: { id: hook.id } });
      await assert.rejects(user.call(Routes.listWebhookDeliveries, { params: { id: hook.id } }), { code: 'FERRY_E_WEBHOOK_NOT_FOUND' });
      const refusedOrNot = (): undefined => undefined;
      await agent.call(Routes.handOverKey, { params: { id: target.id, agent: 'a_nobody' }, body: { keyId: key.kid, wrapped: sealed } }).catch(refusedOrNot);
      await agent.call(Routes.keyReceived, { params: { id: target.id }, body: { keyId: key.kid } }).catch(refusedOrNot);
      await user.call(Routes.rotateTargetKey, { params: { name: 'oa' } });
      const { publicKey: next } = generateKeyPairSync('rsa', { modulusLength: 3072 });
      const rotation = { oldKeyId: key.kid, publicKeyPem: next.export({ type: 'spki', format: 'pem' }).toString(), secrets: [] };
      await agent.call(Routes.rotateKey, { params: { id: target.id }, body: rotation }).catch(refusedOrNot);
      await user.call(Routes.pruneAgents, { body: {} });

      // People: invite, the page, look up, accept (once), sign in, list, change the role, remove.
      const invited = await user.call(Routes.inviteUser, { body: { email: 'oa@example.com', role: 'viewer' } });
      const invitation = decodeURIComponent(new URL(invited.url).hash.slice(1));
      await client().call(Routes.invitationPage);
      await client().call(Routes.getInvitation, { body: { invitation } });
      const password = 'correct-walrus-lantern-42';
      await client().call(Routes.acceptInvitation, { body: { invitation, password } });
      await assert.rejects(client().call(Routes.acceptInvitation, { body: { invitation, password } }), { code: 'FERRY_E_INVITATION_INVALID' });
      await assert.rejects(client().call(Routes.signIn, { body: { email: 'oa@example.com', password: 'not-the-password' } }), {
        code: 'FERRY_E_SIGN_IN_FAILED',
      });
      const signed = await client().call(Routes.signIn, { body: { email: 'oa@example.com', password } });
      // The web UI's session routes (the browser's cookie and CSRF flow: web.session-csrf.test.ts).
      const web = await client().call(Routes.webSignIn, { body: { email: 'oa@example.com', password } });
      assert.ok(web.csrfToken);
      await assert.rejects(client().call(Routes.webLinkSignIn, { body: { link: 'ferry_u_not-a-link' } }), { code: 'FERRY_E_SIGN_IN_LINK_INVALID' });
      await client(signed.token).call(Routes.webSession);
      await client(signed.token).call(Routes.webSignOut);
      await assert.rejects(client().call(Routes.webSsoStart, { body: { org: 'default' } }), { code: 'FERRY_E_SSO_NOT_CONFIGURED' });
      await user.call(Routes.listUsers);
      await user.call(Routes.setUserRole, { params: { email: 'oa@example.com' }, body: { role: 'operator' } });
      await user.call(Routes.removeUser, { params: { email: 'oa@example.com' } });

      // Single sign-on, its refusals (people.sso.test.ts signs in through a real provider).
      await assert.rejects(user.call(Routes.getSso), { code: 'FERRY_E_SSO_NOT_CONFIGURED' });
      const sso = { issuer: 'https://127.0.0.1:1', clientId: 'c', clientSecret: 's', domains: ['example.com'] };
      await assert.rejects(user.call(Routes.setSso, { body: sso }), { code: 'FERRY_E_SSO_PROVIDER' });
      const start = { org: 'default', loopbackPort: 45678, cliChallenge: 'a'.repeat(43) };
      await assert.rejects(client().call(Routes.ssoStart, { body: start }), { code: 'FERRY_E_SSO_NOT_CONFIGURED' });
      await assert.rejects(client().call(Routes.ssoCallback, { query: { code: 'c', state: 'not-a-state' } }), { code: 'FERRY_E_SSO_STATE' });
      await assert.rejects(client().call(Routes.ssoExchange, { body: { code: 'not-a-code', verifier: 'v'.repeat(43) } }), { code: 'FERRY_E_SSO_STATE' });
      await assert.rejects(client().call(Routes.ssoDeviceStart, { body: { org: 'default' } }), { code: 'FERRY_E_SSO_NOT_CONFIGURED' });
      await assert.rejects(client().call(Routes.ssoDevicePoll, { body: { handle: 'not-a-handle' } }), { code: 'FERRY_E_SSO_STATE' });

      await user.call(Routes.listAudit, { query: { limit: 5 } });
      await user.call(Routes.listAudit, { query: { limit: 2, action: 'target.', target: 'oa', actor: 'a', since: '2020-01-01T00:00:00Z', before: 1000000 } });
      await user.call(Routes.verifyAudit);
      await user.call(Routes.revokeAgent, { params: { id: registered.agentId } });
      await assert.rejects(agent.call(Routes.heartbeat, { body: { running: [] } }), { code: 'FERRY_E_AGENT_REVOKED' });
      await user.call(Routes.deleteTarget, { params: { name: 'oa' } });
    } finally {
      await transport.close();
    }
    assert.deepEqual(problems, [], 'every answer matches the document');
    const missing = Object.keys(Routes).filter((name) => !checked.has(name));
    assert.deepEqual(missing, [], 'every route was called and its answer checked');
    const errors = [...checked.values()].flatMap((s) => [...s]).filter((s) => s >= 400);
    assert.ok(errors.includes(404) && errors.includes(409) && errors.includes(401), `error answers checked too: ${errors.join(', ')}`);
  });
});

/** One stdout frame of output, encoded as the upload body wants it. */
function encodeOne(data: Uint8Array): Uint8Array {
  return encodeFrames([{ stream: Streams.stdout, time: Date.now(), data }]);
}
