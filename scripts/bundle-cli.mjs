#!/usr/bin/env node
/**
 * Bundles the `ferry` command (packages/cli/dist, built by tsc) into packages/cli/bundle/: one
 * file per lazily loaded command, zod, the schemas and the client inlined. Loading ~100 small
 * ES modules costs more than parsing a few bundled ones: `ferry task list` starts ~30 ms sooner
 * (bench: cli_list_ms). The server stays a separate package, loaded only by `ferry server`;
 * the agent is bundled in, and `ferry agent start` loads it through its own entry
 * (src/agent-start.ts) without the rest of the CLI.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { URL, fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const cli = fileURLToPath(new URL('../packages/cli/', import.meta.url));

// Chunk names carry content hashes: start empty so old chunks do not pile up.
rmSync(`${cli}bundle`, { recursive: true, force: true });

await build({
  entryPoints: [`${cli}dist/main.js`],
  outdir: `${cli}bundle`,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // The agent is bundled (one copy of zod and the schemas, few modules to load: `ferry agent start`
  // is a long-running process whose memory counts); the server stays a package of its own.
  external: ['@ferry/server'],
  // Bundled CommonJS dependencies may call require(); ES modules have none of their own.
  banner: { js: "import { createRequire as __ferryCreateRequire } from 'node:module'; const require = __ferryCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

// V8 keeps a module's source for as long as the module lives, as one byte per character only
// if every character fits in Latin-1; otherwise two. esbuild escapes what is not ASCII in code
// (its default charset), but not in the comments it keeps: an "—" in one comment made the
// agent's ~1.1 MB of loaded source 2.3 MB in its heap. So characters past ASCII in comment
// lines become \u escapes; one anywhere else stops the build, as it would not be a comment.
for (const name of readdirSync(`${cli}bundle`).filter((n) => n.endsWith('.js'))) {
  const file = `${cli}bundle/${name}`;
  const text = readFileSync(file, 'utf8');
  if (!/\P{ASCII}/u.test(text)) continue;
  const lines = text.split('\n').map((line, i) => {
    if (!/\P{ASCII}/u.test(line)) return line;
    if (!/^\s*(\/\/|\/\*|\*)/.test(line)) throw new Error(`${name}:${i + 1}: a character past ASCII outside a comment line`);
    return line.replace(/\P{ASCII}/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  });
  writeFileSync(file, lines.join('\n'));
}
