/**
 * Builds the UI into dist/: hashed, immutable assets under dist/assets/ (the server caches them
 * for a year) and index.html (never cached). Every asset also gets a gzip and a Brotli copy
 * beside it, made here once, so the server sends the precompressed file the browser accepts.
 * No inline script or style anywhere (the server's Content-Security-Policy forbids both).
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

// Not index.html: the server writes a fresh CSP nonce into it for every answer.
const COMPRESSIBLE = /\.(js|css|svg|json|txt|map)$/;

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

/** Writes x.gz and x.br beside every compressible file of the build. */
function precompress(): Plugin {
  let outDir = 'dist';
  return {
    name: 'ferry-precompress',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      for (const path of files(outDir)) {
        if (!COMPRESSIBLE.test(path)) continue;
        const bytes = readFileSync(path);
        writeFileSync(`${path}.gz`, gzipSync(bytes, { level: 9 }));
        writeFileSync(`${path}.br`, brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
      }
    },
  };
}

export default defineConfig({
  base: '/',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Inlined assets would be data: URLs; keep every asset a file (the CSP allows 'self' only).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
    // dist/.vite/manifest.json: which chunks each entry and page loads (test/e2e/web/budget.test.ts reads it).
    manifest: true,
    rollupOptions: {
      // zod's sources carry /* @__PURE__ */ notes where Rollup cannot use them; harmless, and not ours to fix.
      onwarn(warning, warn) {
        if (warning.code === 'INVALID_ANNOTATION') return;
        warn(warning);
      },
    },
  },
  plugins: [precompress()],
});
