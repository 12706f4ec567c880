/**
 * The sandbox's pipes read into one reused buffer (executor/pipe-reader.ts), through the
 * spawner as the sandbox executor opens them: the bytes arrive whole and in order, every chunk
 * is a view of the same buffer (nothing allocated per read), and what a child writes before
 * anyone listens waits in the pipe instead of being lost. Real processes; Linux only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { shimSyscalls } from '../src/executor/bubblewrap-command.js';
import { spawner } from '../src/executor/spawner.js';

const syscalls = shimSyscalls();
const skip = process.platform !== 'linux' || !syscalls || !existsSync('/usr/bin/perl') ? 'needs Linux, perl and a known architecture' : false;

/** Copies of every chunk (they are borrowed), and the ArrayBuffers the chunks were views of. */
function collect(stream: Readable): Promise<{ bytes: Buffer; chunks: number; buffers: Set<ArrayBufferLike> }> {
  return new Promise((resolve) => {
    const copies: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    stream.on('data', (d: Buffer) => {
      buffers.add(d.buffer);
      copies.push(Buffer.from(d));
    });
    stream.once('end', () => resolve({ bytes: Buffer.concat(copies), chunks: copies.length, buffers }));
  });
}

test('a child writing megabytes: the bytes arrive whole, every chunk a view of one reused buffer', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-pipe-reader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const payload = randomBytes(3 * 1024 * 1024 + 123);
  writeFileSync(join(dir, 'out'), payload);
  writeFileSync(join(dir, 'err'), payload.subarray(0, 100_000));
  const sp = spawner('/usr/bin/perl', syscalls?.prctl ?? 0, syscalls?.signalfd4 ?? 0);
  const child = await sp.launch({ argv: ['/bin/sh', '-c', `cat "${dir}/out"; cat "${dir}/err" >&2`], inputs: new Map(), pipes: new Map() });
  const [out, err] = await Promise.all([collect(child.stdout), collect(child.stderr)]);
  assert.deepEqual(out.bytes, payload);
  assert.deepEqual(err.bytes, payload.subarray(0, 100_000));
  assert.ok(out.chunks > 10, `${out.chunks} reads`);
  // One buffer for every read of both pipes.
  assert.equal(new Set([...out.buffers, ...err.buffers]).size, 1);
  assert.equal((await child.exited).code, 0);
});

test('what a child writes before anyone listens waits in the pipe', { skip }, async () => {
  const sp = spawner('/usr/bin/perl', syscalls?.prctl ?? 0, syscalls?.signalfd4 ?? 0);
  const child = await sp.launch({ argv: ['/bin/sh', '-c', 'printf early; printf late >&2'], inputs: new Map(), pipes: new Map() });
  assert.equal((await child.exited).code, 0);
  await sleep(100);
  const [out, err] = await Promise.all([collect(child.stdout), collect(child.stderr)]);
  assert.equal(out.bytes.toString(), 'early');
  assert.equal(err.bytes.toString(), 'late');
});
