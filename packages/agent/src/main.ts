#!/usr/bin/env node
/** `ferry-agent start …`: the agent on its own, for a small self-hosted install. */
import { parseArgs } from 'node:util';
import { loadAgentConfig } from './config.js';
import { runAgent } from './start.js';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'join-token': { type: 'string' }, 'data-dir': { type: 'string' }, concurrency: { type: 'string' },
      executor: { type: 'string' }, name: { type: 'string' }, config: { type: 'string' },
    },
  });
  if (positionals[0] !== 'start') {
    process.stderr.write('usage: ferry-agent start --join-token TOKEN [--data-dir DIR] [--concurrency N] [--executor sandbox|process] [--name NAME]\n');
    process.exit(2);
  }
  const config = loadAgentConfig({
    joinToken: values['join-token'], dataDir: values['data-dir'], concurrency: values.concurrency, executor: values.executor, name: values.name,
  }, process.env, values.config ?? process.env.FERRY_AGENT_CONFIG);
  await runAgent(config);
}

main().catch((err: unknown) => {
  process.stderr.write(`ferry-agent: ${(err as Error).message}\n`);
  process.exit(1);
});
