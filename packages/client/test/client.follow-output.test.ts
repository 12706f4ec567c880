/**
 * `followOutput`, the follower `ferry run` and `ferry task logs --follow` use, against a real
 * HTTPS server on loopback that answers output reads by offset as Ferry's does: every byte comes
 * in order through pages small and large (a large answer's bytes are handed over without a copy,
 * a small one's are copied out of Node's shared pool), from any offset, through a server error,
 * and it stops after the page that says the output is complete.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { OUTPUT_FRAMES_CONTENT_TYPE, OutputHeaders, Streams, encodeFrames } from '@ferry/protocol';
import { followOutput, type OutputPage } from '@ferry/client';
import { createNodeClient } from '@ferry/client/node';
import { throwawayTls } from './helpers/throwaway-tls.js';

/** The task's output: stdout and stderr lines, about 100 KiB. */
const OUTPUT = Buffer.from(Array.from({ length: 3000 }, (_, i) => `line ${i} of the task's output\n`).join(''));
/** Page sizes the server answers with, in turn: small ones (under 4 KiB) and large ones. */
const PAGES = [100, 20_000, 3000, 50_000];

describe('following a task output', () => {
  const tls = throwawayTls();
  let server: Server;
  let url = '';
  let reads: { offset: number; waitSeconds: number }[] = [];
  let failNext = 0;

  before(async () => {
    let turn = 0;
    server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
      const u = new URL(req.url ?? '/', 'https://x');
      const offset = Number(u.searchParams.get('offset') ?? 0);
      reads.push({ offset, waitSeconds: Number(u.searchParams.get('waitSeconds') ?? 0) });
      if (failNext > 0) {
        failNext -= 1;
        return res
          .writeHead(503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ statusCode: 503, code: 'FERRY_E_UNAVAILABLE', message: 'restarting' }));
      }
      const end = Math.min(OUTPUT.length, offset + PAGES[turn++ % PAGES.length]!);
      const data = OUTPUT.subarray(offset, end);
      // Each page as two frames, stdout then stderr, as interleaved output is stored.
      const half = Math.floor(data.length / 2);
      const body = encodeFrames([
        { stream: Streams.stdout, time: 1, data: data.subarray(0, half) },
        { stream: Streams.stderr, time: 2, data: data.subarray(half) },
      ]);
      res
        .writeHead(200, {
          'content-type': OUTPUT_FRAMES_CONTENT_TYPE,
          [OutputHeaders.nextOffset]: String(end),
          [OutputHeaders.taskStatus]: end === OUTPUT.length ? 'succeeded' : 'running',
          [OutputHeaders.complete]: end === OUTPUT.length ? 'true' : 'false',
        })
        .end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => server.close());

  async function pages(opts: Parameters<typeof followOutput>[2]): Promise<OutputPage[]> {
    const client = createNodeClient({ serverUrl: url, caPem: tls.caPem, token: 'ferry_u_test' });
    const got: OutputPage[] = [];
    try {
      for await (const page of followOutput(client, 'T1', opts)) got.push(page);
    } finally {
      await client.close();
    }
    return got;
  }
  const bytesOf = (got: OutputPage[]): Buffer => Buffer.concat(got.flatMap((p) => p.frames.map((f) => f.data)));

  it('gives every byte in order, page by page, and stops after the complete one', async () => {
    reads = [];
    const got = await pages({ follow: true, waitSeconds: 7 });
    assert.ok(bytesOf(got).equals(OUTPUT));
    assert.equal(got.at(-1)!.complete, true);
    assert.equal(got.at(-1)!.taskStatus, 'succeeded');
    assert.ok(
      got.slice(0, -1).every((p) => !p.complete),
      'only the last page is complete',
    );
    assert.deepEqual(
      got.map((p) => p.frames.map((f) => f.stream)),
      got.map(() => [Streams.stdout, Streams.stderr]),
    );
    assert.deepEqual(
      reads.map((r) => r.offset),
      [0, ...got.slice(0, -1).map((p) => p.nextOffset)],
      'each read starts where the last one ended',
    );
    assert.ok(
      reads.every((r) => r.waitSeconds === 7),
      'a follower long-polls',
    );
  });

  it('resumes from an offset, and retries a server error', async () => {
    reads = [];
    failNext = 1;
    const got = await pages({ follow: true, from: 50_000, maxAttempts: 3 });
    assert.ok(bytesOf(got).equals(OUTPUT.subarray(50_000)));
    assert.deepEqual(reads.slice(0, 2), [
      { offset: 50_000, waitSeconds: 20 },
      { offset: 50_000, waitSeconds: 20 },
    ]);
  });

  it('without following, reads without waiting', async () => {
    reads = [];
    const got = await pages({ follow: false });
    assert.ok(bytesOf(got).equals(OUTPUT));
    assert.ok(reads.every((r) => r.waitSeconds === 0));
  });
});
