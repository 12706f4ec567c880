/** How times, durations and people are shown. */
import type { Task } from '@ferry/protocol';

export function when(iso: string | null): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** From start to end (or to now, while it runs); '–' before it started. */
export function taskDuration(task: Task, now = Date.now()): string {
  if (!task.startedAt) return '–';
  const end = task.finishedAt ? Date.parse(task.finishedAt) : now;
  return duration(end - Date.parse(task.startedAt));
}

/** `person:ada@example.com (token k_…)` → `ada@example.com`. */
export function who(actor: string): string {
  const m = /^(?:person|service):(.+?)(?: \(.*\))?$/.exec(actor);
  return m?.[1] ?? actor;
}

export function statusLabel(status: string): string {
  return status.replace(/_/g, ' ');
}
