/**
 * Runs a real agent (`runAgent`, as `ferry agent start` does) against a fake control plane,
 * with the `process` executor so tests stay fast, in a fresh data folder. Cleanup stops it
 * (drain), waits for it, then closes the control plane (so a task still running can deliver
 * its final status) and removes the folder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { loadAgentConfig, runAgent, type AgentConfig } from '../../src/index.js';
import type { FakeControlPlane } from './fake-control-plane.js';

export interface AgentUnderTest {
  /** Settles when runAgent returns: resolves after a stop, rejects on a fatal error. */
  done: Promise<void>;
  /** Like a first SIGTERM: no new work; running tasks finish. */
  stop(): void;
  dataDir: string;
  config: AgentConfig;
}

export async function startAgent(t: TestContext, cp: FakeControlPlane, flags: Record<string, unknown> = {}): Promise<AgentUnderTest> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ferry-agent-test-'));
  // The environment is left out: FERRY_* variables of the machine must not change the test.
  const config = loadAgentConfig(
    {
      dataDir,
      joinToken: cp.joinToken(),
      executor: 'process',
      concurrency: 2,
      graceSeconds: 1,
      pollWaitSeconds: 2,
      logLevel: process.env.FERRY_TEST_AGENT_LOG ?? 'silent',
      ...flags,
    },
    {},
  );
  const stopping = new AbortController();
  const done = runAgent(config, { signal: stopping.signal });
  // Marked handled here; a test that expects a failure awaits `done` itself.
  done.catch(() => undefined);
  t.after(async () => {
    stopping.abort();
    await done.catch(() => undefined);
    await cp.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { done, stop: () => stopping.abort(), dataDir, config };
}
