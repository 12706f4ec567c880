export { runAgent } from './start.js';
export { loadAgentConfig, AgentConfigSchema, type AgentConfig } from './config.js';
export { ApiClient, type RawResponse } from './api/client.js';
export { ApiError, isRetryable, isFatal, backoffMs } from './api/errors.js';
export { fetchPinnedCa, fingerprintOf } from './api/pinning.js';
export { CredentialError } from './credential.js';
export { FatalAgentError } from './worker.js';
export { ExecutorUnavailableError, selectExecutor } from './executor/select.js';
export type { Executor, Sandbox, RunSpec, RunningProcess } from './executor/types.js';
