import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

const actions = (): Promise<Record<string, unknown>> => import('../actions/target.js');

/** Commander's way to take a flag more than once. */
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const REVIEW_HELP = 'tasks wait for approval before any agent gets them: none, any (anyone but the author who may run tasks here) or group:NAME';
const APPROVALS_HELP = 'with --review: distinct approvals a task needs (default 1)';
const EXPIRY_HELP = 'with --review: a task not approved within this is rejected, e.g. 4h (default 1d)';

const SETTING_HELP = 'a plain (not secret) setting, given to tasks as an environment variable and never masked; repeatable';

export function registerTargetCommands(program: Command): void {
  const target = program.command('target').description('targets: what tasks run against');

  target
    .command('create <name>')
    .description('register a target')
    .requiredOption('--type <type>', 'target type: shell, python, node, postgres, postgres-csv, mysql, mysql-csv, kubernetes, aws')
    .option('--agent <mode>', 'who runs its tasks: hosted (default) or self-hosted', 'hosted')
    .option(
      '--network <policy>',
      "none (private loopback only; default for script types), public (the internet only, not private or link-local addresses, the agent host or the server; default for hosted database, cluster and cloud targets) or host (the agent host's network; default for self-hosted ones)",
    )
    .option('--timeout <duration>', 'default task timeout, e.g. 30m (server default otherwise)')
    .option('--max-output <size>', 'output kept per task, e.g. 100MiB; the rest is cut with a notice')
    .option('--max-processes <n>', 'processes a task may have at once')
    .option('--memory <size>', 'memory a task may use, e.g. 1GiB')
    .option('--redact <level>', 'server-side redaction before storage: secrets (default), all (also personal data), none')
    .option('--setting <KEY=VALUE>', SETTING_HELP, collect)
    .option('--review <rule>', REVIEW_HELP)
    .option('--approvals <n>', APPROVALS_HELP)
    .option('--review-expiry <duration>', EXPIRY_HELP)
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'createTarget'));

  target
    .command('update <name>')
    .description("change a target's options; its type, sealing key, secrets and agents stay")
    .option('--network <policy>', 'none, public or host')
    .option('--timeout <duration>', 'default task timeout, e.g. 30m')
    .option('--max-output <size>', 'output kept per task, e.g. 100MiB')
    .option('--max-processes <n>', 'processes a task may have at once')
    .option('--memory <size>', 'memory a task may use, e.g. 1GiB')
    .option('--redact <level>', 'server-side redaction before storage: secrets, all, none')
    .option('--setting <KEY=VALUE>', SETTING_HELP, collect)
    .option('--unset-setting <KEY>', 'remove a setting; repeatable', collect)
    .option('--review <rule>', REVIEW_HELP)
    .option('--approvals <n>', APPROVALS_HELP)
    .option('--review-expiry <duration>', EXPIRY_HELP)
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'updateTarget'));

  target.command('list').description('list targets').option('--json', 'print JSON').action(lazyAction(actions, 'listTargets'));

  target.command('show <name>').description('show one target').option('--json', 'print JSON').action(lazyAction(actions, 'showTarget'));

  target
    .command('rotate-key <name>')
    .description('make a new sealing key and re-seal every secret with it, inside an agent that holds the key; waits until it is done')
    .option('--wait <duration>', 'how long to wait for an agent to do it', '2m')
    .option('--discard-secrets', 'only when no agent holds the key any more: make a new key and delete the secrets (set them again after)')
    .option('--json', 'print the target as JSON when done')
    .action(lazyAction(actions, 'rotateTargetKey'));

  target.command('delete <name>').description('delete a target (refused while it has queued or running tasks)').action(lazyAction(actions, 'deleteTarget'));

  // Grants live with groups (actions/group.ts): a group's members get its role on the target.
  const grants = (): Promise<Record<string, unknown>> => import('../actions/group.js');
  target
    .command('grant <target>')
    .description("give a group's members a role on the target (admins); a target without grants is seen by admins only")
    .requiredOption('--group <group>', 'the group')
    .requiredOption('--role <role>', 'operator (runs tasks, sees them) or viewer (reads)')
    .option('--json', 'print JSON')
    .action(lazyAction(grants, 'grantTarget'));
  target
    .command('revoke-grant <target>')
    .description("take a group's grant on the target away")
    .requiredOption('--group <group>', 'the group')
    .action(lazyAction(grants, 'revokeGrant'));
}
