import { z } from 'zod';
import { loadConfig } from '@ferry/protocol';

export const AgentConfigSchema = z.object({
  dataDir: z.string().default('./ferry-agent-data'),
  joinToken: z.string().optional(),
  name: z.string().min(1).max(100).optional(),
  concurrency: z.coerce.number().int().min(1).max(256).default(4),
  executor: z.enum(['sandbox', 'process', 'auto']).default('auto'),
  /** Time between SIGTERM and SIGKILL when a task is cancelled or times out. */
  graceSeconds: z.coerce.number().min(0).max(600).default(10),
  pollWaitSeconds: z.coerce.number().min(0).max(30).default(30),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type AgentConfig = Readonly<z.infer<typeof AgentConfigSchema>>;

export function loadAgentConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv, file?: string): AgentConfig {
  return loadConfig(AgentConfigSchema, { flags, env, file });
}
