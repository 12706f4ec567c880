/**
 * A task's own input reaches the command as given (arguments after the script, stdin as bytes,
 * plain variables under the secrets), and the sandbox refusal names its real cause.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Assignment } from '@ferry/protocol';
import { hostProblem } from '../src/executor/bubblewrap.js';
import { runSpecFor } from '../src/runtime.js';

function assignment(over: Partial<Assignment>): Assignment {
  return {
    id: 't_0123456789abc',
    target: { id: 'g_1', name: 'web', type: 'shell' },
    script: 'echo',
    timeoutSeconds: 60,
    leaseSeconds: 30,
    network: 'none',
    maxOutputBytes: 1 << 20,
    maxProcesses: 64,
    memoryBytes: 64 << 20,
    orgId: 'o_1',
    secrets: [],
    settings: {},
    ...over,
  };
}

describe("a task's input", () => {
  it('arguments follow the script, apart from argv (no {script}/{files} substitution)', () => {
    const spec = runSpecFor(assignment({ args: ['a', '{script}', '{files}/x'] }));
    assert.deepEqual(spec.argv, ['bash', '--noprofile', '--norc', '{script}']);
    assert.deepEqual(spec.args, ['a', '{script}', '{files}/x']);
    assert.deepEqual(runSpecFor(assignment({ target: { id: 'g_1', name: 'py', type: 'python' }, args: ['x'] })).args, ['x']);
  });

  it('stdin is bytes decoded from the claim; none means none', () => {
    const spec = runSpecFor(assignment({ stdin: Buffer.from([0, 1, 255]).toString('base64') }));
    assert.deepEqual([...(spec.stdin ?? [])], [0, 1, 255]);
    assert.equal(runSpecFor(assignment({})).stdin, undefined);
  });

  it('plain variables reach the environment; secrets and what Ferry sets win over them', () => {
    const spec = runSpecFor(assignment({ env: { GREETING: 'hi', API_TOKEN: 'plain', PATH: '/evil' } }), new Map([['API_TOKEN', 'the-secret']]));
    assert.equal(spec.env.GREETING, 'hi');
    assert.equal(spec.env.API_TOKEN, 'the-secret');
    assert.notEqual(spec.env.PATH, '/evil');
  });
});

describe('the sandbox refusal', () => {
  it('names the real cause: not Linux, not root', () => {
    assert.match(hostProblem('darwin', 0) ?? '', /needs Linux, and this is darwin/);
    assert.match(hostProblem('linux', 1000) ?? '', /needs root, and this agent runs as uid 1000/);
    assert.equal(hostProblem('linux', 0), undefined);
  });
});
