/**
 * `ferry agent start …` without the rest of the CLI: main.ts comes here instead of program.ts,
 * so the long-running agent process holds only the agent (no commander, no command table, no
 * other command's code). The flags are the agent's own table (AGENT_START_FLAGS), parsed as
 * `ferry-agent start` parses them; anything this parser refuses (an unknown flag, a missing
 * value) goes to the full program, so such errors and `--help` read exactly as before.
 */
import { parseArgs } from 'node:util';
import { AGENT_START_FLAGS } from '@ferry/agent/flags';

/** The flag values of `ferry agent start ARGS`, or undefined when commander should handle ARGS. */
export function agentStartValues(args: readonly string[]): Record<string, string | undefined> | undefined {
  const options = Object.fromEntries(AGENT_START_FLAGS.map((f) => [f.flag, { type: 'string' as const }]));
  try {
    const { values, positionals } = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
    if (positionals.length > 0) return undefined;
    return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === 'string' ? v : undefined]));
  } catch {
    return undefined;
  }
}

/** Runs the agent; exits the way the full program would on an error (report-error.ts). */
export async function startAgentFast(values: Record<string, string | undefined>): Promise<void> {
  try {
    const { agentConfigFromFlags, runAgent } = await import('@ferry/agent');
    await runAgent(agentConfigFromFlags(values, process.env));
  } catch (err) {
    const { reportError } = await import('./report-error.js');
    process.exit(reportError(err));
  }
}
