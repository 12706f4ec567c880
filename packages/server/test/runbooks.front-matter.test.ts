/** A runbook's front matter (runbooks/front-matter.ts): what it declares, what it refuses, and how parameters become the environment. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { paramEnv, parseFrontMatter } from '../src/runbooks/front-matter.js';

const SQL = `-- ---
-- description: Count rows
-- target-type: postgres
-- param table: string, required, allowed=users|orders -- the table
-- param limit: int, default=10
-- ---
SELECT count(*) FROM users;
`;

describe('runbook front matter', () => {
  test('reads the block in the script’s own comment syntax', () => {
    const meta = parseFrontMatter(SQL);
    assert.ok(meta && !('problem' in meta));
    assert.equal(meta.targetType, 'postgres');
    assert.deepEqual(
      meta.params.map((p) => [p.name, p.type, p.required, p.default, p.allowed, p.description]),
      [
        ['table', 'string', true, null, ['users', 'orders'], 'the table'],
        ['limit', 'int', false, '10', null, null],
      ],
    );
  });

  test('a file without the block is not a runbook; a broken block says what is wrong', () => {
    assert.equal(parseFrontMatter('#!/bin/sh\necho hi\n'), undefined);
    const problems = [
      ['# ---\n# target-type: shell\n', /without its closing ---/],
      ['# ---\n# description: x\n# ---\n', /names no target-type/],
      ['# ---\n# target-type: fortran\n# ---\n', /target-type fortran is not one of/],
      ['# ---\n# target-type: shell\n# param PATH: string\n# ---\n', /param PATH: PATH is set by Ferry/],
      ['# ---\n# target-type: shell\n# param n: float\n# ---\n', /type float is not string, int or bool/],
      ['# ---\n# target-type: shell\n# param n: int, default=x\n# ---\n', /its default "x" is not a whole number/],
      ['# ---\n# target-type: shell\n# param n: string, pattern=(\n# ---\n', /is not a regular expression/],
    ] as const;
    for (const [text, message] of problems) {
      const got = parseFrontMatter(text);
      assert.ok(got && 'problem' in got, text);
      assert.match(got.problem, message);
    }
  });

  test('parameters become the environment: given or default values, every problem at once', () => {
    const meta = parseFrontMatter(SQL);
    assert.ok(meta && !('problem' in meta));
    assert.deepEqual(paramEnv(meta.params, { table: 'orders' }), { env: { table: 'orders', limit: '10' } });
    const bad = paramEnv(meta.params, { table: 'secrets', limit: '1e3', extra: 'x' });
    assert.ok('problems' in bad);
    assert.equal(bad.problems.length, 3);
  });
});
