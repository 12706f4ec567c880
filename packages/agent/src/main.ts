#!/usr/bin/env node
/** `ferry-agent start …`: the agent on its own, for a small self-hosted install. */
import { parseArgs } from 'node:util';
import { FERRY_VERSION } from '@ferry/protocol';
import { agentConfigFromFlags } from './config.js';
import { AGENT_START_FLAGS, agentStartHelp } from './flags.js';
import { runAgent } from './start.js';

const USAGE = `usage: ferry-agent start [options] | ferry-agent --version\n${agentStartHelp()}\n`;

function parseCommandLine(): { command: string | undefined; values: Record<string, string | undefined> } {
  const options = Object.fromEntries(AGENT_START_FLAGS.map((f) => [f.flag, { type: 'string' as const }]));
  const { values, positionals } = parseArgs({ allowPositionals: true, options });
  const strings = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === 'string' ? v : undefined]));
  return { command: positionals[0], values: strings };
}

async function main(): Promise<void> {
  if (process.argv[2] === '--version') {
    process.stdout.write(`${FERRY_VERSION}\n`);
    return;
  }
  const { command, values } = parseCommandLine();
  if (command !== 'start') {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  await runAgent(agentConfigFromFlags(values, process.env));
}

main().catch((err: unknown) => {
  process.stderr.write(`ferry-agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
