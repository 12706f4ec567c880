/**
 * Webhook pieces below the API: the backoff schedule, the signature (as the README's recipe
 * computes it), and what a Slack message carries (ids, names, links and a redacted script
 * excerpt; approve and reject buttons only while the task waits for review).
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { webhookBody } from '../src/webhooks/payload.js';
import { retryDelayMs, webhookSignature } from '../src/webhooks/service.js';
import type { TaskRow } from '../src/store/types.js';

describe('webhook retries', () => {
  test('wait base·2^(n-1), at most an hour, with jitter of ±50%', () => {
    assert.equal(
      retryDelayMs(1, 10, () => 0.5),
      10_000,
    );
    assert.equal(
      retryDelayMs(4, 10, () => 0.5),
      80_000,
    );
    assert.equal(
      retryDelayMs(30, 10, () => 0.5),
      3_600_000,
    );
    assert.equal(
      retryDelayMs(2, 10, () => 0),
      10_000,
    );
    assert.equal(
      retryDelayMs(2, 10, () => 0.999999),
      30_000,
    );
    // Twelve attempts with the default base span hours, not minutes.
    const total = Array.from({ length: 11 }, (_, i) => retryDelayMs(i + 1, 10, () => 0.5)).reduce((a, b) => a + b, 0);
    assert.ok(total > 3 * 3600_000 && total < 4 * 3600_000, `${total} ms`);
  });
});

describe('webhook signature', () => {
  test('is v1= and the hex HMAC-SHA256 over "<timestamp>.<body>"', () => {
    const expected = createHmac('sha256', 'whsec_test').update('1700000000.{"a":1}').digest('hex');
    assert.equal(webhookSignature('whsec_test', 1700000000, '{"a":1}'), `v1=${expected}`);
  });
});

function task(status: TaskRow['status']): TaskRow {
  return {
    id: 't_slack0000001',
    orgId: 'o_default',
    targetId: 'g_prod',
    targetName: 'prod',
    targetType: 'shell',
    targetNetwork: 'none',
    targetLimits: {},
    targetRedact: 'secrets',
    targetSettings: {},
    storedBytes: 0,
    redactState: null,
    outputDigest: null,
    script: `curl -H "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789" https://api.example.com\n${'x'.repeat(1000)}`,
    stdin: null,
    args: [],
    env: {},
    status,
    exitCode: null,
    signal: null,
    reason: null,
    agentId: null,
    agentName: null,
    createdBy: 'service:alice (token k_1)',
    createdByPrincipal: 'p_alice',
    runbook: null,
    review: null,
    createdAt: 0,
    claimedAt: null,
    startedAt: null,
    finishedAt: null,
    timeoutSeconds: 60,
    leaseExpiresAt: null,
    cancelRequestedAt: null,
    outputBytes: 0,
    outputExpiredAt: null,
  };
}

describe('webhook payloads', () => {
  const input = { deliveryId: 'd_1', decisions: [], publicUrl: 'https://ferry.example.com', at: 0 };

  test('slack: blocks with target, author, a redacted script excerpt and links to approve or reject', () => {
    const body = webhookBody('slack', { ...input, event: 'task.pending_review', task: task('pending_review') });
    const message = JSON.parse(body) as { text: string; blocks: { type: string; elements?: { url: string; text: { text: string } }[] }[] };
    assert.match(message.text, /t_slack0000001 on prod is waiting for review/);
    assert.match(body, /prod/);
    assert.match(body, /service:alice/);
    assert.doesNotMatch(body, /abcdefghijklmnopqrstuvwxyz0123456789/, 'the excerpt is redacted');
    assert.ok(body.length < 3000, 'an excerpt, not the whole script');
    const buttons = message.blocks.find((b) => b.type === 'actions')?.elements ?? [];
    assert.deepEqual(
      buttons.map((b) => [b.text.text, b.url]),
      [
        ['Open task', 'https://ferry.example.com/ui/tasks/t_slack0000001'],
        ['Approve', 'https://ferry.example.com/ui/tasks/t_slack0000001?review=approve'],
        ['Reject', 'https://ferry.example.com/ui/tasks/t_slack0000001?review=reject'],
      ],
    );
    const finished = JSON.parse(webhookBody('slack', { ...input, event: 'task.finished', task: task('succeeded') })) as typeof message;
    assert.equal(finished.blocks.find((b) => b.type === 'actions')?.elements?.length, 1, 'no review buttons once it ended');
  });

  test('json: ids, statuses and links, no secret', () => {
    const body = JSON.parse(webhookBody('json', { ...input, event: 'task.finished', task: task('succeeded') })) as Record<string, unknown>;
    assert.equal(body.event, 'task.finished');
    assert.deepEqual((body.links as { api: string }).api, 'https://ferry.example.com/v1/tasks/t_slack0000001');
    assert.doesNotMatch(JSON.stringify(body), /abcdefghijklmnopqrstuvwxyz0123456789/);
  });
});
