/**
 * The flags of `ferry agent start` (the CLI, commander) and `ferry-agent start` (main.ts,
 * node:util parseArgs), defined once: both build their options and help from this table and
 * load the configuration through `agentConfigFromFlags` (config.ts), so the two commands cannot drift.
 */
// Imports nothing at run time: the CLI loads this table to build `ferry agent start --help`
// without loading zod and the rest of the agent (published as `@ferry/agent/flags`).
import type { AgentConfig } from './config.js';

export interface AgentStartFlag {
  /** The long flag without its dashes (`join-token` is `--join-token`). */
  readonly flag: string;
  /** The configuration key it sets; `config` names the config file instead. */
  readonly key: keyof AgentConfig | 'config';
  /** The value's placeholder in help text. */
  readonly value: string;
  readonly description: string;
}

export const AGENT_START_FLAGS = [
  {
    flag: 'join-token',
    key: 'joinToken',
    value: 'TOKEN',
    description: 'one-time join token (needed the first time; a new one replaces the credential stored in the data folder; also FERRY_JOIN_TOKEN)',
  },
  {
    flag: 'server',
    key: 'server',
    value: 'URL[,URL…]',
    description: "the server(s) to use instead of the join token's: several (replicas) comma-separated, failed over between (also FERRY_SERVER)",
  },
  { flag: 'data-dir', key: 'dataDir', value: 'DIR', description: 'where the agent keeps its credential, keys and output spool (default ./ferry-agent-data)' },
  { flag: 'concurrency', key: 'concurrency', value: 'N', description: 'tasks to run at once (default 4)' },
  {
    flag: 'executor',
    key: 'executor',
    value: 'sandbox|process',
    description: 'sandbox (bubblewrap, needs root; the default) or process (no isolation: only when chosen)',
  },
  { flag: 'name', key: 'name', value: 'NAME', description: 'agent name (default: host name and a short random suffix, e.g. web-1-3f9a)' },
  { flag: 'log-format', key: 'logFormat', value: 'json|pretty', description: 'log lines as JSON or readable text (default: pretty on a terminal, else JSON)' },
  { flag: 'config', key: 'config', value: 'FILE', description: 'JSON config file (also FERRY_AGENT_CONFIG)' },
  {
    flag: 'task-uids',
    key: 'taskUids',
    value: 'FIRST-LAST',
    description: 'host uids for sandboxed tasks, one per running task (default 1879048192-1879113727)',
  },
  {
    flag: 'sandbox-pool',
    key: 'sandboxPool',
    value: 'N',
    description: 'most sandboxes started ahead of their tasks, sized by recent demand (default: --concurrency; 0 turns the pool off)',
  },
] as const satisfies readonly AgentStartFlag[];

/** The options part of a usage text: one line per flag, from the table. */
export function agentStartHelp(): string {
  const names = AGENT_START_FLAGS.map((f) => `--${f.flag} ${f.value}`);
  const width = Math.max(...names.map((n) => n.length));
  return AGENT_START_FLAGS.map((f, i) => `  ${(names[i] ?? '').padEnd(width)}  ${f.description}`).join('\n');
}

/**
 * How the agent's Node process is started by every launcher users run (`./ferry agent start`,
 * the systemd unit `ferry agent install` writes, the standalone tarball's `ferry-agent`, so the
 * container image, Helm chart and ECS tasks): settings that only take effect when the process
 * starts. Only the agent gets them, not `ferry server` or other commands. Measured on a worked
 * agent (bench/README.md, "the agent's memory after work, as users start it" and "where a
 * worked agent's memory goes"):
 * - V8's young generation at 1 MiB a half (Node grows it to 16 MiB): its pages stay resident
 *   after a burst of work, for no gain in CPU per MiB of output on this workload.
 * - glibc's malloc with fixed thresholds (setting them turns off glibc's moving ones, which
 *   rise to 32 MiB): blocks of 8 KiB and more get their own mappings, returned when freed, and
 *   the main heap's top goes back above 128 KiB free; two arenas for the agent's threads
 *   instead of up to 8 per CPU. glibc gives back only the top of its main heap, so what grows
 *   that heap during work stays resident: TLS records (16 KiB, allocated and freed per record),
 *   V8's compiler zones and Node's 8 KiB buffer pools, churned by every task, left a worked
 *   agent's heap at 12–15 MiB, 75 % of it free (gdb, malloc_info; 3.9 MiB fresh). With 8 KiB,
 *   5–6.5 MiB. The task's pipes allocate nothing per read (executor/pipe-reader.ts), which is
 *   what made a low threshold cost ~0.7–1 ms of CPU per MiB of output before (a mapping and
 *   16 page faults per 64 KiB read); agent CPU per MiB measured the same within noise.
 * GLIBC_TUNABLES needs glibc ≥ 2.26 (Debian 12: 2.36); other C libraries ignore it.
 */
export const AGENT_PROCESS = {
  nodeArgs: ['--max-semi-space-size=1'],
  glibcTunables: 'glibc.malloc.mmap_threshold=8192:glibc.malloc.trim_threshold=131072:glibc.malloc.arena_max=2',
} as const;
