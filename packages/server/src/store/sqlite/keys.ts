/**
 * Keys that follow the agents, in SQLite: agents' identity keys (public halves), who holds which
 * target key, wrapped copies waiting for their recipient, and rotation. Nothing here can open a
 * secret: the server has public keys and copies wrapped to agents' identity keys only.
 * The store runs the writes that must be atomic inside its transactions.
 */
import type { SealedSecret } from '@ferry/protocol';
import { agentMayServeSql } from '../../eligibility.js';
import type { AgentRow, KeyDelivery, KeyHandoverWork, KeyRotation, KeyRotationWork, TargetKeyState } from '../types.js';
import type { Statements } from './output.js';
import { num, toSecret, toTarget, type Row } from './rows.js';

/** Holders of a target's current key, among agents that still serve it (a revoked agent holds nothing). */
const CURRENT_HOLDERS = `SELECT a.id, a.name, a.last_seen_at FROM target_key_holders h
  JOIN targets g ON g.id = h.target_id AND g.key_id = h.key_id
  JOIN agents a ON a.id = h.agent_id
  WHERE h.target_id = ? AND ${agentMayServeSql('a', 'g')} ORDER BY a.registered_at`;

export function setAgentIdentityKey(stmt: Statements, agentId: string, publicKeyPem: string, keyId: string, now: number): void {
  const old = stmt('SELECT key_id FROM agent_identity_keys WHERE agent_id = ?').get(agentId) as Row | undefined;
  if (old && old.key_id === keyId) return;
  // Copies wrapped for the old identity key cannot be opened any more; holders wrap again.
  stmt('DELETE FROM key_handovers WHERE agent_id = ?').run(agentId);
  stmt(
    `INSERT INTO agent_identity_keys (agent_id, public_key, key_id, set_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (agent_id) DO UPDATE SET public_key = excluded.public_key, key_id = excluded.key_id, set_at = excluded.set_at`,
  ).run(agentId, publicKeyPem, keyId, now);
}

export function replaceHeldKeys(stmt: Statements, agent: AgentRow, held: readonly { targetId: string; keyId: string }[], now: number): void {
  stmt('DELETE FROM target_key_holders WHERE agent_id = ?').run(agent.id);
  const insert = stmt(
    `INSERT INTO target_key_holders (target_id, agent_id, key_id, since)
    SELECT g.id, a.id, g.key_id, @now FROM targets g JOIN agents a ON a.id = @agentId
    WHERE g.id = @targetId AND g.key_id = @keyId AND g.deleted_at IS NULL AND ${agentMayServeSql('a', 'g')}`,
  );
  for (const { targetId, keyId } of held) insert.run({ now, agentId: agent.id, targetId, keyId });
}

export function addKeyHolder(stmt: Statements, targetId: string, agentId: string, keyId: string, now: number): boolean {
  const r = stmt(
    `INSERT INTO target_key_holders (target_id, agent_id, key_id, since)
    SELECT g.id, ?, g.key_id, ? FROM targets g WHERE g.id = ? AND g.key_id = ? AND g.deleted_at IS NULL
    ON CONFLICT (target_id, agent_id) DO UPDATE SET key_id = excluded.key_id, since = excluded.since`,
  ).run(agentId, now, targetId, keyId);
  // A delivered copy stays (it is offered to no one who holds the key): the record of how the key got there.
  return r.changes === 1;
}

export function targetKeyState(stmt: Statements, targetId: string): TargetKeyState {
  const holders = stmt(CURRENT_HOLDERS)
    .all(targetId)
    .map((r) => ({ agentId: String((r as Row).id), name: String((r as Row).name), lastSeenAt: num((r as Row).last_seen_at) }));
  const t = stmt(
    'SELECT key_rotation_requested_at AS rotation, (SELECT COUNT(*) FROM secrets s WHERE s.target_id = g.id) AS secrets FROM targets g WHERE g.id = ?',
  ).get(targetId) as Row | undefined;
  return { holders, rotationRequested: t?.rotation !== null && t?.rotation !== undefined, secretCount: t ? num(t.secrets) : 0 };
}

