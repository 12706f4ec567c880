#!/usr/bin/env node
/**
 * `ferry`: the command line. `ferry --version` answers here, before commander and the command
 * definitions load (it is what scripts and health checks call most); `ferry agent start` loads
 * only the agent (agent-start.ts: a long-running process should hold nothing else); everything
 * else is program.ts.
 */
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  process.stdout.write(`${version}\n`);
} else if (args[0] === 'agent' && args[1] === 'start') {
  const { agentStartValues, startAgentFast } = await import('./agent-start.js');
  const values = agentStartValues(args.slice(2));
  if (values) await startAgentFast(values);
  else await import('./program.js');
} else {
  await import('./program.js');
}
