#!/usr/bin/env node
/**
 * `ferry`: the command line. User-facing output goes to stdout/stderr; errors exit non-zero with
 * the reason. This module loads only commander and the command definitions: each command's
 * implementation (and zod, the schemas, the HTTPS client) loads when that command runs.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { registerAgentCommands } from './commands/agent.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerLoginCommand } from './commands/login.js';
import { registerRunCommand } from './commands/run.js';
import { registerServerCommand } from './commands/server.js';
import { registerSecretCommands } from './commands/secret.js';
import { registerTargetCommands } from './commands/target.js';
import { registerTaskCommands } from './commands/task.js';
import { reportError } from './report-error.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

// `ferry task logs ID | head`: a closed pipe ends the command quietly, as in other Unix tools.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command('ferry')
  .version(version)
  .description('Run scripts and commands against infrastructure through agents.')
  .showHelpAfterError()
  // Options after a subcommand's name belong to it (`ferry server install --listen X`).
  .enablePositionalOptions()
  .exitOverride();

registerServerCommand(program);
registerLoginCommand(program);
registerTargetCommands(program);
registerSecretCommands(program);
registerRunCommand(program);
registerTaskCommands(program);
registerAgentCommands(program);
registerAuditCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  process.exit(reportError(err));
});
