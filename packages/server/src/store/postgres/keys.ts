/**
 * Keys that follow the agents, in PostgreSQL (the same queries as sqlite/keys.ts, which says
 * what each is for). The server has public keys and copies wrapped to agents' identity keys
 * only. Writes that must be atomic run inside the store's transactions; a rotation locks the
 * target row first so a secret written meanwhile waits for it (and then finds the key changed).
 */
import type { SealedSecret } from '@ferry/protocol';
import { agentMayServeSql } from '../../eligibility.js';
import type { AgentRow, KeyDelivery, KeyHandoverWork, KeyRotation, KeyRotationWork, TargetKeyState } from '../types.js';
import { num, toSecret, toTarget } from '../sqlite/rows.js';
import type { Row, Sql } from './db.js';

const CURRENT_HOLDERS = `SELECT a.id, a.name, a.last_seen_at FROM target_key_holders h
  JOIN targets g ON g.id = h.target_id AND g.key_id = h.key_id
  JOIN agents a ON a.id = h.agent_id
  WHERE h.target_id = ? AND ${agentMayServeSql('a', 'g')} ORDER BY a.registered_at`;

export async function setAgentIdentityKey(sql: Sql, agentId: string, publicKeyPem: string, keyId: string, now: number): Promise<void> {
  const old = await sql.one('SELECT key_id FROM agent_identity_keys WHERE agent_id = ? FOR UPDATE', [agentId]);
  if (old && old.key_id === keyId) return;
  await sql.run('DELETE FROM key_handovers WHERE agent_id = ?', [agentId]);
  await sql.run(
    `INSERT INTO agent_identity_keys (agent_id, public_key, key_id, set_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (agent_id) DO UPDATE SET public_key = excluded.public_key, key_id = excluded.key_id, set_at = excluded.set_at`,
    [agentId, publicKeyPem, keyId, now],
  );
}

export async function replaceHeldKeys(sql: Sql, agent: AgentRow, held: readonly { targetId: string; keyId: string }[], now: number): Promise<void> {
  await sql.run('DELETE FROM target_key_holders WHERE agent_id = ?', [agent.id]);
  for (const { targetId, keyId } of held) {
    await sql.run(
      `INSERT INTO target_key_holders (target_id, agent_id, key_id, since)
      SELECT g.id, a.id, g.key_id, ? FROM targets g JOIN agents a ON a.id = ?
      WHERE g.id = ? AND g.key_id = ? AND g.deleted_at IS NULL AND ${agentMayServeSql('a', 'g')}
      ON CONFLICT (target_id, agent_id) DO NOTHING`,
      [now, agent.id, targetId, keyId],
    );
  }
}

export async function addKeyHolder(sql: Sql, targetId: string, agentId: string, keyId: string, now: number): Promise<boolean> {
  const n = await sql.run(
    `INSERT INTO target_key_holders (target_id, agent_id, key_id, since)
    SELECT g.id, ?, g.key_id, ? FROM targets g WHERE g.id = ? AND g.key_id = ? AND g.deleted_at IS NULL
    ON CONFLICT (target_id, agent_id) DO UPDATE SET key_id = excluded.key_id, since = excluded.since`,
    [agentId, now, targetId, keyId],
  );
  return n === 1;
}

/**
 * The key state of target `g` as columns (the holders as JSON); its one parameter is the
 * target's id, for the holders. Task creation reads it with the task's insert (index.ts).
 */
export const KEY_STATE_COLUMNS = `g.key_rotation_requested_at AS rotation, (SELECT COUNT(*) FROM secrets s WHERE s.target_id = g.id) AS secrets,
      (SELECT COALESCE(json_agg(json_build_object('id', h.id, 'name', h.name, 'last_seen_at', h.last_seen_at)), '[]') FROM (${CURRENT_HOLDERS}) h) AS holders`;

export function keyStateFromRow(t: Row | undefined): TargetKeyState {
  if (!t) return { holders: [], rotationRequested: false, secretCount: 0 };
  const holders = (t.holders as Row[]).map((r) => ({ agentId: String(r.id), name: String(r.name), lastSeenAt: num(r.last_seen_at) }));
  return { holders, rotationRequested: t.rotation !== null, secretCount: num(t.secrets) };
}

