import type { Logger } from 'pino';
import type { DispatchHub } from './dispatch.js';
import type { Store } from './store/types.js';
import type { ServerConfig } from './config.js';
import type { AuditInput } from './store/types.js';
import type { RawOutputDigests } from './output-pipeline.js';

/** What route modules share. Built once in server.ts. */
export interface ServerContext {
  store: Store;
  hub: DispatchHub;
  config: ServerConfig;
  log: Logger;
  caPem: string;
  caFingerprint: string;
  publicUrl: string;
  digests: RawOutputDigests;
  audit(entry: Omit<AuditInput, 'at'>): Promise<void>;
}
