/**
 * `ferry agent start`: register (first time) or load the stored credential, pick the
 * executor, and run the worker until SIGTERM/SIGINT (drain; a second one cancels), the
 * caller's stop signal (drain), or a fatal error.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { CredentialError, loadCredential, registerAgent, type StoredCredential } from './credential.js';
import { selectExecutor } from './executor/select.js';
import { createLogger } from './logger.js';
import { Worker } from './worker.js';
import { KeyStore } from './secrets/key-store.js';

export interface RunAgentOptions {
  /** Default: pino on stderr at the configured level. */
  logger?: Logger;
  /** Aborting it stops the agent the way a first SIGTERM does: no new work, running tasks finish. */
  signal?: AbortSignal;
}

function sweepSandboxes(dir: string, log: Logger): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const left = readdirSync(dir).filter((name) => name.startsWith('ferry-t_'));
  for (const name of left) rmSync(join(dir, name), { recursive: true, force: true });
  if (left.length > 0) log.warn({ folders: left.length }, 'removed task folders left by an earlier run');
}

async function credentialFor(config: AgentConfig, log: Logger): Promise<StoredCredential> {
  const stored = loadCredential(config.dataDir);
  if (stored) return stored;
  if (!config.joinToken)
    throw new CredentialError(`No credential in ${config.dataDir} and no join token. Start with --join-token TOKEN (from \`ferry agent token create\`).`);
  const credential = await registerAgent(config.dataDir, config.joinToken, config.name, config.concurrency);
  log.info({ agentId: credential.agentId, server: credential.serverUrl }, 'registered');
  return credential;
}

export async function runAgent(config: AgentConfig, options: RunAgentOptions = {}): Promise<void> {
  const log = options.logger ?? createLogger(config.logLevel, config.logFormat);
  // Task folders live under the agent's data folder, so folders left by a crash are swept here.
  const sandboxes = join(config.dataDir, 'sandboxes');
  sweepSandboxes(sandboxes, log);
  const executor = await selectExecutor(config.executor, sandboxes, config.taskUids ? { taskUids: config.taskUids } : {});
  if (executor.warning) log.warn(executor.warning);
  const credential = await credentialFor(config, log);
  const worker = new Worker({
    credential,
    executor,
    keys: new KeyStore(config.dataDir),
    spoolDir: join(config.dataDir, 'spool'),
    concurrency: config.concurrency,
    graceMs: config.graceSeconds * 1000,
    pollWaitSeconds: config.pollWaitSeconds,
    log: log.child({ agentId: credential.agentId }),
  });
  const onSignal = (signal: NodeJS.Signals | 'stop signal'): void => {
    log.info(
      { signal, running: worker.runningCount },
      worker.runningCount > 0 ? 'draining: finishing running tasks (signal again to cancel them)' : 'stopping',
    );
    worker.stop();
  };
  const onAbort = (): void => onSignal('stop signal');
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  log.info(
    { agentId: credential.agentId, name: credential.name, executor: executor.name, concurrency: config.concurrency, server: credential.serverUrl },
    'agent started',
  );
  try {
    await worker.run();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    options.signal?.removeEventListener('abort', onAbort);
  }
  log.info('agent stopped');
}
