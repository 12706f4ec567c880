/**
 * The SQLite queries behind /metrics and /readyz. Each is one indexed aggregate (tasks_queue
 * covers the status and per-target counts), run at scrape time rather than kept in counters, so
 * the figures are right after a restart and with several replicas alike.
 */
import type { MetricsSnapshot, Readiness } from '../types.js';
import { migrations } from './migrations.js';
import type { Statements } from './output.js';
import { num, type Row } from './rows.js';

export function metricsSnapshot(stmt: Statements, onlineSince: number): MetricsSnapshot {
  const tasksByStatus = stmt('SELECT status, COUNT(*) AS n FROM tasks GROUP BY status')
    .all()
    .map((r) => ({ status: String((r as Row).status), count: num((r as Row).n) }));
  const queueDepth = stmt(
    `SELECT o.name AS org, g.name AS target, COUNT(t.id) AS n
     FROM targets g JOIN orgs o ON o.id = g.org_id
     LEFT JOIN tasks t ON t.target_id = g.id AND t.status = 'queued'
     WHERE g.deleted_at IS NULL GROUP BY g.id ORDER BY o.name, g.name`,
  )
    .all()
    .map((r) => ({ org: String((r as Row).org), target: String((r as Row).target), count: num((r as Row).n) }));
  const online = stmt('SELECT hosted, COUNT(*) AS n FROM agents WHERE revoked_at IS NULL AND last_seen_at >= ? GROUP BY hosted')
    .all(onlineSince)
    .map((r) => ({ hosted: num((r as Row).hosted) === 1, count: num((r as Row).n) }));
  const agentsOnline = [true, false].map((hosted) => ({ hosted, count: online.find((o) => o.hosted === hosted)?.count ?? 0 }));
  const stored = stmt('SELECT COALESCE(SUM(output_bytes), 0) AS n FROM orgs').get() as Row;
  return { tasksByStatus, queueDepth, agentsOnline, storedOutputBytes: num(stored.n) };
}

export function readiness(stmt: Statements): Readiness {
  const appliedMigrations = stmt('SELECT version FROM schema_migrations ORDER BY version')
    .all()
    .map((r) => num((r as Row).version));
  return { appliedMigrations, knownMigrations: migrations.map((m) => m.version) };
}
