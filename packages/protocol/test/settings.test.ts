/**
 * Target settings' rules, at the schema both sides use: names, reserved names, single-line values
 * of at most 4 KiB (counted in UTF-8 bytes), at most 64 per target, and patches that set and unset.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_SETTING_VALUE_BYTES, SettingsPatch, TargetSettings, applySettingsPatch } from '../src/settings.js';

const problems = (value: unknown): string[] => {
  const r = TargetSettings.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('target settings', () => {
  it('take letters, digits and _ in either case, not starting with a digit', () => {
    assert.deepEqual(problems({ PG_HOST: 'db', region: 'eu', _x9: '' }), []);
    assert.match(problems({ '9LIVES': 'x' })[0] ?? '', /^9LIVES: "9LIVES" is not a setting name/);
    assert.match(problems({ 'A-B': 'x' })[0] ?? '', /is not a setting name/);
  });

  it('refuse the names the task environment uses', () => {
    for (const name of ['PATH', 'HOME', 'LD_PRELOAD', 'FERRY_TASK_ID', 'BASH_ENV']) assert.match(problems({ [name]: 'x' })[0] ?? '', /is reserved/, name);
  });

  it('values are single-line text of at most 4 KiB in UTF-8', () => {
    assert.deepEqual(problems({ A: 'x'.repeat(MAX_SETTING_VALUE_BYTES) }), []);
    assert.match(problems({ A: 'x'.repeat(MAX_SETTING_VALUE_BYTES + 1) })[0] ?? '', /over 4096 bytes/);
    assert.match(problems({ A: 'é'.repeat(MAX_SETTING_VALUE_BYTES / 2 + 1) })[0] ?? '', /over 4096 bytes/, 'bytes, not characters');
    for (const c of ['\n', '\r', '\t', '\u0000', '\u001b', '\u009b']) assert.match(problems({ A: `a${c}b` })[0] ?? '', /control character/, JSON.stringify(c));
  });

  it('at most 64 per target', () => {
    const of = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`S${i}`, 'v']));
    assert.deepEqual(problems(of(64)), []);
    assert.match(problems(of(65)).join(), /at most 64 settings/);
  });

  it('a patch sets values and removes the ones given as null', () => {
    const patch = SettingsPatch.parse({ B: 'two', C: null, D: null });
    assert.deepEqual(applySettingsPatch({ A: '1', B: '2', C: '3' }, patch), { A: '1', B: 'two' });
    assert.equal(SettingsPatch.safeParse({ PATH: null }).success, false, 'names are checked in a patch too');
  });
});
