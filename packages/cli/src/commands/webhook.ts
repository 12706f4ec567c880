import type { Command } from 'commander';
import { lazyAction } from '../lazy.js';

/**
 * The events, written out: importing them from @ferry/protocol would load zod and every schema
 * on each `ferry` start (commands/ are loaded for --help); a test checks the list against the protocol's.
 */
export const EVENTS_HELP = 'task.pending_review, task.approved, task.rejected, task.finished';

const actions = (): Promise<Record<string, unknown>> => import('../actions/webhook.js');

export function registerWebhookCommands(program: Command): void {
  const webhook = program.command('webhook').description('webhooks: task events sent, signed, to an HTTPS receiver (admins)');
  webhook
    .command('create <url>')
    .description('add a receiver; prints its signing secret, once, as the last line')
    .requiredOption('--events <list>', `comma-separated: ${EVENTS_HELP}`)
    .option('--format <format>', 'json (default) or slack (a Slack incoming-webhook message)', 'json')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'createWebhook'));
  webhook.command('list').description('list receivers').option('--json', 'print JSON').action(lazyAction(actions, 'listWebhooks'));
  webhook.command('delete <id>').description('remove a receiver (its pending deliveries are dropped)').action(lazyAction(actions, 'deleteWebhook'));
  webhook
    .command('deliveries <id>')
    .description("a receiver's recent deliveries and every attempt")
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action(lazyAction(actions, 'listDeliveries'));
}
