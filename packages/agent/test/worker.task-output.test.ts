/**
 * A task's output and final status reach the control plane intact: a real agent (process
 * executor) against a fake control plane over HTTPS with a pinned CA.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import { OutputDigest, Streams } from '@ferry/protocol';
import { startAgent } from './helpers/agent-under-test.js';
import { FakeControlPlane } from './helpers/fake-control-plane.js';

/** The output digest of `data`, by its definition (protocol's OutputDigest over node:crypto). */
const outputDigest = (data: Buffer): string => new OutputDigest((chain, block) => createHash('sha256').update(chain).update(block).digest()).update(data).hex();

/** What `seq FROM TO` prints. */
function seq(from: number, to: number): string {
  let out = '';
  for (let i = from; i <= to; i++) out += `${i}\n`;
  return out;
}

test('a task runs, and its output and final status (length and output digest) reach the server', async (t) => {
  const cp = await FakeControlPlane.start();
  // About 2.6 MB on stdout: more than one upload chunk (1 MiB).
  const task = cp.queueTask({ script: 'seq 1 400000\necho "to stderr" >&2\nexit 3\n' });
  await startAgent(t, cp);

  const final = await cp.waitFor('the final status', () => cp.task(task.id).final);
  assert.equal(final.status, 'failed');
  assert.equal(final.exitCode, 3);
  assert.equal(cp.output(task.id, Streams.stdout).toString(), seq(1, 400000));
  assert.equal(cp.output(task.id, Streams.stderr).toString(), 'to stderr\n');
  const stored = cp.output(task.id);
  assert.equal(final.outputBytes, stored.length);
  assert.equal(final.outputDigest, outputDigest(stored));
  assert.ok(cp.task(task.id).started, 'the start was confirmed before the task ran');
  assert.ok(cp.callsTo('uploadOutput').length > 1, 'the output went up in several chunks');
});

test('an output gap answer makes the agent resend from the offset the server expects; the stored output is byte-exact', async (t) => {
  const cp = await FakeControlPlane.start();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-gap-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const flag = join(dir, 'go');
  // The second half waits for the test (at most 20 s), so the server can lose output in between.
  const task = cp.queueTask({ script: `seq 1 1000\nfor i in $(seq 200); do [ -e '${flag}' ] && break; sleep 0.1; done\nseq 1001 2000\n` });
  await startAgent(t, cp);

  const firstHalf = seq(1, 1000).length;
  await cp.waitFor('the first half stored', () => cp.output(task.id).length >= firstHalf);
  cp.loseOutput(task.id, 100);
  await writeFile(flag, '');

  const final = await cp.waitFor('the final status', () => cp.task(task.id).final);
  const uploads = cp.callsTo('uploadOutput');
  const gap = uploads.findIndex((c) => c.status === 409 && (c.answer as { code?: string }).code === 'FERRY_E_OUTPUT_GAP');
  assert.ok(gap >= 0, 'the server answered an upload with a gap');
  assert.deepEqual((uploads[gap]?.answer as { details?: unknown }).details, { expectedOffset: 100 });
  assert.equal(uploads[gap + 1]?.query.offset, '100', 'the next upload starts where the server expects');
  assert.equal(final.status, 'succeeded');
  const stored = cp.output(task.id);
  assert.equal(stored.toString(), seq(1, 2000));
  assert.equal(final.outputBytes, stored.length);
  assert.equal(final.outputDigest, outputDigest(stored));
});
