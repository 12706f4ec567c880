/** Plain-text tables and JSON for list/show commands; what the server sent is escaped (terminal.ts). */
import { safeJson, terminalSafe } from './terminal.js';

export function printJson(value: unknown): void {
  process.stdout.write(safeJson(value) + '\n');
}

export function printTable(headers: readonly string[], unsafeRows: readonly (readonly string[])[]): void {
  const rows = unsafeRows.map((r) => r.map(terminalSafe));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  process.stdout.write([line(headers), ...rows.map(line)].join('\n') + '\n');
}

export function printFields(fields: readonly (readonly [string, string])[]): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  process.stdout.write(fields.map(([k, v]) => `${(k + ':').padEnd(width + 1)} ${terminalSafe(v)}`).join('\n') + '\n');
}

export function ago(iso: string | null): string {
  if (!iso) return '-';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
