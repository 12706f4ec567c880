/**
 * `@ferry/agent`: what running an agent needs. `ferry agent start` (the CLI) and `ferry-agent
 * start` (main.ts) both take their flags from AGENT_START_FLAGS and their configuration from
 * agentConfigFromFlags. Talking to the server is @ferry/client's job, not this package's.
 */
export { runAgent, type RunAgentOptions } from './start.js';
export { loadAgentConfig, agentConfigFromFlags, AgentConfigSchema, type AgentConfig } from './config.js';
export { AGENT_START_FLAGS, type AgentStartFlag } from './flags.js';
export { CredentialError } from './credential.js';
export { FatalAgentError } from './server-answers.js';
export { ExecutorUnavailableError } from './executor/select.js';
