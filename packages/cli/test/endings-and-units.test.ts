/**
 * The lines the CLI prints about a task's ending and about the flags it refuses: in the user's
 * terms (flags, units), one line each, and the exit codes the README documents.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Task } from '@ferry/protocol';
import { CLI_FAILURE, endingSummary, exitCodeFor, formatDuration } from '../src/exit-codes.js';
import { limitTooHigh, limitsFromFlags } from '../src/limit-flags.js';

function task(over: Partial<Task>): Task {
  return {
    id: 't_0123456789abc',
    target: 'web',
    status: 'succeeded',
    exitCode: 0,
    signal: null,
    reason: null,
    agent: 'a',
    createdBy: 'admin',
    createdAt: '2026-01-01T00:00:00.000Z',
    startedAt: null,
    finishedAt: null,
    timeoutSeconds: 30,
    outputBytes: 0,
    cancelRequested: false,
    outputExpiredAt: null,
    ...over,
  };
}

describe('endings', () => {
  it('one line for every ending but success, and the exit code for each', () => {
    const cases: [Partial<Task>, string | undefined, number][] = [
      [{ status: 'succeeded' }, undefined, 0],
      [{ status: 'failed', exitCode: 3 }, 'task t_0123456789abc failed with exit code 3', 3],
      [{ status: 'failed', exitCode: null, signal: 'SIGSEGV', reason: 'terminated by SIGSEGV' }, 'task t_0123456789abc was killed by SIGSEGV', 139],
      [{ status: 'failed', exitCode: 137, reason: 'out of memory (limit 512 MiB)' }, 'task t_0123456789abc was killed: out of memory (limit 512 MiB)', 137],
      [{ status: 'timed_out', exitCode: null, timeoutSeconds: 90 }, 'task t_0123456789abc timed out after 1m30s', 124],
      [{ status: 'cancelled', exitCode: null }, 'task t_0123456789abc was cancelled', 130],
      [
        { status: 'lost', exitCode: null, reason: 'the agent stopped reporting while the task ran' },
        'task t_0123456789abc lost its agent: the agent stopped reporting while the task ran',
        75,
      ],
      [{ status: 'error', exitCode: null, reason: 'could not start the task: bwrap: no' }, 'task t_0123456789abc could not start: bwrap: no', 70],
    ];
    for (const [over, line, code] of cases) {
      assert.equal(endingSummary(task(over)), line);
      assert.equal(exitCodeFor(task(over)), code);
    }
  });

  it('escapes control characters a reason may carry', () => {
    assert.equal(endingSummary(task({ status: 'error', exitCode: null, reason: 'x\u001b[2Jy' })), 'task t_0123456789abc could not start: x\\x1b[2Jy');
  });

  it('the CLI failure code is 255, apart from the codes endings use', () => {
    assert.equal(CLI_FAILURE, 255);
  });

  it('durations as the flags take them', () => {
    assert.deepEqual([0.25, 1, 90, 3600, 5400, 90061].map(formatDuration), ['250ms', '1s', '1m30s', '1h', '1h30m', '1d1h1m1s']);
  });
});

describe('limit flags', () => {
  it('accepts sizes, counts and durations in the units written', () => {
    assert.deepEqual(limitsFromFlags({ memoryBytes: '512MiB', maxOutputBytes: '100MB', maxProcesses: '64', timeoutSeconds: '1h30m' }), {
      memoryBytes: 512 * 1024 * 1024,
      maxOutputBytes: 100_000_000,
      maxProcesses: 64,
      timeoutSeconds: 5400,
    });
  });

  it('refuses in the user own terms and units', () => {
    const cases: [Parameters<typeof limitsFromFlags>[0], string][] = [
      [{ memoryBytes: '512' }, '--memory 512 is 512 bytes; the minimum is 16 MiB (write e.g. --memory 512MiB).'],
      [{ memoryBytes: '8KiB' }, '--memory 8KiB; the minimum is 16 MiB.'],
      [{ memoryBytes: 'much' }, '--memory much is not understood; write e.g. --memory 512MiB or 2GiB.'],
      [{ maxProcesses: '4' }, '--max-processes 4; the minimum is 8 processes.'],
      [{ maxProcesses: '2000000' }, '--max-processes 2000000 is above the maximum of 1000000 processes.'],
      [{ timeoutSeconds: '8d' }, '--timeout 8d is above the maximum of 7d.'],
    ];
    for (const [flags, message] of cases) assert.throws(() => limitsFromFlags(flags), { name: 'UsageError', message });
  });

  it("puts the server's 'above my maximum' in the flag's terms", () => {
    assert.equal(
      limitTooHigh({ limit: 'memoryBytes', maximum: 16 * 1024 ** 3 }, { memoryBytes: '32GiB' }),
      "--memory 32GiB is above this server's maximum of 16 GiB.",
    );
    assert.equal(limitTooHigh({ limit: 'nonsense', maximum: 1 }, {}), undefined);
  });
});
