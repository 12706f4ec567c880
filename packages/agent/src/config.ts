import { z } from 'zod';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { configFile, loadConfig } from '@ferry/protocol';
import { AGENT_START_FLAGS } from './flags.js';
import { isBlockedAddress } from './executor/network-public.js';

export const AgentConfigSchema = z.object({
  dataDir: z.string().default('./ferry-agent-data'),
  joinToken: z.string().optional(),
  /** Server URL(s), comma-separated, over the join token's and the stored credential's. */
  server: z.string().optional(),
  name: z.string().min(1).max(100).optional(),
  concurrency: z.coerce.number().int().min(1).max(256).default(4),
  executor: z.enum(['sandbox', 'process', 'auto']).default('auto'),
  /** Time between SIGTERM and SIGKILL when a task is cancelled or times out. */
  graceSeconds: z.coerce.number().min(0).max(600).default(10),
  pollWaitSeconds: z.coerce.number().min(0).max(30).default(30),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `json` or `pretty`; default: pretty when stderr is a terminal. */
  logFormat: z.enum(['json', 'pretty']).optional(),
  /**
   * Host uids (and gids) the sandbox gives running tasks, one each: FIRST-LAST, inclusive.
   * Default 1879048192-1879113727 (0x70000000-0x7000ffff); see executor/task-uids.ts.
   */
  taskUids: z
    .string()
    .regex(/^\d+-\d+$/, 'use FIRST-LAST, e.g. 1879048192-1879113727')
    .transform((text, ctx) => {
      const [first, last] = text.split('-').map(Number) as [number, number];
      if (last < first) ctx.addIssue({ code: 'custom', message: 'LAST must not be below FIRST' });
      return { first, count: last - first + 1 };
    })
    .optional(),
  /**
   * Resolvers a `--network public` task gets in its /etc/resolv.conf: public IP addresses,
   * comma-separated (the host's own resolver is a private or loopback address it cannot reach).
   */
  publicDns: z
    .string()
    .default('1.1.1.1,8.8.8.8')
    .transform((text, ctx) => {
      const list = text
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
      if (list.length === 0 || list.some((a) => isIP(a) === 0))
        ctx.addIssue({ code: 'custom', message: 'use IP addresses, comma-separated, e.g. 1.1.1.1,8.8.8.8' });
      const unreachable = list.filter((a) => isIP(a) !== 0 && isBlockedAddress(a));
      if (unreachable.length > 0)
        ctx.addIssue({
          code: 'custom',
          message: `${unreachable.join(', ')}: public tasks cannot reach private, loopback or link-local addresses; use public resolvers`,
        });
      return list;
    }),
  /**
   * Most sandboxes started ahead of their tasks (executor/sandbox-pool.ts), sized by recent
   * demand up to this; 0 turns the pool off. Default: concurrency.
   */
  sandboxPool: z.coerce.number().int().min(0).max(256).optional(),
});
export type AgentConfig = Readonly<z.infer<typeof AgentConfigSchema>>;

export function loadAgentConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv, file?: string): AgentConfig {
  return loadConfig(AgentConfigSchema, { flags, env, file: configFile(file, (f) => readFileSync(f, 'utf8')) });
}

/**
 * The agent's configuration from flag values (flags > FERRY_* environment > config file >
 * defaults). `values` may be keyed by each flag's `key` (as commander gives them: `joinToken`)
 * or by its `flag` (as node:util parseArgs does: `join-token`); undefined means "not given".
 * The config file is `--config`, else FERRY_AGENT_CONFIG; a named file must exist.
 */
export function agentConfigFromFlags(values: Readonly<Record<string, string | undefined>>, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const flags: Record<string, string | undefined> = {};
  for (const f of AGENT_START_FLAGS) flags[f.key] = values[f.key] ?? values[f.flag];
  const { config: file, ...rest } = flags;
  return loadAgentConfig(rest, env, file ?? env.FERRY_AGENT_CONFIG);
}
