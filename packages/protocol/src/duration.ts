const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `90`, `90s`, `5m`, `1h30m`, `250ms` into seconds. Returns undefined when malformed. */
export function parseDurationSeconds(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) return undefined;
  return parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] ?? 's'] ?? 1), 0);
}

/**
 * Size units, case-insensitive. The rule: a unit that spells out "B" after a decimal prefix is
 * decimal (`KB` = 1000, `MB`, `GB`, as disks and networks count); everything else is binary
 * (`K`, `Ki`, `KiB` = 1024, and likewise `M`, `G`), as memory limits are written
 * (`--memory 512M` means 512 MiB, as in Docker and most tools that take memory sizes).
 */
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  ki: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
};

/** Parses `1048576`, `512M`, `100MiB`, `2GB` into bytes. Returns undefined when malformed. */
export function parseSizeBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

/**
 * Bytes as people read them: `512 MiB`, `1.5 GiB`, `900 KiB`, `100 bytes`. Binary units, the
 * ones limits are written in; at most one decimal, and only when the value is not whole.
 */
export function formatSize(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'] as const;
  if (!Number.isFinite(bytes) || Math.abs(bytes) < 1024) return `${bytes} byte${bytes === 1 ? '' : 's'}`;
  let value = bytes;
  let unit: string = 'bytes';
  for (const u of units) {
    if (Math.abs(value) < 1024) break;
    value /= 1024;
    unit = u;
  }
  const shown = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  return `${shown} ${unit}`;
}

/** `7776000` → `90d`, `5400` → `1h30m`, `42` → `42s`: the form parseDurationSeconds reads. */
export function formatDuration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  let rest = Math.round(seconds);
  let text = '';
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) text += `${n}${unit}`;
    rest -= n * size;
  }
  return text;
}