export async function targetKeyState(sql: Sql, targetId: string): Promise<TargetKeyState> {
  // One round trip: the holders as JSON.
  return keyStateFromRow(await sql.one(`SELECT ${KEY_STATE_COLUMNS} FROM targets g WHERE g.id = ?`, [targetId, targetId]));
}

export async function keyHoldings(sql: Sql, orgId: string): Promise<Map<string, string[]>> {
  const rows = await sql.all(
    `SELECT h.agent_id, g.name FROM target_key_holders h
    JOIN targets g ON g.id = h.target_id AND g.key_id = h.key_id AND g.deleted_at IS NULL
    JOIN agents a ON a.id = h.agent_id
    WHERE g.org_id = ? AND ${agentMayServeSql('a', 'g')} ORDER BY g.name`,
    [orgId],
  );
  const byAgent = new Map<string, string[]>();
  for (const r of rows) {
    const names = byAgent.get(String(r.agent_id)) ?? [];
    names.push(String(r.name));
    byAgent.set(String(r.agent_id), names);
  }
  return byAgent;
}

export async function keyHandoversFor(sql: Sql, agent: AgentRow, limit: number): Promise<KeyHandoverWork[]> {
  const rows = await sql.all(
    `SELECT g.*, r.id AS recipient_id, k.public_key AS recipient_key FROM target_key_holders mine
    JOIN targets g ON g.id = mine.target_id AND g.key_id = mine.key_id AND g.deleted_at IS NULL
    JOIN agents a ON a.id = mine.agent_id
    JOIN agents r ON r.id <> a.id
    JOIN agent_identity_keys k ON k.agent_id = r.id
    WHERE mine.agent_id = ? AND ${agentMayServeSql('a', 'g')} AND ${agentMayServeSql('r', 'g')}
      AND NOT EXISTS (SELECT 1 FROM target_key_holders h WHERE h.target_id = g.id AND h.agent_id = r.id AND h.key_id = g.key_id)
      AND NOT EXISTS (SELECT 1 FROM key_handovers w WHERE w.target_id = g.id AND w.agent_id = r.id AND w.key_id = g.key_id)
    ORDER BY r.registered_at LIMIT ?`,
    [agent.id, limit],
  );
  return rows.map((r) => ({ target: toTarget(r), agentId: String(r.recipient_id), identityKeyPem: String(r.recipient_key) }));
}

export async function keyDeliveriesFor(sql: Sql, agent: AgentRow, limit: number): Promise<KeyDelivery[]> {
  const rows = await sql.all(
    `SELECT g.*, w.wrapped FROM key_handovers w
    JOIN targets g ON g.id = w.target_id AND g.key_id = w.key_id AND g.deleted_at IS NULL
    JOIN agents a ON a.id = w.agent_id
    WHERE w.agent_id = ? AND ${agentMayServeSql('a', 'g')}
      AND NOT EXISTS (SELECT 1 FROM target_key_holders h WHERE h.target_id = g.id AND h.agent_id = a.id AND h.key_id = g.key_id)
    LIMIT ?`,
    [agent.id, limit],
  );
  return rows.map((r) => ({ target: toTarget(r), wrapped: JSON.parse(String(r.wrapped)) as SealedSecret }));
}

export async function keyRotationsFor(sql: Sql, agent: AgentRow): Promise<KeyRotationWork[]> {
  const targets = await sql.all(
    `SELECT g.* FROM target_key_holders mine
    JOIN targets g ON g.id = mine.target_id AND g.key_id = mine.key_id AND g.deleted_at IS NULL
    JOIN agents a ON a.id = mine.agent_id
    WHERE mine.agent_id = ? AND g.key_rotation_requested_at IS NOT NULL AND ${agentMayServeSql('a', 'g')}`,
    [agent.id],
  );
  const work: KeyRotationWork[] = [];
  for (const r of targets) {
    const target = toTarget(r);
    const secrets = (await sql.all('SELECT * FROM secrets WHERE target_id = ? ORDER BY name', [target.id])).map(toSecret);
    work.push({ target, secrets });
  }
  return work;
}

