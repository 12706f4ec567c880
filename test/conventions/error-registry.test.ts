/**
 * Errors are data: one registry of codes with their HTTP statuses (packages/protocol/src/errors.ts).
 * These tests hold every package's sources to it: no code raised or sent that is not registered,
 * no registered code that nothing uses, no hand-built error body whose status disagrees.
 * The checker is tested first on made-up sources, so a green run means something.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
// The registry's source, not the built package: the test must not depend on a fresh build.
import { ClientErrorCodes, ErrorCodes } from '../../packages/protocol/src/errors.js';
import { CODE_PATTERN, checkErrorRegistry, describeFindings, type Registry, type SourceFile } from './error-registry.checker.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REGISTRY_FILE = 'packages/protocol/src/errors.ts';
const registry: Registry = { server: ErrorCodes, client: ClientErrorCodes };

/** Every TypeScript source of every package (packages/<name>/src/**), the registry left out. */
function packageSources(): SourceFile[] {
  const files: SourceFile[] = [];
  for (const pkg of readdirSync(join(ROOT, 'packages'))) {
    const src = join(ROOT, 'packages', pkg, 'src');
    let names: string[];
    try {
      names = readdirSync(src, { recursive: true, encoding: 'utf8' });
    } catch {
      continue; // a package without sources yet
    }
    for (const name of names) {
      const path = relative(ROOT, join(src, name));
      if (path.endsWith('.ts') && !path.endsWith('.d.ts') && path !== REGISTRY_FILE) files.push({ path, text: readFileSync(join(ROOT, path), 'utf8') });
    }
  }
  return files;
}

const one = (text: string): SourceFile[] => [{ path: 'made-up.ts', text }];

describe('the error-code checker', () => {
  it('fails on a code that is raised but not registered', () => {
    const report = checkErrorRegistry(one("throw new FerryError('FERRY_E_NOT_A_REAL_CODE');\n"), registry);
    assert.deepEqual(
      report.unregistered.map((f) => [f.code, f.line]),
      [['FERRY_E_NOT_A_REAL_CODE', 1]],
    );
  });

  it('fails on unregistered codes sent, returned, compared or named as a property', () => {
    const text = [
      "reply.send({ code: 'FERRY_E_MADE_UP_A' });",
      "return { ok: false, code: 'FERRY_E_MADE_UP_B' };",
      "if (err.code === 'FERRY_E_MADE_UP_C') retry();",
      'const m = ClientErrorCodes.FERRY_E_MADE_UP_D;',
    ].join('\n');
    assert.deepEqual(
      checkErrorRegistry(one(text), registry).unregistered.map((f) => f.code),
      ['FERRY_E_MADE_UP_A', 'FERRY_E_MADE_UP_B', 'FERRY_E_MADE_UP_C', 'FERRY_E_MADE_UP_D'],
    );
  });

  it('passes registered server and client codes, and ignores codes in comments and prose', () => {
    const text = [
      "throw new FerryError('FERRY_E_TASK_NOT_FOUND');",
      "throw clientError('FERRY_E_NETWORK', 'Cannot reach it');",
      '// FERRY_E_ONLY_IN_A_COMMENT',
      "log.info('the server said FERRY_E_ONLY_IN_PROSE');",
    ].join('\n');
    const report = checkErrorRegistry(one(text), registry);
    assert.deepEqual(report.unregistered, []);
    assert.deepEqual(report.statusMismatches, []);
  });

  it('fails on a hand-built error body whose status disagrees with the registry', () => {
    const text = [
      "reply.code(409).send({ statusCode: 409, code: 'FERRY_E_BAD_REQUEST', error: 'Conflict', message: 'no' });",
      "reply.status(500).type('application/json').send({ statusCode: 404, code: 'FERRY_E_TASK_NOT_FOUND', message: 'no' });",
      "const body = { statusCode: 404, code: 'FERRY_E_UNAUTHENTICATED' };",
      "reply.code(502).send({ code: 'FERRY_E_NETWORK', message: 'client codes are never sent' });",
    ].join('\n');
    const report = checkErrorRegistry(one(text), registry);
    assert.deepEqual(
      report.statusMismatches.map((f) => [f.line, f.code]),
      [
        [1, 'FERRY_E_BAD_REQUEST'],
        [2, 'FERRY_E_TASK_NOT_FOUND'],
        [3, 'FERRY_E_UNAUTHENTICATED'],
        [4, 'FERRY_E_NETWORK'],
      ],
    );
    assert.match(report.statusMismatches[0]?.problem ?? '', /HTTP 409, but the registry gives it 400/);
  });

  it('passes a hand-built body that agrees with the registry', () => {
    const text = "reply.code(400).send({ statusCode: 400, code: 'FERRY_E_BAD_REQUEST', error: 'Bad Request', message: 'no' });\n";
    assert.deepEqual(checkErrorRegistry(one(text), registry).statusMismatches, []);
  });

  it('lists registered codes that no source names', () => {
    const report = checkErrorRegistry(one("throw new FerryError('FERRY_E_TASK_NOT_FOUND');\n"), {
      server: { FERRY_E_TASK_NOT_FOUND: { status: 404 }, FERRY_E_DEAD: { status: 400 } },
      client: { FERRY_E_DEAD_TOO: '' },
    });
    assert.deepEqual(report.unused, ['FERRY_E_DEAD', 'FERRY_E_DEAD_TOO']);
  });
});

describe('the error-code registry and the sources agree', () => {
  const sources = packageSources();
  const report = checkErrorRegistry(sources, registry);

  it('finds the sources', () => {
    assert.ok(sources.length > 20, `only ${sources.length} source files found under packages/*/src`);
  });

  it('the registry is well-formed: distinct server and client codes, each an error status', () => {
    for (const [code, { status }] of Object.entries(ErrorCodes)) {
      assert.match(code, CODE_PATTERN);
      assert.ok(status >= 400 && status <= 599, `${code} has status ${status}`);
      assert.ok(!Object.hasOwn(ClientErrorCodes, code), `${code} is both a server and a client code`);
    }
    for (const code of Object.keys(ClientErrorCodes)) assert.match(code, CODE_PATTERN);
  });

  it('every code a source raises, sends or branches on is registered', () => {
    assert.equal(report.unregistered.length, 0, `register these in ${REGISTRY_FILE} or fix the name:\n${describeFindings(report.unregistered)}`);
  });

  it('no hand-built error body disagrees with the registry', () => {
    assert.equal(report.statusMismatches.length, 0, describeFindings(report.statusMismatches));
  });

  it('every registered code is used outside the registry', () => {
    assert.deepEqual(report.unused, [], `registered in ${REGISTRY_FILE} but used nowhere in packages/*/src: use them or remove them`);
  });
});
