#!/usr/bin/env node
/**
 * Bundles the `ferry` command (packages/cli/dist, built by tsc) into packages/cli/bundle/: one
 * file per lazily loaded command, zod, the schemas and the client inlined. Loading ~100 small
 * ES modules costs more than parsing a few bundled ones: `ferry task list` starts ~30 ms sooner
 * (bench: cli_list_ms). The server and the agent stay separate packages, loaded only by
 * `ferry server` and `ferry agent start`.
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
  external: ['@ferry/server', '@ferry/agent'],
  // Bundled CommonJS dependencies may call require(); ES modules have none of their own.
  banner: { js: "import { createRequire as __ferryCreateRequire } from 'node:module'; const require = __ferryCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
