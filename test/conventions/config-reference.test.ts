/**
 * docs/configuration.md is generated from the config schemas (packages/cli/src/config-reference.ts).
 * These tests fail when the file is stale, when a setting or a flag is missing from it, or when
 * a package reads a FERRY_* variable the reference does not name.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { AGENT_START_FLAGS } from '../../packages/agent/src/flags.js';
import { AgentConfigSchema } from '../../packages/agent/src/config.js';
import { configReference } from '../../packages/cli/src/config-reference.js';
import { envName } from '../../packages/protocol/src/config.js';
import { ServerConfigSchema } from '../../packages/server/src/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const doc = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');

/** The table rows of one section (`## ...` up to the next heading). */
function section(title: string): string {
  const start = doc.indexOf(`## ${title}`);
  assert.ok(start >= 0, `section ${title}`);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

describe('the configuration reference', () => {
  it('docs/configuration.md is what the generator writes (run `npm run build && node scripts/generate-config-reference.mjs`)', () => {
    assert.equal(doc, configReference());
  });

  it('has a row for every server and agent setting, with its environment variable and a description', () => {
    for (const [title, schema] of [
      ['`ferry server`', ServerConfigSchema],
      ['`ferry agent start`', AgentConfigSchema],
    ] as const) {
      const text = section(title);
      for (const key of Object.keys(schema.shape)) {
        const row = text.split('\n').find((line) => line.startsWith(`| \`${key}\` |`));
        assert.ok(row, `${title}: no row for ${key}`);
        assert.ok(row.includes(`\`${envName(key)}\``), `${key}: environment variable`);
        assert.ok((row.split('|').at(-2) ?? '').trim().length > 10, `${key}: description`);
      }
    }
  });

  it("names every flag of the agent's table that sets a setting", () => {
    const text = section('`ferry agent start`');
    for (const f of AGENT_START_FLAGS) if (f.key !== 'config') assert.match(text, new RegExp(`\\| \`${f.key}\` \\| \`--${f.flag}\` \\|`));
  });

  it('names every FERRY_* variable the packages read', () => {
    const read = new Set<string>();
    for (const pkg of readdirSync(join(ROOT, 'packages'))) {
      const src = join(ROOT, 'packages', pkg, 'src');
      for (const name of readdirSync(src, { recursive: true, encoding: 'utf8' })) {
        if (!name.endsWith('.ts')) continue;
        const text = readFileSync(join(src, name), 'utf8');
        for (const m of text.matchAll(/env(?:\??\.|\[')(FERRY_[A-Z0-9_]+)/g)) read.add(m[1] ?? '');
      }
    }
    assert.ok(read.has('FERRY_SERVER_CONFIG') && read.has('FERRY_TOKEN'), `found: ${[...read].join(', ')}`);
    for (const name of read) assert.ok(doc.includes(`\`${name}\``), `${name} is read but not in docs/configuration.md`);
  });
});
