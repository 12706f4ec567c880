/** What a task may be given besides its script: bounded stdin, arguments and plain variables; sizes shown in units. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CreateTaskRequest, MAX_STDIN_BYTES, envNameProblem, formatSize } from '../src/index.js';

const base = { target: 'web', script: 'true' };

describe('task input', () => {
  it('takes stdin up to 1 MiB (base64), not one byte more', () => {
    assert.ok(CreateTaskRequest.safeParse({ ...base, stdin: Buffer.alloc(MAX_STDIN_BYTES).toString('base64') }).success);
    const over = CreateTaskRequest.safeParse({ ...base, stdin: Buffer.alloc(MAX_STDIN_BYTES + 1).toString('base64') });
    assert.ok(!over.success);
    assert.match(over.error.issues[0]?.message ?? '', /stdin is over 1 MiB/);
    assert.ok(!CreateTaskRequest.safeParse({ ...base, stdin: 'not base64!' }).success);
  });

  it('takes arguments, bounded, without control characters', () => {
    assert.ok(CreateTaskRequest.safeParse({ ...base, args: ['a', 'b c', ''] }).success);
    for (const bad of [['a\nb'], ['\u001b[2J'], ['nul\u0000'], ['x'.repeat(4097)], Array.from({ length: 257 }, () => 'a')])
      assert.ok(!CreateTaskRequest.safeParse({ ...base, args: bad }).success, JSON.stringify(bad).slice(0, 40));
  });

  it('takes plain variables with valid names, not the reserved ones', () => {
    assert.ok(CreateTaskRequest.safeParse({ ...base, env: { GREETING: 'hello', _x1: 'multi\nline' } }).success);
    for (const env of [{ PATH: '/tmp' }, { FERRY_TASK_ID: 'x' }, { PGPASSWORD: 'x' }, { '1X': 'x' }, { 'A-B': 'x' }, { A: 'nul\u0000' }])
      assert.ok(!CreateTaskRequest.safeParse({ ...base, env }).success, JSON.stringify(env));
    assert.match(envNameProblem('HOME') ?? '', /set by Ferry/);
    assert.equal(envNameProblem('REGION'), undefined);
  });
});

describe('formatSize', () => {
  it('binary units, at most one decimal', () => {
    assert.deepEqual([0, 1, 512, 1024, 1536, 16 * 1024 ** 2, 2.5 * 1024 ** 3, 256 * 1024 ** 2 + 1].map(formatSize), [
      '0 bytes',
      '1 byte',
      '512 bytes',
      '1 KiB',
      '1.5 KiB',
      '16 MiB',
      '2.5 GiB',
      '256 MiB',
    ]);
  });
});
