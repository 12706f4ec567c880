/**
 * Runbooks: sources (Git repositories) synced on demand and periodically, the runbooks found in
 * them, and running one. A sync reads the source's commit and replaces its runbooks in one write;
 * a failed sync (an unreachable repository, a bad ref) keeps the last good copy and records why.
 * A run validates the parameters, gives them to the script as environment variables (never in
 * its text) and records the runbook, the commit and the parameters in the task.
 */
import { basename, extname, join } from 'node:path';
import { FerryError, TeamName } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { UserPrincipal } from '../auth.js';
import type { ServerConfig } from '../config.js';
import type { RunbookRow, RunbookSourceRow } from '../store/runbook-types.js';
import type { AuditInput, Store, TargetRow, TaskRow } from '../store/types.js';
import type { TaskService } from '../tasks/task-service.js';
import { paramEnv, parseFrontMatter } from './front-matter.js';
import { fetchFiles } from './git.js';

export interface RunbookDeps {
  store: Store;
  config: ServerConfig;
  log: Logger;
  tasks: TaskService;
  dataDir: string;
  audit(entry: Omit<AuditInput, 'at'>): Promise<void>;
}

export class Runbooks {
  private timer: NodeJS.Timeout | undefined;
  /** One sync per source at a time. */
  private readonly syncing = new Map<string, Promise<RunbookSourceRow>>();

  constructor(private readonly deps: RunbookDeps) {}

  /** Syncs `source`; returns it as it is after (with `lastError` when the sync failed). */
  sync(source: RunbookSourceRow, actor: string): Promise<RunbookSourceRow> {
    let running = this.syncing.get(source.id);
    if (!running) {
      running = this.syncOnce(source, actor).finally(() => this.syncing.delete(source.id));
      this.syncing.set(source.id, running);
    }
    return running;
  }

  private async syncOnce(source: RunbookSourceRow, actor: string): Promise<RunbookSourceRow> {
    const { store } = this.deps;
    const dir = join(this.deps.dataDir, 'runbooks', `${source.id}.git`);
    try {
      const fetched = await fetchFiles(dir, source.git, source.ref, source.path);
      const { runbooks, skipped } = await this.runbooksOf(source, fetched.commit, fetched.files);
      const warning = skipped.length > 0 ? `skipped: ${skipped.join('; ')}` : null;
      await store.runbooks.replaceRunbooks(source.id, fetched.commit, Date.now(), runbooks, warning);
      // Every sync a person asks for is recorded; the periodic ones only when the commit changed.
      if (fetched.commit !== source.commit || actor !== 'server')
        await this.deps.audit({
          orgId: source.orgId,
          actor,
          action: 'runbook.sync',
          subject: source.name,
          details: { commit: fetched.commit, previous: source.commit, runbooks: runbooks.map((r) => r.name), skipped },
        });
    } catch (err) {
      const error = `sync failed at ${new Date().toISOString()}: ${(err as Error).message}${source.commit ? `; still using commit ${source.commit}` : ''}`;
      this.deps.log.warn({ source: source.name, err: (err as Error).message }, 'runbook source sync failed');
      await store.runbooks.syncFailed(source.id, error);
      if (actor !== 'server' || source.lastError === null)
        await this.deps.audit({ orgId: source.orgId, actor, action: 'runbook.sync_failed', subject: source.name, details: { error } });
    }
    return (await store.runbooks.getSource(source.orgId, source.name)) ?? source;
  }

  private async runbooksOf(
    source: RunbookSourceRow,
    commit: string,
    files: readonly { path: string; text: string }[],
  ): Promise<{ runbooks: RunbookRow[]; skipped: string[] }> {
    const runbooks: RunbookRow[] = [];
    const skipped: string[] = [];
    const taken = new Set((await this.deps.store.runbooks.listRunbooks(source.orgId)).filter((r) => r.sourceId !== source.id).map((r) => r.name));
    for (const file of files) {
      const meta = parseFrontMatter(file.text);
      if (meta === undefined) continue;
      const name = basename(file.path, extname(file.path));
      if ('problem' in meta) skipped.push(`${file.path}: ${meta.problem}`);
      else if (!TeamName.safeParse(name).success) skipped.push(`${file.path}: ${name} is not a runbook name (lower-case letters, digits, ".", "_", "-")`);
      else if (taken.has(name) || runbooks.some((r) => r.name === name)) skipped.push(`${file.path}: another runbook is named ${name}`);
      else runbooks.push({ ...meta, orgId: source.orgId, name, sourceId: source.id, sourceName: source.name, file: file.path, commit, script: file.text });
    }
    return { runbooks, skipped };
  }

  /** Starts the periodic sync of every source (config `runbookSyncInterval`; 0: on demand only). */
  start(): void {
    const seconds = this.deps.config.runbookSyncInterval;
    if (seconds <= 0) return;
    this.timer = setInterval(() => {
      void this.syncAll();
    }, seconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async syncAll(): Promise<void> {
    for (const source of await this.deps.store.runbooks.listSources()) await this.sync(source, 'server');
  }

  /** Validates the parameters and creates the task: the runbook's script at its commit, the parameters as environment. */
  async run(
    user: UserPrincipal,
    runbook: RunbookRow,
    target: TargetRow,
    given: Record<string, string>,
    timeoutSeconds?: number,
  ): Promise<{ task: TaskRow; target: TargetRow }> {
    if (target.type !== runbook.targetType)
      throw new FerryError('FERRY_E_BAD_REQUEST', `Runbook ${runbook.name} is for ${runbook.targetType} targets; ${target.name} is ${target.type}.`);
    const result = paramEnv(runbook.params, given);
    if ('problems' in result)
      throw new FerryError('FERRY_E_RUNBOOK_PARAMS', `Runbook ${runbook.name}: ${result.problems.join('; ')}.`, { details: { problems: result.problems } });
    const origin = { source: runbook.sourceName, name: runbook.name, file: runbook.file, commit: runbook.commit, params: result.env };
    return this.deps.tasks.create(
      user,
      { target: target.name, script: runbook.script, env: result.env, ...(timeoutSeconds ? { timeoutSeconds } : {}) },
      origin,
    );
  }
}
