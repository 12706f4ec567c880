/**
 * The embedded hosted agent: a separate child process (so the hosted pool's keys never live
 * in the server process) that `ferry server` starts and supervises.
 *
 * States: starting → running → (exited unexpectedly → backing off → starting) | stopping → stopped.
 * On its first start it gets a one-time join token; afterwards it uses the credential it
 * stored in its own data folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

export interface EmbeddedAgentOptions {
  command: readonly string[];
  dataDir: string;
  log: Logger;
  /** Creates a join token when the agent has no stored credential yet. */
  makeJoinToken: () => Promise<string>;
  env?: NodeJS.ProcessEnv;
}

export class EmbeddedAgent {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: EmbeddedAgentOptions) {}

  async start(): Promise<void> {
    mkdirSync(this.opts.dataDir, { recursive: true, mode: 0o700 });
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.opts.env, FERRY_DATA_DIR: this.opts.dataDir };
    delete env.FERRY_JOIN_TOKEN;
    delete env.FERRY_SERVER; // the CLI's server setting, not this agent's: its server is this one, from its join token
    if (!existsSync(join(this.opts.dataDir, 'agent.json'))) env.FERRY_JOIN_TOKEN = await this.opts.makeJoinToken();
    const [cmd, ...args] = this.opts.command;
    if (!cmd) throw new Error('embedded agent command is empty');
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
    this.child = child;
    this.opts.log.info({ pid: child.pid }, 'embedded hosted agent started');
    child.once('exit', (code, signal) => {
      this.child = undefined;
      if (this.stopping) return;
      const delay = Math.min(30_000, 500 * 2 ** this.restarts++);
      this.opts.log.error({ code, signal, restartInMs: delay }, 'embedded hosted agent exited; restarting');
      this.restartTimer = setTimeout(() => {
        this.start().catch((err: unknown) => this.opts.log.error({ err }, 'embedded hosted agent failed to restart'));
      }, delay);
    });
  }

  /** At once: SIGKILL, no restart (the server is exiting without waiting). */
  kill(): void {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.child?.kill('SIGKILL');
  }

  /** SIGTERM (the agent drains), then SIGKILL after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
