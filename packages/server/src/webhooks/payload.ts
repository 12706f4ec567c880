/**
 * What a webhook delivery says: ids, names, statuses and links, never a secret; the script only
 * as a short excerpt redacted like output (at the target's level, secrets at least). Two forms:
 * `json` (Ferry's own) and `slack` (an incoming-webhook message with blocks).
 */
import { neutralizeControlCharacters as safe, type WebhookEvent, type WebhookFormat } from '@ferry/protocol';
import { redactText } from '../redaction/engine.js';
import type { ReviewDecisionRow, TaskRow } from '../store/types.js';

/** Characters of the script a Slack message shows. */
const SCRIPT_EXCERPT_CHARS = 400;

interface PayloadInput {
  deliveryId: string;
  event: WebhookEvent;
  task: TaskRow;
  decisions: readonly ReviewDecisionRow[];
  publicUrl: string;
  at: number;
}

/** Links into the web UI (the approve and reject buttons live on the task's page). */
function links(publicUrl: string, taskId: string): { task: string; api: string; approve: string; reject: string } {
  const page = `${publicUrl}/ui/tasks/${encodeURIComponent(taskId)}`;
  return { task: page, api: `${publicUrl}/v1/tasks/${encodeURIComponent(taskId)}`, approve: `${page}?review=approve`, reject: `${page}?review=reject` };
}

function scriptExcerpt(task: TaskRow): string {
  const level = task.targetRedact === 'none' ? 'secrets' : task.targetRedact;
  const head = task.script.length > SCRIPT_EXCERPT_CHARS ? `${task.script.slice(0, SCRIPT_EXCERPT_CHARS)}…` : task.script;
  return redactText(level, head);
}

function jsonPayload(p: PayloadInput): Record<string, unknown> {
  const t = p.task;
  const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: p.deliveryId,
    event: p.event,
    at: new Date(p.at).toISOString(),
    task: {
      id: t.id,
      target: t.targetName,
      status: t.status,
      exitCode: t.exitCode,
      reason: t.reason === null ? null : safe(t.reason),
      createdBy: t.createdBy,
      createdAt: iso(t.createdAt),
      finishedAt: iso(t.finishedAt),
      scriptExcerpt: scriptExcerpt(t),
    },
    review: t.review
      ? {
          rule: t.review.rule,
          group: t.review.groupName,
          approvalsNeeded: t.review.approvals,
          decisions: p.decisions.map((d) => ({ by: d.actor, decision: d.decision, comment: d.comment })),
          expiresAt: iso(t.review.expiresAt),
        }
      : null,
    links: links(p.publicUrl, t.id),
  };
}

const HEADLINES: Record<WebhookEvent, (t: TaskRow) => string> = {
  'task.pending_review': (t) => `Task ${t.id} on *${t.targetName}* is waiting for review`,
  'task.approved': (t) => `Task ${t.id} on *${t.targetName}* was approved and is queued`,
  'task.rejected': (t) => `Task ${t.id} on *${t.targetName}* was rejected`,
  'task.finished': (t) => `Task ${t.id} on *${t.targetName}* ended: ${t.status}${t.exitCode !== null ? ` (exit code ${t.exitCode})` : ''}`,
};

/** Slack's mrkdwn treats these as markup. */
const mrkdwn = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function slackPayload(p: PayloadInput): Record<string, unknown> {
  const t = p.task;
  const l = links(p.publicUrl, t.id);
  const headline = HEADLINES[p.event](t);
  const blocks: Record<string, unknown>[] = [
    { type: 'section', text: { type: 'mrkdwn', text: headline } }, // ids, target names and statuses: no markup in them
    {
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: `*Target*\n${mrkdwn(t.targetName)}` },
        { type: 'mrkdwn', text: `*Author*\n${mrkdwn(t.createdBy)}` },
        { type: 'mrkdwn', text: `*Status*\n${t.status}` },
        ...(t.reason ? [{ type: 'mrkdwn', text: `*Reason*\n${mrkdwn(safe(t.reason))}` }] : []),
      ],
    },
    { type: 'section', text: { type: 'mrkdwn', text: `\`\`\`${mrkdwn(scriptExcerpt(t)).replace(/```/g, "'''")}\`\`\`` } },
  ];
  const buttons: Record<string, unknown>[] = [{ type: 'button', text: { type: 'plain_text', text: 'Open task' }, url: l.task }];
  if (t.status === 'pending_review') {
    buttons.push({ type: 'button', style: 'primary', text: { type: 'plain_text', text: 'Approve' }, url: l.approve });
    buttons.push({ type: 'button', style: 'danger', text: { type: 'plain_text', text: 'Reject' }, url: l.reject });
  }
  blocks.push({ type: 'actions', elements: buttons });
  return { text: `${headline.replace(/\*/g, '')}: ${l.task}`, blocks };
}

export function webhookBody(format: WebhookFormat, input: PayloadInput): string {
  return JSON.stringify(format === 'slack' ? slackPayload(input) : jsonPayload(input));
}
