/**
 * One store contract on both backends: every operation of the Store interface (and of its
 * teams, webhooks, runbooks and people parts) is called in at least one server test file that
 * runs on SQLite and PostgreSQL (`forEachStore`, packages/server/test/helpers/stores.ts), so an
 * operation added to one backend cannot go untested on the other. The operations are read from
 * the interfaces with the TypeScript compiler, the calls found by name in the test files
 * (`.name(`, or `teams.name(` for a part's): coarse, but it cannot miss a new operation.
 * The finder is tested on made-up sources first, so a green run means something.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STORE_DIR = join(ROOT, 'packages/server/src/store');
const TEST_DIR = join(ROOT, 'packages/server/test');

/** Each interface, the file declaring it, and the Store property that holds it (none for Store). */
const PARTS = [
  { iface: 'Store', file: 'types.ts', via: null },
  { iface: 'TeamsStore', file: 'teams-types.ts', via: 'teams' },
  { iface: 'WebhookStore', file: 'webhook-types.ts', via: 'webhooks' },
  { iface: 'RunbookStore', file: 'runbook-types.ts', via: 'runbooks' },
  { iface: 'PeopleStore', file: 'people-types.ts', via: 'people' },
] as const;

interface Operation {
  via: string | null;
  name: string;
}

/** The methods (and function-typed properties) of interface `iface` in `source`. */
function methodsOf(source: string, iface: string): string[] {
  const file = ts.createSourceFile('x.ts', source, ts.ScriptTarget.Latest, true);
  const names: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === iface) {
      for (const m of node.members) {
        const isFunction = ts.isMethodSignature(m) || (ts.isPropertySignature(m) && m.type !== undefined && ts.isFunctionTypeNode(m.type));
        if (isFunction && m.name && ts.isIdentifier(m.name)) names.push(m.name.text);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return [...new Set(names)];
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether `text` calls the operation: `.name(` for Store's own, `via.name(` for a part's (line breaks allowed). */
function calls(text: string, op: Operation): boolean {
  const head = op.via === null ? '\\.' : `\\b${escape(op.via)}\\s*\\.`;
  return new RegExp(`${head}\\s*${escape(op.name)}\\s*\\(`).test(text);
}

function operations(): Operation[] {
  return PARTS.flatMap((p) => methodsOf(readFileSync(join(STORE_DIR, p.file), 'utf8'), p.iface).map((name) => ({ via: p.via, name })));
}

/** The text of every server test file that runs its tests on both backends. */
function contractTestTexts(): { file: string; text: string }[] {
  return readdirSync(TEST_DIR)
    .filter((f) => f.endsWith('.test.ts'))
    .map((file) => ({ file, text: readFileSync(join(TEST_DIR, file), 'utf8') }))
    .filter((f) => /\bforEachStore\s*\(/.test(f.text));
}

describe('the store operation finder', () => {
  it('reads methods and function-typed properties of the named interface only', () => {
    const source = 'interface Store { a(): void; readonly b: (x: number) => void; c: number; readonly teams: T }\ninterface Other { d(): void }';
    assert.deepEqual(methodsOf(source, 'Store'), ['a', 'b']);
  });

  it('finds calls of an operation, through its part for a part’s', () => {
    assert.ok(calls('await w.store.claimNextTask(agent)', { via: null, name: 'claimNextTask' }));
    assert.ok(calls('await store.teams\n  .createGroup({})', { via: 'teams', name: 'createGroup' }));
    assert.ok(!calls('await store.tasks.create({})', { via: 'webhooks', name: 'create' }));
    assert.ok(!calls('claimNextTaskLater()', { via: null, name: 'claimNextTask' }));
  });
});

describe('the store contract covers every operation', () => {
  it('every Store operation is called in a test file that runs on both backends', () => {
    const ops = operations();
    assert.ok(ops.length > 60, `found ${ops.length} operations: the interfaces were not read`);
    const texts = contractTestTexts();
    assert.ok(texts.length > 5, 'the forEachStore test files were not found');
    const missing = ops.filter((op) => !texts.some((t) => calls(t.text, op))).map((op) => (op.via === null ? op.name : `${op.via}.${op.name}`));
    assert.deepEqual(missing, [], `not called in any forEachStore test (${texts.map((t) => t.file).join(', ')})`);
  });
});
