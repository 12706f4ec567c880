/**
 * The uploader's two uploads in flight against a server that does not wait for an upload's turn
 * (the fake control plane answers an upload past its stored end with a gap at once, as servers
 * from before the ordered append do, and as a replica may): the output is stored byte-exact,
 * with failures of uploads in between, and after two such early gap answers the task's uploads
 * go one at a time instead of sending every second upload twice.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { OutputDigest } from '@ferry/protocol';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane, type RecordedCall } from './helpers/fake-control-plane.js';

const outputDigest = (data: Buffer): string => new OutputDigest((chain, block) => createHash('sha256').update(chain).update(block).digest()).update(data).hex();

/** What `seq 1 N` prints. */
function seq(n: number): string {
  let out = '';
  for (let i = 1; i <= n; i++) out += `${i}\n`;
  return out;
}

const LINES = 1_500_000; // ~10.9 MB: about eleven full uploads

/** Gap answers to uploads that started past where the server was: sent behind another that had not arrived. */
const earlyGaps = (calls: RecordedCall[]): number =>
  calls.filter(
    (c) => c.status === 409 && Number(c.query.offset) > ((c.answer as { details?: { expectedOffset?: number } }).details?.expectedOffset ?? Infinity),
  ).length;

for (const failing of [false, true]) {
  test(`byte-exact output against a server that answers early uploads with a gap at once${failing ? ', with failed uploads in between' : ''}`, async (t) => {
    const cp = await FakeControlPlane.start();
    const task = cp.queueTask({ script: `seq 1 ${LINES}\n` });
    // Server errors for uploads (retryable): a failed upload with another in flight behind it.
    if (failing) cp.answerNext('uploadOutput', 'FERRY_E_UNAVAILABLE', { times: 3 });
    await startAgent(t, cp);

    const final = await cp.waitFor('the final status', () => cp.task(task.id).final, 60_000);
    const stored = cp.output(task.id);
    assert.equal(final.status, 'succeeded');
    assert.ok(stored.toString() === seq(LINES), 'every byte once, in order');
    assert.equal(final.outputBytes, stored.length);
    assert.equal(final.outputDigest, outputDigest(stored));
    const uploads = cp.callsTo('uploadOutput');
    if (failing) assert.equal(uploads.filter((c) => c.status === 503).length, 3);
    assert.ok(earlyGaps(uploads) <= 2, `after two early gap answers, one upload at a time (${earlyGaps(uploads)})`);
  });
}