export function keyHoldings(stmt: Statements, orgId: string): Map<string, string[]> {
  const rows = stmt(
    `SELECT h.agent_id, g.name FROM target_key_holders h
    JOIN targets g ON g.id = h.target_id AND g.key_id = h.key_id AND g.deleted_at IS NULL
    JOIN agents a ON a.id = h.agent_id
    WHERE g.org_id = ? AND ${agentMayServeSql('a', 'g')} ORDER BY g.name`,
  ).all(orgId) as Row[];
  const byAgent = new Map<string, string[]>();
  for (const r of rows) {
    const names = byAgent.get(String(r.agent_id)) ?? [];
    names.push(String(r.name));
    byAgent.set(String(r.agent_id), names);
  }
  return byAgent;
}

/**
 * Hand-overs this agent should make: targets whose current key it holds, and agents serving
 * them that have an identity key but neither the key nor a wrapped copy of it yet.
 */
/**
 * A LIMIT written into the statement: bound as a parameter, it made these queries 10 to 40 times
 * slower (0.15 and 0.07 ms instead of 0.02 and 0.004 ms with 3000 agents, measured), and every
 * poll of every agent runs them. The value is a constant of the caller (one cached statement).
 */
function sqlLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new Error(`internal: LIMIT ${limit}`);
  return limit;
}

export function keyHandoversFor(stmt: Statements, agent: AgentRow, limit: number): KeyHandoverWork[] {
  const rows = stmt(
    `SELECT g.*, r.id AS recipient_id, k.public_key AS recipient_key FROM target_key_holders mine
    JOIN targets g ON g.id = mine.target_id AND g.key_id = mine.key_id AND g.deleted_at IS NULL
    JOIN agents a ON a.id = mine.agent_id
    JOIN agents r ON r.id <> a.id
    JOIN agent_identity_keys k ON k.agent_id = r.id
    WHERE mine.agent_id = @agentId AND ${agentMayServeSql('a', 'g')} AND ${agentMayServeSql('r', 'g')}
      AND NOT EXISTS (SELECT 1 FROM target_key_holders h WHERE h.target_id = g.id AND h.agent_id = r.id AND h.key_id = g.key_id)
      AND NOT EXISTS (SELECT 1 FROM key_handovers w WHERE w.target_id = g.id AND w.agent_id = r.id AND w.key_id = g.key_id)
    ORDER BY r.registered_at LIMIT ${sqlLimit(limit)}`,
  ).all({ agentId: agent.id }) as Row[];
  return rows.map((r) => ({ target: toTarget(r), agentId: String(r.recipient_id), identityKeyPem: String(r.recipient_key) }));
}

export function keyDeliveriesFor(stmt: Statements, agent: AgentRow, limit: number): KeyDelivery[] {
  const rows = stmt(
    `SELECT g.*, w.wrapped FROM key_handovers w
    JOIN targets g ON g.id = w.target_id AND g.key_id = w.key_id AND g.deleted_at IS NULL
    JOIN agents a ON a.id = w.agent_id
    WHERE w.agent_id = @agentId AND ${agentMayServeSql('a', 'g')}
      AND NOT EXISTS (SELECT 1 FROM target_key_holders h WHERE h.target_id = g.id AND h.agent_id = a.id AND h.key_id = g.key_id)
    LIMIT ${sqlLimit(limit)}`,
  ).all({ agentId: agent.id }) as Row[];
  return rows.map((r) => ({ target: toTarget(r), wrapped: JSON.parse(String(r.wrapped)) as SealedSecret }));
}

export function keyRotationsFor(stmt: Statements, agent: AgentRow): KeyRotationWork[] {
  const targets = stmt(
    `SELECT g.* FROM target_key_holders mine
    JOIN targets g ON g.id = mine.target_id AND g.key_id = mine.key_id AND g.deleted_at IS NULL
    JOIN agents a ON a.id = mine.agent_id
    WHERE mine.agent_id = ? AND g.key_rotation_requested_at IS NOT NULL AND ${agentMayServeSql('a', 'g')}`,
  ).all(agent.id) as Row[];
  return targets.map((r) => {
    const target = toTarget(r);
    const secrets = stmt('SELECT * FROM secrets WHERE target_id = ? ORDER BY name')
      .all(target.id)
      .map((s) => toSecret(s as Row));
    return { target, secrets };
  });
}

