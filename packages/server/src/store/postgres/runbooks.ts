/** Runbook sources and their runbooks in PostgreSQL (runbook-types.ts; the same queries as sqlite/runbooks.ts). */
import type { RunbookMeta, RunbookRow, RunbookSourceRow, RunbookStore } from '../runbook-types.js';
import { num, toRunbook, toSource } from '../sqlite/rows.js';
import { isUniqueViolation, type Db } from './db.js';

const RUNBOOK_SELECT = 'SELECT r.*, s.name AS source_name FROM runbooks r JOIN runbook_sources s ON s.id = r.source_id';

export class PgRunbooks implements RunbookStore {
  constructor(private readonly db: Db) {}

  async addSource(row: RunbookSourceRow): Promise<'ok' | 'exists'> {
    try {
      await this.db.run('INSERT INTO runbook_sources (id, org_id, name, git, ref, path, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
        row.id,
        row.orgId,
        row.name,
        row.git,
        row.ref,
        row.path,
        row.createdBy,
        row.createdAt,
      ]);
      return 'ok';
    } catch (err) {
      if (isUniqueViolation(err)) return 'exists';
      throw err;
    }
  }

  async listSources(orgId?: string): Promise<RunbookSourceRow[]> {
    const rows =
      orgId === undefined
        ? await this.db.all('SELECT * FROM runbook_sources ORDER BY created_at')
        : await this.db.all('SELECT * FROM runbook_sources WHERE org_id = ? ORDER BY name', [orgId]);
    return rows.map(toSource);
  }

  async getSource(orgId: string, name: string): Promise<RunbookSourceRow | undefined> {
    const r = await this.db.one('SELECT * FROM runbook_sources WHERE org_id = ? AND name = ?', [orgId, name]);
    return r ? toSource(r) : undefined;
  }

  async replaceRunbooks(sourceId: string, commit: string, now: number, runbooks: readonly RunbookRow[], warning: string | null): Promise<void> {
    await this.db.tx(async (sql) => {
      // Replicas syncing the same source at once: the source row is locked, so one replaces after the other.
      await sql.one('SELECT 1 FROM runbook_sources WHERE id = ? FOR UPDATE', [sourceId]);
      await sql.run('DELETE FROM runbooks WHERE source_id = ?', [sourceId]);
      for (const r of runbooks) {
        const meta: RunbookMeta = { description: r.description, targetType: r.targetType, defaultTarget: r.defaultTarget, params: r.params };
        await sql.run('INSERT INTO runbooks (org_id, name, source_id, file, commit_sha, meta, script) VALUES (?, ?, ?, ?, ?, ?, ?)', [
          r.orgId,
          r.name,
          sourceId,
          r.file,
          commit,
          JSON.stringify(meta),
          r.script,
        ]);
      }
      await sql.run('UPDATE runbook_sources SET commit_sha = ?, synced_at = ?, last_error = ? WHERE id = ?', [commit, now, warning, sourceId]);
    });
  }

  async syncFailed(sourceId: string, error: string): Promise<void> {
    await this.db.run('UPDATE runbook_sources SET last_error = ? WHERE id = ?', [error, sourceId]);
  }

  async countRunbooks(sourceId: string): Promise<number> {
    return num((await this.db.one('SELECT COUNT(*) AS n FROM runbooks WHERE source_id = ?', [sourceId]))?.n);
  }

  async listRunbooks(orgId: string): Promise<RunbookRow[]> {
    return (await this.db.all(`${RUNBOOK_SELECT} WHERE r.org_id = ? ORDER BY r.name`, [orgId])).map(toRunbook);
  }

  async getRunbook(orgId: string, name: string): Promise<RunbookRow | undefined> {
    const r = await this.db.one(`${RUNBOOK_SELECT} WHERE r.org_id = ? AND r.name = ?`, [orgId, name]);
    return r ? toRunbook(r) : undefined;
  }
}
