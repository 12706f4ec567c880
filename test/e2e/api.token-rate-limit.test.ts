/**
 * The per-token request limit (`requestsPerTokenPerMinute`): a user token that sends more than
 * its allowance gets 429 FERRY_E_RATE_LIMITED with Retry-After and the registry's body, another
 * token of the same address is unaffected, an agent's token is exempt, and the allowance refills
 * with time. The limit is 60 a minute here, so it refills one request a second.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCodes, decodeJoinToken } from '@ferry/protocol';
import { api, startFerryServer, waitFor, type ServerHandle } from '../helpers/ferry.js';

const PER_MINUTE = 60;

describe('per-token request limit', { timeout: 90_000 }, () => {
  let server: ServerHandle;
  let otherToken: string;
  let agentToken: string;

  before(async () => {
    server = await startFerryServer({ embeddedAgent: false, env: { FERRY_REQUESTS_PER_TOKEN_PER_MINUTE: String(PER_MINUTE) } });
    const created = await api(server, 'POST', '/v1/tokens', { body: JSON.stringify({ name: 'ci-bot', role: 'viewer' }) });
    assert.equal(created.status, 201, created.body.toString());
    otherToken = String(created.json.token);
    const join = decodeJoinToken(await server.joinToken(['--hosted']));
    const reg = await api(server, 'POST', '/v1/agents/register', {
      token: null,
      body: JSON.stringify({ joinSecret: join?.secret, name: 'busy', hostname: 'h', version: '0', platform: 'linux', concurrency: 1 }),
    });
    assert.equal(reg.status, 201, reg.body.toString());
    agentToken = String(reg.json.token);
  });

  after(async () => {
    await server?.stop();
  });

  it('answers 429 with Retry-After past the allowance, leaves other tokens alone, exempts agents, and refills', async () => {
    // A fresh token: its whole allowance is a burst; the admin token already spent a few above.
    let limited;
    for (let i = 0; i <= PER_MINUTE; i++) {
      const res = await api(server, 'GET', '/v1/targets', { token: otherToken });
      if (res.status === 429) {
        limited = { res, at: i };
        break;
      }
      assert.equal(res.status, 200, res.body.toString());
    }
    assert.ok(limited, `no 429 after ${PER_MINUTE + 1} requests`);
    assert.ok(limited.at >= PER_MINUTE - 1, `limited after only ${limited.at} requests`);
    const { res } = limited;
    assert.equal(res.json.code, 'FERRY_E_RATE_LIMITED');
    assert.equal(res.json.statusCode, 429);
    assert.equal(res.json.statusCode, ErrorCodes.FERRY_E_RATE_LIMITED.status);
    assert.equal(res.json.error, 'Too Many Requests');
    assert.match(String(res.json.message), /with this token/);
    const retryAfter = Number(res.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 2, `Retry-After: ${String(res.headers['retry-after'])}`);

    // Still limited right after: the refusal did not reset anything.
    assert.equal((await api(server, 'GET', '/v1/targets', { token: otherToken })).status, 429);
    // Another token from the same address still gets through.
    assert.equal((await api(server, 'GET', '/v1/targets')).status, 200);
    // An agent's polls and heartbeats are its normal traffic: never limited per token.
    for (let i = 0; i < PER_MINUTE + 10; i++) {
      const hb = await api(server, 'POST', '/v1/agent/heartbeat', { token: agentToken, body: JSON.stringify({ running: [] }) });
      assert.equal(hb.status, 200, hb.body.toString());
    }
    // The allowance refills with time (one a second here).
    await waitFor(async () => (await api(server, 'GET', '/v1/targets', { token: otherToken })).status === 200, 5_000, 'allowance refilled');
  });
});
