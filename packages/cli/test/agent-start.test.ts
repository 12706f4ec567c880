/**
 * `ferry agent start` is a long-running process, so it loads only the agent: not commander and
 * the command table, not the server, not a second copy of zod from node_modules. Checked on the
 * bundled CLI users run, by recording every module the process resolves.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { agentStartValues } from '../src/agent-start.js';

const BUNDLE = fileURLToPath(new URL('../bundle/main.js', import.meta.url));

test('agent start flags parse as ferry-agent parses them; anything else goes to the full program', () => {
  assert.deepEqual(agentStartValues(['--data-dir', '/d', '--concurrency=2']), { 'data-dir': '/d', concurrency: '2' });
  assert.deepEqual(agentStartValues([]), {});
  assert.equal(agentStartValues(['--help']), undefined);
  assert.equal(agentStartValues(['-h']), undefined);
  assert.equal(agentStartValues(['--bogus', 'x']), undefined);
  assert.equal(agentStartValues(['--name']), undefined, 'a flag without its value');
  assert.equal(agentStartValues(['extra']), undefined, 'a positional argument');
});

test('`ferry agent start` loads the agent and not the rest of the CLI, the server or node_modules copies', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-start-'));
  try {
    const log = join(dir, 'resolved.txt');
    // Loader hooks (they run off the main thread in Node 20) append each resolved URL to a file.
    writeFileSync(
      join(dir, 'hooks.mjs'),
      `import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(log)}, r.url + '\\n'); return r; }\n`,
    );
    writeFileSync(
      join(dir, 'register.mjs'),
      `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
    );
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERRY_')));
    const run = spawnSync(
      process.execPath,
      ['--import', pathToFileURL(join(dir, 'register.mjs')).href, BUNDLE, 'agent', 'start', '--data-dir', join(dir, 'data'), '--executor', 'process'],
      { encoding: 'utf8', env, timeout: 30_000 },
    );
    // No credential and no join token: the agent itself refuses, after loading what it runs with.
    assert.equal(run.status, 255, run.stderr);
    assert.match(run.stderr, /No credential in .* and no join token/);
    const resolved = readFileSync(log, 'utf8').trim().split('\n');
    assert.ok(
      resolved.some((u) => /\/bundle\/agent-start-\w+\.js$/.test(u)),
      `the agent's own entry chunk loads:\n${resolved.join('\n')}`,
    );
    const unwanted = resolved.filter((u) => /\/bundle\/program-\w+\.js$|\/node_modules\/|@ferry\/server|commander/.test(u));
    assert.deepEqual(unwanted, [], 'no command table, no server, nothing unbundled');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
