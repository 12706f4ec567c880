/**
 * Large reads, page by page: two tasks' outputs read with the two readers' requests interleaved
 * and several in flight at once, each get their own task's bytes, exactly, in every page, and a
 * page read twice is the same. (Written for a pool of reused answer buffers, since taken out;
 * it guards any future reuse of read buffers, as it checks the bytes of large pages.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Streams, decodeFrames } from '@ferry/protocol';
import { api, startFerryServer, taskSucceeded, waitForAgents, type ServerHandle } from '../helpers/ferry.js';

const PAGE_BYTES = 256 * 1024;

/** What `seq FROM TO` prints, prefixed: each task's output is unlike the other's everywhere. */
function expected(prefix: string, lines: number): Buffer {
  const out: string[] = [];
  for (let i = 1; i <= lines; i++) out.push(`${prefix}${i}\n`);
  return Buffer.from(out.join(''));
}

/** Reads the task's stored output from `offset`, one page; its stdout bytes and where the next page starts. */
async function page(server: ServerHandle, taskId: string, offset: number): Promise<{ bytes: Buffer; next: number }> {
  const res = await api(server, 'GET', `/v1/tasks/${taskId}/output?offset=${offset}&maxBytes=${PAGE_BYTES}`);
  assert.equal(res.status, 200, res.body.toString('utf8'));
  const frames = decodeFrames(res.body).filter((f) => f.stream === Streams.stdout);
  return { bytes: Buffer.concat(frames.map((f) => f.data)), next: Number(res.headers['ferry-next-offset']) };
}

describe('large output reads, page by page', () => {
  let server: ServerHandle;

  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
    const r = await server.cli(['target', 'create', 'pages', '--type', 'shell', '--redact', 'none']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => server?.stop());

  it('two tasks read page by page, interleaved and three pages in flight at once, each get exactly their own bytes', async () => {
    const lines = 600_000; // ~5 MiB each: many pages
    const ids: string[] = [];
    for (const prefix of ['a', 'b']) {
      const run = await server.cli(['run', 'pages', '--detach', '-c', `seq 1 ${lines} | sed 's/^/${prefix}/'`]);
      assert.equal(run.code, 0, run.stderr);
      ids.push(run.stdout.trim());
    }
    for (const id of ids) await taskSucceeded(server, id, 60_000);
    const wants = [expected('a', lines), expected('b', lines)];

    // Interleaved: a page of one, a page of the other, each time three requests at once (the
    // same task's page twice, and the other's), so answers are written while others are read.
    const got: Buffer[][] = [[], []];
    const offsets = [0, 0]; // where each task's next read starts
    const seen = [0, 0]; // how many of its bytes were read
    while (seen.some((n, i) => n < wants[i]!.length)) {
      const reads = [0, 1, 0].map((i) => page(server, ids[i]!, offsets[i]!).then((p) => ({ i, p })));
      const pages = await Promise.all(reads);
      for (const [k, { i, p }] of pages.entries()) {
        if (k === 2) {
          // The same page as the first read of this task: the same bytes, from another buffer.
          assert.ok(p.bytes.equals(pages[0]!.p.bytes), `a repeated read of task ${i} at ${offsets[i]} gave other bytes`);
          continue;
        }
        if (seen[i]! >= wants[i]!.length) continue;
        const want = wants[i]!.subarray(seen[i], seen[i]! + p.bytes.length);
        assert.ok(p.bytes.length > 0 && p.bytes.equals(want), `task ${i}'s page at ${offsets[i]} is not its own bytes`);
        got[i]!.push(p.bytes);
        seen[i]! += p.bytes.length;
        offsets[i] = p.next;
      }
    }
    for (const i of [0, 1]) {
      assert.ok(Buffer.concat(got[i]!).equals(wants[i]!), `task ${i}'s output read whole`);
      // Pages of 64 KiB and more are the large ones this is about (the agent's frames make most pages larger).
      const large = got[i]!.filter((b) => b.length >= 64 * 1024).length;
      assert.ok(large >= 2, `only ${large} of task ${i}'s ${got[i]!.length} pages were 64 KiB or more`);
    }
  });
});
