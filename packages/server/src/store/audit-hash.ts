/**
 * The audit log is a hash chain: each entry's hash covers the previous entry's hash and the
 * entry itself, so changing or removing an entry breaks every hash after it.
 */
import { createHash } from 'node:crypto';
import type { AuditInput } from './types.js';

export function auditHash(prevHash: string, entry: AuditInput): string {
  const canonical = JSON.stringify([prevHash, entry.orgId, entry.at, entry.actor, entry.action, entry.subject, entry.details]);
  return createHash('sha256').update(canonical).digest('hex');
}
