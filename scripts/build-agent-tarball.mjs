#!/usr/bin/env node
/**
 * Builds the self-contained agent for Linux: a tarball that carries its own Node runtime, so a
 * host needs no Node, no npm, no build step and no source checkout.
 *
 *   ferry-agent-<version>-linux-<arch>/
 *     ferry-agent          a sh launcher: runs lib/ferry-agent.mjs with bin/node
 *     bin/node             the Node binary that runs this script (process.execPath)
 *     lib/ferry-agent.mjs  the agent and everything it imports, bundled by esbuild
 *
 * The architecture is the running Node's: build the arm64 tarball by running this script
 * with an arm64 `node` (on an arm64 host or in an arm64 container). Node's official Linux
 * builds need glibc 2.28 or later; the sandbox needs bubblewrap, util-linux and perl-base on
 * the host, as any agent does.
 *
 * Usage (after `npm run build`): node scripts/build-agent-tarball.mjs [OUT_DIR]   (default ./release)
 * Prints the tarball's path.
 */
import { execFileSync } from 'node:child_process';
import process from 'node:process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { URL, fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
// The launcher's process settings come from the agent's own table, as the other launchers' do.
const { AGENT_PROCESS } = await import(new URL('../packages/agent/dist/flags.js', import.meta.url).href);
const { version } = JSON.parse(readFileSync(join(root, 'packages/agent/package.json'), 'utf8'));
const outDir = resolve(process.argv[2] ?? join(root, 'release'));
const name = `ferry-agent-${version}-linux-${process.arch}`;
const stage = join(outDir, name);

if (process.platform !== 'linux') throw new Error('the self-contained agent is built on Linux, for Linux');
rmSync(stage, { recursive: true, force: true });
mkdirSync(join(stage, 'bin'), { recursive: true });
mkdirSync(join(stage, 'lib'), { recursive: true });

await build({
  entryPoints: [join(root, 'packages/agent/dist/main.js')],
  outfile: join(stage, 'lib/ferry-agent.mjs'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  legalComments: 'linked',
  // Bundled CommonJS dependencies (pino and its helpers) may call require().
  banner: { js: "import { createRequire as __ferryCreateRequire } from 'node:module'; const require = __ferryCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

copyFileSync(process.execPath, join(stage, 'bin/node'));
chmodSync(join(stage, 'bin/node'), 0o755);
const launcher = `#!/bin/sh
# The Ferry agent with its own Node runtime (${process.version}, linux-${process.arch}).
here=$(dirname "$(readlink -f "$0")")
# The agent's process settings, as every agent launcher sets them (AGENT_PROCESS in
# packages/agent/src/flags.ts): V8's young generation capped, and glibc's malloc giving output
# buffers back when they are freed. A GLIBC_TUNABLES of your own comes after these and wins.
GLIBC_TUNABLES="${AGENT_PROCESS.glibcTunables}\${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"
export GLIBC_TUNABLES
exec "$here/bin/node" ${AGENT_PROCESS.nodeArgs.join(' ')} "$here/lib/ferry-agent.mjs" "$@"
`;
writeFileSync(join(stage, 'ferry-agent'), launcher, { mode: 0o755 });

const tarball = join(outDir, `${name}.tar.gz`);
execFileSync('tar', ['-C', outDir, '-czf', tarball, '--owner=0', '--group=0', name]);
rmSync(stage, { recursive: true, force: true });
process.stdout.write(`${tarball}\n`);