export async function putKeyHandover(
  sql: Sql,
  targetId: string,
  agentId: string,
  keyId: string,
  fromAgentId: string,
  wrapped: SealedSecret,
  now: number,
): Promise<boolean> {
  const n = await sql.run(
    `INSERT INTO key_handovers (target_id, agent_id, key_id, from_agent_id, wrapped, created_at)
    SELECT g.id, ?, g.key_id, ?, ?, ? FROM targets g WHERE g.id = ? AND g.key_id = ? AND g.deleted_at IS NULL
    ON CONFLICT DO NOTHING`,
    [agentId, fromAgentId, JSON.stringify(wrapped), now, targetId, keyId],
  );
  if (n === 1) return true;
  return (await sql.one('SELECT 1 FROM key_handovers WHERE target_id = ? AND agent_id = ? AND key_id = ?', [targetId, agentId, keyId])) !== undefined;
}

/** Runs inside a transaction: every check and write of a rotation, or none. */
export async function rotateTargetKey(sql: Sql, r: KeyRotation): Promise<'ok' | 'key_changed' | 'secrets_changed'> {
  // The target row first: a putSecret (which locks it too) cannot slip a value in between the check and the swap.
  const key = await sql.one('SELECT key_id FROM targets WHERE id = ? FOR UPDATE', [r.targetId]);
  const current = (await sql.all('SELECT * FROM secrets WHERE target_id = ?', [r.targetId])).map(toSecret);
  const submitted = new Map(r.secrets.map((s) => [s.name, s]));
  const same = current.length === submitted.size && current.every((s) => s.kid === r.oldKeyId && submitted.get(s.name)?.setAt === s.setAt);
  if (!same) return key?.key_id === r.oldKeyId ? 'secrets_changed' : 'key_changed';
  const swapped = await sql.run(
    `UPDATE targets SET public_key = ?, key_id = ?, key_rotation_requested_at = NULL
    WHERE id = ? AND key_id = ? AND deleted_at IS NULL`,
    [r.publicKeyPem, r.keyId, r.targetId, r.oldKeyId],
  );
  if (swapped !== 1) return 'key_changed';
  for (const s of r.secrets)
    await sql.run('UPDATE secrets SET kid = ?, sealed = ? WHERE target_id = ? AND name = ?', [r.keyId, JSON.stringify(s.sealed), r.targetId, s.name]);
  await sql.run('DELETE FROM key_handovers WHERE target_id = ?', [r.targetId]);
  await addKeyHolder(sql, r.targetId, r.agentId, r.keyId, r.now);
  return 'ok';
}

export async function targetsOnlyHeldBy(sql: Sql, agentId: string): Promise<Row[]> {
  return sql.all(
    `SELECT g.* FROM target_key_holders mine
    JOIN targets g ON g.id = mine.target_id AND g.key_id = mine.key_id AND g.deleted_at IS NULL
    WHERE mine.agent_id = ?
      AND EXISTS (SELECT 1 FROM secrets s WHERE s.target_id = g.id)
      AND NOT EXISTS (SELECT 1 FROM target_key_holders h JOIN agents a ON a.id = h.agent_id
                      WHERE h.target_id = g.id AND h.key_id = g.key_id AND h.agent_id <> ? AND ${agentMayServeSql('a', 'g')})`,
    [agentId, agentId],
  );
}

/** Runs inside a transaction: the key `keyId` and the values sealed for it go; agents make a new key. */
export async function resetTargetKey(sql: Sql, targetId: string, keyId: string): Promise<string[] | undefined> {
  const n = await sql.run(
    'UPDATE targets SET public_key = NULL, key_id = NULL, key_rotation_requested_at = NULL WHERE id = ? AND key_id = ? AND deleted_at IS NULL',
    [targetId, keyId],
  );
  if (n !== 1) return undefined;
  const names = (await sql.all('DELETE FROM secrets WHERE target_id = ? RETURNING name', [targetId])).map((x) => String(x.name));
  await sql.run('DELETE FROM target_key_holders WHERE target_id = ?', [targetId]);
  await sql.run('DELETE FROM key_handovers WHERE target_id = ?', [targetId]);
  return names.sort();
}
