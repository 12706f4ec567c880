import { statusLabel } from '../lib/format';

/** A task's status as a badge (colour and text: never colour alone). */
export function StatusBadge({ status }: { status: string }) {
  return <span class={`status ${status}`}>{statusLabel(status)}</span>;
}
