/**
 * `ferry agent start`: register (first time) or load the stored credential, pick the
 * executor, and run the worker until SIGTERM/SIGINT (drain; a second one cancels), the
 * caller's stop signal (drain), or a fatal error.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { ApiError } from '@ferry/client';
import { CredentialError, joinTokenDigest, loadCredential, registerAgent, type StoredCredential } from './credential.js';
import { selectExecutor } from './executor/select.js';
import type { Executor } from './executor/types.js';
import { FatalAgentError } from './server-answers.js';
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

/** Says at start whether `--network public` tasks can run here (they are refused otherwise), and sweeps what killed agents left. */
async function checkPublicNetwork(executor: Executor, log: Logger): Promise<void> {
  const swept = (await executor.sweepPublicNetworks?.()) ?? 0;
  if (swept > 0) log.warn({ namespaces: swept }, 'removed network namespaces left by an earlier run');
  const problem = await executor.publicNetworkProblem?.();
  if (problem) log.warn({ problem }, 'tasks of targets with --network public will be refused on this agent');
}

/**
 * The credential to run with. A join token wins over a stored credential (a revoked agent is
 * restarted with a new token, over the same folder and its keys), unless it is the very token
 * the stored credential came from (a service that passes the token on every start), or it was
 * already used and a stored credential exists, which then runs (said in a warning).
 */
async function credentialFor(config: AgentConfig, log: Logger): Promise<StoredCredential> {
  const credential = await storedOrNewCredential(config, log);
  // --server (or FERRY_SERVER) names the servers to use now, e.g. replicas added since the token.
  return config.server ? { ...credential, serverUrl: config.server } : credential;
}

async function storedOrNewCredential(config: AgentConfig, log: Logger): Promise<StoredCredential> {
  const stored = loadCredential(config.dataDir);
  if (stored && (!config.joinToken || stored.joinTokenSha256 === joinTokenDigest(config.joinToken))) return stored;
  if (!config.joinToken)
    throw new CredentialError(`No credential in ${config.dataDir} and no join token. Start with --join-token TOKEN (from \`ferry agent token create\`).`);
  let credential: StoredCredential;
  try {
    credential = await registerAgent(config.dataDir, config.joinToken, config.name, config.concurrency, config.server);
  } catch (err) {
    if (!stored || !(err instanceof ApiError) || err.code !== 'FERRY_E_JOIN_TOKEN_USED') throw err;
    log.warn({ agentId: stored.agentId, dataDir: config.dataDir }, 'the join token was already used; running with the credential stored in the data folder');
    return stored;
  }
  if (stored) {
    log.info(
      { agentId: credential.agentId, name: credential.name, replaced: stored.agentId, dataDir: config.dataDir },
      `registered with the new join token; it replaced the stored credential of agent ${stored.name} (${stored.agentId})`,
    );
  } else log.info({ agentId: credential.agentId, name: credential.name, server: credential.serverUrl }, 'registered');
  return credential;
}

export async function runAgent(config: AgentConfig, options: RunAgentOptions = {}): Promise<void> {
  const log = options.logger ?? (await createLogger(config.logLevel, config.logFormat));
  // Task folders live under the agent's data folder, so folders left by a crash are swept here.
  const sandboxes = join(config.dataDir, 'sandboxes');
  sweepSandboxes(sandboxes, log);
  const executor = await selectExecutor(config.executor, sandboxes, {
    ...(config.taskUids ? { taskUids: config.taskUids } : {}),
    // Up to one waiting sandbox per task slot unless told otherwise; 0 turns the pool off.
    pool: { max: config.sandboxPool ?? config.concurrency },
    publicDns: config.publicDns,
  });
  if (executor.warning) log.warn(executor.warning);
  await checkPublicNetwork(executor, log);
  const credential = await credentialFor(config, log);
  executor.setControlPlane?.([credential.serverUrl]);
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
    {
      agentId: credential.agentId,
      name: credential.name,
      executor: executor.name,
      concurrency: config.concurrency,
      server: credential.serverUrl,
      process: processSettings(),
    },
    'agent started',
  );
  try {
    await worker.run();
  } catch (err) {
    // Say which folder the new join token goes with.
    if (err instanceof FatalAgentError) throw new FatalAgentError(`${err.message} (data folder: ${config.dataDir})`, { cause: err.cause });
    throw err;
  } finally {
    await executor.close?.().catch((err: unknown) => log.error({ err }, 'could not destroy the waiting sandboxes'));
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    options.signal?.removeEventListener('abort', onAbort);
  }
  log.info('agent stopped');
}

/**
 * The process settings the agent was started with (its launchers set them: AGENT_PROCESS in
 * flags.ts), as the process itself sees them: a support question about its memory starts here.
 */
function processSettings(): { execArgv: string[]; nodeOptions?: string; glibcTunables?: string } {
  const { NODE_OPTIONS: nodeOptions, GLIBC_TUNABLES: glibcTunables } = process.env;
  return { execArgv: process.execArgv, ...(nodeOptions ? { nodeOptions } : {}), ...(glibcTunables ? { glibcTunables } : {}) };
}