export function putKeyHandover(
  stmt: Statements,
  targetId: string,
  agentId: string,
  keyId: string,
  fromAgentId: string,
  wrapped: SealedSecret,
  now: number,
): boolean {
  const r = stmt(
    `INSERT INTO key_handovers (target_id, agent_id, key_id, from_agent_id, wrapped, created_at)
    SELECT g.id, ?, g.key_id, ?, ?, ? FROM targets g WHERE g.id = ? AND g.key_id = ? AND g.deleted_at IS NULL
    ON CONFLICT DO NOTHING`,
  ).run(agentId, fromAgentId, JSON.stringify(wrapped), now, targetId, keyId);
  if (r.changes === 1) return true;
  // A copy already there (another holder was first) is as good as ours.
  return stmt('SELECT 1 FROM key_handovers WHERE target_id = ? AND agent_id = ? AND key_id = ?').get(targetId, agentId, keyId) !== undefined;
}

/** Runs inside a transaction: every check and write of a rotation, or none. */
export function rotateTargetKey(stmt: Statements, r: KeyRotation): 'ok' | 'key_changed' | 'secrets_changed' {
  const current = stmt('SELECT * FROM secrets WHERE target_id = ?')
    .all(r.targetId)
    .map((s) => toSecret(s as Row));
  const submitted = new Map(r.secrets.map((s) => [s.name, s]));
  const same = current.length === submitted.size && current.every((s) => s.kid === r.oldKeyId && submitted.get(s.name)?.setAt === s.setAt);
  if (!same) {
    // Tell a stale key apart from values set meanwhile: the agent only retries the latter.
    const key = stmt('SELECT key_id FROM targets WHERE id = ?').get(r.targetId) as Row | undefined;
    return key?.key_id === r.oldKeyId ? 'secrets_changed' : 'key_changed';
  }
  const swapped = stmt(
    `UPDATE targets SET public_key = ?, key_id = ?, key_rotation_requested_at = NULL
    WHERE id = ? AND key_id = ? AND deleted_at IS NULL`,
  ).run(r.publicKeyPem, r.keyId, r.targetId, r.oldKeyId);
  if (swapped.changes !== 1) return 'key_changed';
  const update = stmt('UPDATE secrets SET kid = ?, sealed = ? WHERE target_id = ? AND name = ?');
  for (const s of r.secrets) update.run(r.keyId, JSON.stringify(s.sealed), r.targetId, s.name);
  stmt('DELETE FROM key_handovers WHERE target_id = ?').run(r.targetId);
  addKeyHolder(stmt, r.targetId, r.agentId, r.keyId, r.now);
  return 'ok';
}

export function targetsOnlyHeldBy(stmt: Statements, agentId: string): Row[] {
  return stmt(
    `SELECT g.* FROM target_key_holders mine
    JOIN targets g ON g.id = mine.target_id AND g.key_id = mine.key_id AND g.deleted_at IS NULL
    WHERE mine.agent_id = @agentId
      AND EXISTS (SELECT 1 FROM secrets s WHERE s.target_id = g.id)
      AND NOT EXISTS (SELECT 1 FROM target_key_holders h JOIN agents a ON a.id = h.agent_id
                      WHERE h.target_id = g.id AND h.key_id = g.key_id AND h.agent_id <> @agentId AND ${agentMayServeSql('a', 'g')})`,
  ).all({ agentId }) as Row[];
}

/** Runs inside a transaction: the key `keyId` and the values sealed for it go; agents make a new key. */
export function resetTargetKey(stmt: Statements, targetId: string, keyId: string): string[] | undefined {
  const r = stmt(
    'UPDATE targets SET public_key = NULL, key_id = NULL, key_rotation_requested_at = NULL WHERE id = ? AND key_id = ? AND deleted_at IS NULL',
  ).run(targetId, keyId);
  if (r.changes !== 1) return undefined;
  const names = stmt('DELETE FROM secrets WHERE target_id = ? RETURNING name')
    .all(targetId)
    .map((x) => String((x as Row).name));
  stmt('DELETE FROM target_key_holders WHERE target_id = ?').run(targetId);
  stmt('DELETE FROM key_handovers WHERE target_id = ?').run(targetId);
  return names.sort();
}
