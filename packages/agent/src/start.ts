/**
 * `ferry agent start`: register (first time) or load the stored credential, pick the
 * executor, and run the worker until SIGTERM/SIGINT (drain) or a fatal error.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { CredentialError, loadCredential, registerAgent } from './credential.js';
import { selectExecutor } from './executor/select.js';
import { Worker } from './worker.js';
import { KeyStore } from './secrets/key-store.js';

function sweepSandboxes(dir: string, log: Logger): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const left = readdirSync(dir).filter((name) => name.startsWith('ferry-t_'));
  for (const name of left) rmSync(join(dir, name), { recursive: true, force: true });
  if (left.length > 0) log.warn({ folders: left.length }, 'removed task folders left by an earlier run');
}

export async function runAgent(config: AgentConfig, logger?: Logger): Promise<void> {
  const log = logger ?? pino({ level: config.logLevel, base: { component: 'agent' } }, pino.destination(2));
  // Task folders live under the agent's data folder, so folders left by a crash are swept here.
  const sandboxes = join(config.dataDir, 'sandboxes');
  sweepSandboxes(sandboxes, log);
  const executor = await selectExecutor(config.executor, sandboxes);
  if (executor.warning) log.warn(executor.warning);
  let credential = loadCredential(config.dataDir);
  if (!credential) {
    if (!config.joinToken) throw new CredentialError(`No credential in ${config.dataDir} and no join token. Start with --join-token TOKEN (from \`ferry agent token create\`).`);
    credential = await registerAgent(config.dataDir, config.joinToken, config.name, config.concurrency);
    log.info({ agentId: credential.agentId, server: credential.serverUrl }, 'registered');
  }
  const worker = new Worker({
    credential, executor, keys: new KeyStore(config.dataDir), spoolDir: join(config.dataDir, 'spool'), concurrency: config.concurrency, graceMs: config.graceSeconds * 1000,
    pollWaitSeconds: config.pollWaitSeconds, log: log.child({ agentId: credential.agentId }),
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    log.info({ signal, running: worker.runningCount }, worker.runningCount > 0 ? 'draining: finishing running tasks (signal again to cancel them)' : 'stopping');
    worker.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  log.info({ agentId: credential.agentId, name: credential.name, executor: executor.name, concurrency: config.concurrency, server: credential.serverUrl }, 'agent started');
  try {
    await worker.run();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  log.info('agent stopped');
}
