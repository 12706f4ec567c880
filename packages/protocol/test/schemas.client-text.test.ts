/**
 * Text a client sets that reaches operators' terminals: single-line names refuse every control
 * character (C0, DEL, C1); a task's reason keeps tabs and newlines and shows the others as
 * `\xNN`, never raw.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FinishTaskRequest, RegisterAgentRequest, neutralizeControlCharacters } from '../src/schemas.js';

const registration = { joinSecret: 'ferry_j_x', name: 'agent-1', hostname: 'host.example', version: '0.1.0', platform: 'linux/x64', concurrency: 4 };
const controls = [...Array.from({ length: 0x20 }, (_, i) => i), 0x7f, ...Array.from({ length: 0x20 }, (_, i) => 0x80 + i)].map((c) => String.fromCharCode(c));

describe('text clients set', () => {
  it('a registration with ordinary names passes, Unicode included', () => {
    assert.ok(RegisterAgentRequest.safeParse(registration).success);
    assert.ok(RegisterAgentRequest.safeParse({ ...registration, name: 'Agent Zürich — 東京' }).success);
  });

  it('refuses each control character in the name, hostname, version and platform', () => {
    for (const field of ['name', 'hostname', 'version', 'platform'] as const) {
      for (const c of controls) {
        const parsed = RegisterAgentRequest.safeParse({ ...registration, [field]: `a${c}b` });
        assert.equal(parsed.success, false, `${field} with U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
        assert.match(parsed.error?.issues[0]?.message ?? '', /must not contain control characters/);
      }
    }
  });

  it("a final status's reason keeps tabs and newlines; no other control character survives", () => {
    const parsed = FinishTaskRequest.parse({
      status: 'error',
      exitCode: null,
      signal: null,
      reason: 'line one\n\tline two \u001b[31mred\u001b[0m \u009b2J\r',
      outputBytes: 0,
      outputSha256: '0'.repeat(64),
    });
    assert.equal(parsed.reason, 'line one\n\tline two \\x1b[31mred\\x1b[0m \\x9b2J\\x0d');
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const out = neutralizeControlCharacters(text);
        for (const c of controls) if (c !== '\t' && c !== '\n') assert.ok(!out.includes(c));
      }),
    );
  });
});
