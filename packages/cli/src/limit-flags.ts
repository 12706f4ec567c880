/**
 * A target's limit flags checked in the user's own terms and units before anything is sent:
 * `--memory 512` is 512 bytes, and the answer says so, with the minimum in MiB and what to
 * write instead, rather than the schema's `limits.memoryBytes: Too small: expected number to
 * be >=16777216`. The bounds are the protocol's (TargetLimits); the server's own maxima, which
 * depend on its configuration, come back as FERRY_E_LIMIT_TOO_HIGH and are put in these terms
 * too (`limitTooHigh`).
 */
import { MAX_TIMEOUT_SECONDS, formatSize, parseDurationSeconds, parseSizeBytes } from '@ferry/protocol';
import { UsageError } from './errors.js';
import { formatDuration } from './exit-codes.js';

interface LimitFlag {
  flag: string;
  /** The key in TargetLimits. */
  key: 'timeoutSeconds' | 'maxOutputBytes' | 'maxProcesses' | 'memoryBytes';
  parse(text: string): number | undefined;
  show(n: number): string;
  /** What the value should look like, for a value that does not parse. */
  example: string;
  min: number;
  max?: number;
  /** A whole number is wanted (bytes, processes). */
  integer: boolean;
  /** The unit a bare number probably meant (`--memory 512` → `512MiB`). */
  likelyUnit?: string;
}

const LIMIT_FLAGS: readonly LimitFlag[] = [
  {
    flag: '--timeout',
    key: 'timeoutSeconds',
    parse: parseDurationSeconds,
    show: formatDuration,
    example: '90s, 5m or 1h',
    min: 0.001,
    max: MAX_TIMEOUT_SECONDS,
    integer: false,
  },
  {
    flag: '--max-output',
    key: 'maxOutputBytes',
    parse: parseSizeBytes,
    show: formatSize,
    example: '100MiB',
    min: 1024,
    integer: true,
    likelyUnit: 'MiB',
  },
  {
    flag: '--max-processes',
    key: 'maxProcesses',
    parse: (v) => (/^\d+$/.test(v.trim()) ? Number(v) : undefined),
    show: (n) => `${n} process${n === 1 ? '' : 'es'}`,
    example: '256',
    min: 8,
    max: 1_000_000,
    integer: true,
  },
  {
    flag: '--memory',
    key: 'memoryBytes',
    parse: parseSizeBytes,
    show: formatSize,
    example: '512MiB or 2GiB',
    min: 16 * 1024 * 1024,
    integer: true,
    likelyUnit: 'MiB',
  },
];

function checkOne(f: LimitFlag, text: string): number {
  const n = f.parse(text);
  if (n === undefined || Number.isNaN(n)) throw new UsageError(`${f.flag} ${text} is not understood; write e.g. ${f.flag} ${f.example}.`);
  const bare = /^\s*\d+(\.\d+)?\s*$/.test(text);
  const said = bare && f.likelyUnit ? `${f.flag} ${text} is ${f.show(n)}` : `${f.flag} ${text}`;
  if (n < f.min) {
    const hint = bare && f.likelyUnit ? ` (write e.g. ${f.flag} ${text}${f.likelyUnit})` : '';
    throw new UsageError(`${said}; the minimum is ${f.show(f.min)}${hint}.`);
  }
  if (f.max !== undefined && n > f.max) throw new UsageError(`${said} is above the maximum of ${f.show(f.max)}.`);
  if (f.integer && !Number.isInteger(n)) throw new UsageError(`${f.flag} ${text} must be a whole number${f.likelyUnit ? ' of bytes' : ''}.`);
  return n;
}

/** The limits the user gave, keyed as TargetLimits, each checked (UsageError in the user's terms). */
export function limitsFromFlags(values: Partial<Record<LimitFlag['key'], string>>): Record<string, number> {
  const limits: Record<string, number> = {};
  for (const f of LIMIT_FLAGS) {
    const text = values[f.key];
    if (text !== undefined) limits[f.key] = checkOne(f, text);
  }
  return limits;
}

/** The server's FERRY_E_LIMIT_TOO_HIGH (`details: { limit, maximum }`) in the flag's terms, or undefined. */
export function limitTooHigh(details: Record<string, unknown> | undefined, given: Partial<Record<LimitFlag['key'], string>>): string | undefined {
  const f = LIMIT_FLAGS.find((l) => l.key === details?.limit);
  const maximum = details?.maximum;
  if (!f || typeof maximum !== 'number') return undefined;
  return `${f.flag} ${given[f.key] ?? ''} is above this server's maximum of ${f.show(maximum)}.`;
}
