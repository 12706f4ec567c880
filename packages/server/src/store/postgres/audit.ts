/**
 * Audit appends on PostgreSQL. The chain is one chain on every replica: each append takes a
 * transaction-scoped advisory lock, then inserts its entry after the head, read by the insert
 * itself (a statement of its own, so on a snapshot taken once the lock is held: the true head).
 * The lock and the inserts go as one simple query: one round trip, one transaction, one commit.
 * Within a process appends queue (they would wait for each other's lock anyway), and those that
 * queued while one was written go together in the next transaction, in order, each after the
 * one before: under load many entries share a commit (an fsync) instead of one each.
 */
import { auditHash } from '../audit-hash.js';
import { num } from '../sqlite/rows.js';
import type { AuditInput, AuditRow } from '../types.js';
import { inlined, type Db, type Row } from './db.js';

/**
 * An entry after the chain's head. The hash is auditHash's, computed where the head is read:
 * SHA-256 of the canonical array's text, which is the head's hash (hex) and then the rest, fixed
 * before (the last parameter, as bytes). An empty log's head is 64 zeros.
 */
const INSERT = `INSERT INTO audit_log (org_id, at, actor, action, subject, details, prev_hash, hash)
  SELECT ?, ?, ?, ?, ?, ?, h.prev, encode(sha256(convert_to('["' || h.prev || '",', 'UTF8') || ?), 'hex')
  FROM (SELECT COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), repeat('0', 64)) AS prev) h
  RETURNING seq, prev_hash, hash`;

/** Entries in one transaction at most (a statement each). */
const MAX_BATCH = 64;

interface Waiting {
  entry: AuditInput;
  resolve: (row: AuditRow) => void;
  reject: (err: unknown) => void;
}

/** An error the database answered with (a SQLSTATE): its transaction did nothing. */
function refusedByDatabase(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

export class AuditAppender {
  private queue: Waiting[] = [];
  private writing = false;

  constructor(
    private readonly db: Db,
    private readonly lockKey: number,
  ) {}

  append(entry: AuditInput): Promise<AuditRow> {
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) await this.write(this.queue.splice(0, MAX_BATCH));
    } finally {
      this.writing = false;
    }
  }

  private async write(batch: Waiting[]): Promise<void> {
    let rows: (Row | undefined)[];
    try {
      rows = await this.insert(batch.map((w) => w.entry));
    } catch (err) {
      // An entry the database refused fails the whole transaction, which stored nothing: each
      // goes again alone, so only that one fails. (Not after a lost connection: the commit may
      // have happened, and the entries must not be written twice.)
      if (batch.length === 1 || !refusedByDatabase(err)) for (const w of batch) w.reject(err);
      else for (const w of batch) await this.write([w]);
      return;
    }
    batch.forEach((w, i) => {
      const r = rows[i];
      const row = { ...w.entry, seq: num(r?.seq), prevHash: String(r?.prev_hash), hash: String(r?.hash) };
      // The database's hash must be the one `ferry audit verify` computes; were it ever not (an
      // encoding setting), say so at once rather than leave a chain that does not verify.
      if (auditHash(row.prevHash, w.entry) === row.hash) w.resolve(row);
      else w.reject(new Error(`audit entry ${row.seq}: the database's hash differs from auditHash`));
    });
  }

  /** The inserted rows (seq, prev_hash, hash), in the entries' order. */
  private async insert(entries: readonly AuditInput[]): Promise<(Row | undefined)[]> {
    const inserts = entries.map((e) => {
      const rest = Buffer.from(JSON.stringify([e.orgId, e.at, e.actor, e.action, e.subject, e.details]).slice(1), 'utf8');
      return inlined(INSERT, [e.orgId, e.at, e.actor, e.action, e.subject, JSON.stringify(e.details), rest]);
    });
    const results = await this.db.atOnce(`SELECT pg_advisory_xact_lock(${this.lockKey}); ${inserts.join('; ')}`);
    // The first result is the lock's.
    return entries.map((_, i) => results[i + 1]?.[0]);
  }
}
