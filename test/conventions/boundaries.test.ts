/**
 * The package boundaries ("may import", docs/architecture.md) are enforced by lint. These tests
 * prove the rules bite: each lints a snippet as if it were a file of a given package (ESLint's
 * `lintText` with the path of a real file, so the typed lint finds its tsconfig and nothing is
 * written to the tree) and checks which boundary rule fires.
 *
 * The typed lint's project service keeps the text it was last given for a file, and other
 * packages see protocol and client through their sources (project references), so after each
 * snippet the file's real text is linted again to put it back.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { ESLint, type Linter } from 'eslint';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A real file of each part, so the snippet is linted with that part's rules and tsconfig. */
const FILES = {
  protocol: 'packages/protocol/src/index.ts',
  clientCore: 'packages/client/src/index.ts',
  clientNode: 'packages/client/src/node/index.ts',
  agent: 'packages/agent/src/index.ts',
  server: 'packages/server/src/index.ts',
  cli: 'packages/cli/src/main.ts',
} as const;

const BOUNDARY_RULES = new Set(['no-restricted-imports', 'no-restricted-globals']);

describe('package boundaries are enforced by lint', () => {
  let eslint: ESLint;

  before(() => {
    eslint = new ESLint({ cwd: ROOT });
    for (const file of Object.values(FILES)) assert.ok(existsSync(join(ROOT, file)), `${file} should exist (pick another file of that package)`);
  });

  /** All messages ESLint gives `code` as the text of a file of `part`. */
  async function lintAs(part: keyof typeof FILES, code: string): Promise<Linter.LintMessage[]> {
    const filePath = join(ROOT, FILES[part]);
    try {
      const [result] = await eslint.lintText(code, { filePath });
      assert.ok(result, 'ESLint returned no result');
      assert.deepEqual(
        result.messages.filter((m) => m.fatal),
        [],
        'the snippet should parse',
      );
      return result.messages;
    } finally {
      await eslint.lintText(readFileSync(filePath, 'utf8'), { filePath });
    }
  }

  /** The boundary messages ESLint gives `code` as a file of `part`. */
  async function boundaryProblems(part: keyof typeof FILES, code: string): Promise<Linter.LintMessage[]> {
    return (await lintAs(part, code)).filter((m) => m.ruleId !== null && BOUNDARY_RULES.has(m.ruleId));
  }

  async function assertRefused(part: keyof typeof FILES, code: string, mention: RegExp): Promise<void> {
    const problems = await boundaryProblems(part, code);
    assert.equal(problems.length, 1, `expected one boundary error for ${JSON.stringify(code)} in ${part}, got ${JSON.stringify(problems)}`);
    const [problem] = problems;
    assert.match(problem?.message ?? '', mention);
    assert.match(problem?.message ?? '', /docs\/architecture\.md/, 'the message says where the rule is written');
    assert.equal(problem?.severity, 2);
  }

  async function assertAllowed(part: keyof typeof FILES, code: string): Promise<void> {
    assert.deepEqual(await boundaryProblems(part, code), []);
  }

  it('the agent may not import the server', async () => {
    await assertRefused('agent', "import '@ferry/server';\n", /never @ferry\/server/);
  });

  it('the agent may not import the CLI', async () => {
    await assertRefused('agent', "export { main } from '@ferry/cli';\n", /never @ferry\/cli/);
  });

  it('the server may not import the agent, nor the client', async () => {
    await assertRefused('server', "import '@ferry/agent';\n", /never @ferry\/agent/);
    await assertRefused('server', "import type { FerryClient } from '@ferry/client';\nexport type C = FerryClient;\n", /never @ferry\/client/);
  });

  it('protocol imports no Node built-in, by `node:` name or bare name', async () => {
    await assertRefused('protocol', "import 'node:fs';\n", /Node's built-in modules/);
    await assertRefused('protocol', "import { readFileSync } from 'fs';\nexport const read = readFileSync;\n", /Node's built-in modules/);
    await assertRefused('protocol', "export { Buffer } from 'buffer';\n", /Node's built-in modules/);
    await assertRefused('protocol', "import { readFile } from 'fs/promises';\nexport const read = readFile;\n", /Node's built-in modules/);
  });

  it('protocol imports no package of ours', async () => {
    await assertRefused('protocol', "import '@ferry/client';\n", /no package of ours/);
  });

  it('protocol and the client core use no Node globals', async () => {
    await assertRefused('protocol', "export const b = Buffer.from('x');\n", /Buffer/);
    await assertRefused('protocol', 'export const home = process.env.HOME;\n', /process/);
    await assertRefused('clientCore', "export const b = Buffer.from('x');\n", /Buffer/);
  });

  it('the client core imports only protocol and no Node built-ins; its Node entry may use them', async () => {
    await assertRefused('clientCore', "import 'node:crypto';\n", /Node's built-in modules/);
    await assertRefused('clientCore', "import '@ferry/agent';\n", /never @ferry\/agent/);
    await assertRefused('clientCore', "import 'undici';\n", /Node entry/);
    await assertAllowed('clientNode', "import { X509Certificate } from 'node:crypto';\nexport const C = X509Certificate;\n");
  });

  it('no deep imports of our packages, except the published @ferry/client/node', async () => {
    await assertRefused('cli', "import '@ferry/protocol/dist/x.js';\n", /published entry points/);
    await assertRefused('agent', "import '@ferry/client/src/client.js';\n", /published entry points/);
    await assertAllowed('cli', "import { createNodeClient } from '@ferry/client/node';\nexport const create = createNodeClient;\n");
  });

  it('a legal import passes with no problem at all', async () => {
    assert.deepEqual(await lintAs('agent', "import { ErrorCodes } from '@ferry/protocol';\n\nexport const codeCount = Object.keys(ErrorCodes).length;\n"), []);
    await assertAllowed('cli', "import '@ferry/server';\nimport '@ferry/agent';\nimport '@ferry/client';\n");
  });

  it('the future web package is covered: protocol and client only, no Node built-ins', async () => {
    const config = (await eslint.calculateConfigForFile(join(ROOT, 'packages/web/src/main.ts'))) as { rules?: Record<string, unknown> };
    const text = JSON.stringify(config.rules?.['no-restricted-imports']);
    assert.match(text, /never @ferry\/server/);
    assert.match(text, /never @ferry\/agent/);
    assert.match(text, /Node's built-in modules/);
    assert.doesNotMatch(text, /never @ferry\/client\b/);
  });
});
