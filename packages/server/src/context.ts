import type { Logger } from 'pino';
import type { ServerConfig } from './config.js';
import type { DispatchHub } from './dispatch.js';
import type { RateLimits } from './http/route-guard.js';
import type { AuditInput, Store } from './store/types.js';
import type { OpenPolls } from './tasks/open-polls.js';
import type { TaskService } from './tasks/task-service.js';
import type { Webhooks } from './webhooks/service.js';
import type { Runbooks } from './runbooks/service.js';

/** What route modules share. Built once in server.ts. */
export interface ServerContext {
  store: Store;
  hub: DispatchHub;
  config: ServerConfig;
  log: Logger;
  caPem: string;
  caFingerprint: string;
  publicUrl: string;
  tasks: TaskService;
  webhooks: Webhooks;
  runbooks: Runbooks;
  /** Each agent's open long polls, at most its concurrency. */
  polls: OpenPolls;
  rateLimits: RateLimits;
  audit(entry: Omit<AuditInput, 'at'>): Promise<void>;
}
