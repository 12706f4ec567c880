import { CreateWebhookRequest } from '@ferry/protocol';
import { ago, printJson, printTable } from '../format.js';
import { withClient } from '../run-command.js';
import { countFlag, parseOrUsage } from '../validate.js';

export async function createWebhook(url: string, opts: { events: string; format: string; json?: boolean }): Promise<void> {
  const events = opts.events
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  const body = parseOrUsage(CreateWebhookRequest, { url, events, format: opts.format }, 'webhook', { url: 'URL', events: '--events', format: '--format' });
  await withClient(async (client, routes) => {
    const w = await client.call(routes.createWebhook, { body });
    if (opts.json) return printJson(w);
    process.stdout.write(`Created webhook ${w.id} (${w.format}) for ${w.events.join(', ')}.\n`);
    process.stdout.write('Its signing secret, shown only now (the README says how a receiver checks a delivery):\n');
    process.stdout.write(`${w.secret}\n`);
  });
}

export async function listWebhooks(opts: { json?: boolean }): Promise<void> {
  await withClient(async (client, routes) => {
    const { webhooks } = await client.call(routes.listWebhooks);
    if (opts.json) return printJson(webhooks);
    printTable(
      ['ID', 'URL', 'EVENTS', 'FORMAT', 'CREATED'],
      webhooks.map((w) => [w.id, w.url, w.events.join(','), w.format, ago(w.createdAt)]),
    );
  });
}

export async function deleteWebhook(id: string): Promise<void> {
  await withClient(async (client, routes) => {
    await client.call(routes.deleteWebhook, { params: { id } });
    process.stdout.write(`Deleted webhook ${id}.\n`);
  });
}

export async function listDeliveries(id: string, opts: { limit: string; json?: boolean }): Promise<void> {
  const limit = countFlag('--limit', opts.limit, 1, 1000);
  await withClient(async (client, routes) => {
    const { deliveries } = await client.call(routes.listWebhookDeliveries, { params: { id }, query: { limit } });
    if (opts.json) return printJson(deliveries);
    printTable(
      ['ID', 'EVENT', 'TASK', 'STATUS', 'ATTEMPTS', 'LAST', 'NEXT'],
      deliveries.map((d) => {
        const last = d.attempts.at(-1);
        const lastText = last ? (last.httpStatus !== null ? `HTTP ${last.httpStatus}` : (last.error ?? 'failed')) : '-';
        return [d.id, d.event, d.taskId, d.status, String(d.attempts.length), lastText, d.nextAttemptAt ?? '-'];
      }),
    );
  });
}
