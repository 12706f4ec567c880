/** Runbook sources and their runbooks in SQLite (runbook-types.ts). */
import type Database from 'better-sqlite3';
import type { RunbookMeta, RunbookRow, RunbookSourceRow, RunbookStore } from '../runbook-types.js';
import type { Statements } from './output.js';
import { num, toRunbook, toSource, type Row } from './rows.js';

/* eslint-disable @typescript-eslint/require-await -- the interface is async for PostgreSQL; better-sqlite3 is synchronous */

const RUNBOOK_SELECT = 'SELECT r.*, s.name AS source_name FROM runbooks r JOIN runbook_sources s ON s.id = r.source_id';

export class SqliteRunbooks implements RunbookStore {
  constructor(
    private readonly db: Database.Database,
    private readonly stmt: Statements,
  ) {}

  async addSource(row: RunbookSourceRow): Promise<'ok' | 'exists'> {
    try {
      this.stmt('INSERT INTO runbook_sources (id, org_id, name, git, ref, path, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
        row.id,
        row.orgId,
        row.name,
        row.git,
        row.ref,
        row.path,
        row.createdBy,
        row.createdAt,
      );
      return 'ok';
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return 'exists';
      throw err;
    }
  }

  async listSources(orgId?: string): Promise<RunbookSourceRow[]> {
    const rows =
      orgId === undefined
        ? this.stmt('SELECT * FROM runbook_sources ORDER BY created_at').all()
        : this.stmt('SELECT * FROM runbook_sources WHERE org_id = ? ORDER BY name').all(orgId);
    return rows.map((r) => toSource(r as Row));
  }

  async getSource(orgId: string, name: string): Promise<RunbookSourceRow | undefined> {
    const r = this.stmt('SELECT * FROM runbook_sources WHERE org_id = ? AND name = ?').get(orgId, name) as Row | undefined;
    return r ? toSource(r) : undefined;
  }

  async replaceRunbooks(sourceId: string, commit: string, now: number, runbooks: readonly RunbookRow[], warning: string | null): Promise<void> {
    const insert = this.stmt('INSERT INTO runbooks (org_id, name, source_id, file, commit_sha, meta, script) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.db.transaction(() => {
      this.stmt('DELETE FROM runbooks WHERE source_id = ?').run(sourceId);
      for (const r of runbooks) {
        const meta: RunbookMeta = { description: r.description, targetType: r.targetType, defaultTarget: r.defaultTarget, params: r.params };
        insert.run(r.orgId, r.name, sourceId, r.file, commit, JSON.stringify(meta), r.script);
      }
      this.stmt('UPDATE runbook_sources SET commit_sha = ?, synced_at = ?, last_error = ? WHERE id = ?').run(commit, now, warning, sourceId);
    })();
  }

  async syncFailed(sourceId: string, error: string): Promise<void> {
    this.stmt('UPDATE runbook_sources SET last_error = ? WHERE id = ?').run(error, sourceId);
  }

  async countRunbooks(sourceId: string): Promise<number> {
    return num((this.stmt('SELECT COUNT(*) AS n FROM runbooks WHERE source_id = ?').get(sourceId) as Row).n);
  }

  async listRunbooks(orgId: string): Promise<RunbookRow[]> {
    return this.stmt(`${RUNBOOK_SELECT} WHERE r.org_id = ? ORDER BY r.name`)
      .all(orgId)
      .map((r) => toRunbook(r as Row));
  }

  async getRunbook(orgId: string, name: string): Promise<RunbookRow | undefined> {
    const r = this.stmt(`${RUNBOOK_SELECT} WHERE r.org_id = ? AND r.name = ?`).get(orgId, name) as Row | undefined;
    return r ? toRunbook(r) : undefined;
  }
}
