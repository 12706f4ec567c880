/**
 * `ferry`: the command line. User-facing output goes to stdout/stderr; the CLI's own failures
 * exit 255 with the reason (exit-codes.ts). This module loads only commander and the command definitions: each command's
 * implementation (and zod, the schemas, the HTTPS client) loads when that command runs.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { registerAgentCommands } from './commands/agent.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerGroupCommands } from './commands/group.js';
import { registerLoginCommand } from './commands/login.js';
import { registerOrgCommands } from './commands/org.js';
import { registerRunCommand } from './commands/run.js';
import { registerServerCommand } from './commands/server.js';
import { registerSecretCommands } from './commands/secret.js';
import { registerTargetCommands } from './commands/target.js';
import { registerReviewCommands, registerTaskCommands } from './commands/task.js';
import { registerTokenCommands } from './commands/token.js';
import { registerWebhookCommands } from './commands/webhook.js';
import { registerRunbookCommands } from './commands/runbook.js';
import { registerUserCommands } from './commands/user.js';
import { CLI_FAILURE } from './exit-codes.js';
import { reportError } from './report-error.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

// `ferry run … | head -1`, `ferry task logs ID | head`: a closed pipe ends the command quietly,
// as in other Unix tools (which SIGPIPE kills; Node ignores SIGPIPE and reports EPIPE instead).
// The task is not cancelled: only the reader went away.
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') process.exit(0);
    throw err;
  });
}
quietOnClosedPipe(process.stdout);
quietOnClosedPipe(process.stderr);

const EXIT_CODES_HELP = `
Exit codes:
  ferry run, task logs -f and task wait exit with the task's own exit code; a task that did not
  exit on its own gives 124 (timed out), 130 (cancelled), 75 (lost its agent), 70 (could not
  start), 77 (rejected in review), 128+N (killed by signal N). Every other ending prints one
  line on stderr.
  ${CLI_FAILURE}: the CLI itself failed (a wrong flag or value, a refused request, an unreachable
  server, a missing file), as ssh does; the reason is on stderr.`;

const program = new Command('ferry')
  .version(version)
  .description('Run scripts and commands against infrastructure through agents.')
  .showHelpAfterError()
  .addHelpText('after', EXIT_CODES_HELP)
  // Options after a subcommand's name belong to it (`ferry server install --listen X`).
  .enablePositionalOptions()
  .exitOverride();

registerServerCommand(program);
registerLoginCommand(program);
registerTargetCommands(program);
registerSecretCommands(program);
registerRunCommand(program);
registerTaskCommands(program);
registerReviewCommands(program);
registerAgentCommands(program);
registerAuditCommands(program);
registerOrgCommands(program);
registerTokenCommands(program);
registerGroupCommands(program);
registerWebhookCommands(program);
registerRunbookCommands(program);
registerUserCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : CLI_FAILURE);
  process.exit(reportError(err));
});
