#!/usr/bin/env node
/**
 * Bundles the `ferry` command (packages/cli/dist, built by tsc) into packages/cli/bundle/: one
 * file per lazily loaded command, zod, the schemas and the client inlined. Loading ~100 small
 * ES modules costs more than parsing a few bundled ones: `ferry task list` starts ~30 ms sooner
 * (bench: cli_list_ms). The server stays a separate package, loaded only by `ferry server`;
 * the agent is bundled in, and `ferry agent start` loads it through its own entry
 * (src/agent-start.ts) without the rest of the CLI.
 */
import { rmSync } from 'node:fs';
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
