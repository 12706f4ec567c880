#!/usr/bin/env node
/** `ferry`: the command line. User-facing output goes to stdout/stderr; errors exit non-zero with the reason. */
import { Command, CommanderError } from 'commander';
import { ConfigError, FERRY_VERSION } from '@ferry/protocol';
import { ApiError, CredentialError, ExecutorUnavailableError, FatalAgentError } from '@ferry/agent';
import { registerAgentCommands } from './commands/agent.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerLoginCommand } from './commands/login.js';
import { registerRunCommand } from './commands/run.js';
import { registerServerCommand } from './commands/server.js';
import { registerSecretCommands } from './commands/secret.js';
import { registerTargetCommands } from './commands/target.js';
import { registerTaskCommands } from './commands/task.js';
import { UsageError } from './errors.js';

const program = new Command('ferry')
  .version(FERRY_VERSION)
  .description('Run scripts and commands against infrastructure through agents.')
  .showHelpAfterError()
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
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof UsageError || err instanceof ConfigError) {
    process.stderr.write(`ferry: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof ApiError) {
    process.stderr.write(`ferry: ${err.message}${err.code.startsWith('FERRY_E_') ? ` (${err.code})` : ''}\n`);
    process.exit(1);
  }
  if (err instanceof CredentialError || err instanceof FatalAgentError || err instanceof ExecutorUnavailableError) {
    process.stderr.write(`ferry: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`ferry: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
