#!/usr/bin/env node
/**
 * `ferry`: the command line. `ferry --version` answers here, before commander and the command
 * definitions load (it is what scripts and health checks call most); everything else is
 * program.ts.
 */
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  process.stdout.write(`${version}\n`);
} else {
  await import('./program.js');
}
