/**
 * Teams in PostgreSQL: organizations, principals, tokens, groups and target grants (the same
 * queries as sqlite/teams.ts). Each query a user's request makes names the organization.
 */
import type { GrantRole } from '@ferry/protocol';
import type { GroupRow, GroupWithMembers, PrincipalRow, TeamsStore, TokenRow, TokenWithPrincipal } from '../teams-types.js';
import type { OrgRow } from '../types.js';
import { num, toPrincipal, toTokenWithPrincipal } from '../sqlite/rows.js';
import { isUniqueViolation, type Db, type Row, type Sql } from './db.js';

const TOKEN_SELECT = `SELECT k.id, k.org_id, k.principal_id, k.name, k.created_at, k.expires_at, k.last_used_at, k.revoked_at,
  p.kind AS p_kind, p.name AS p_name, p.role AS p_role, p.instance_admin AS p_instance_admin, p.created_by AS p_created_by, p.created_at AS p_created_at
  FROM api_tokens k JOIN principals p ON p.id = k.principal_id`;

const toOrg = (r: Row): OrgRow => ({ id: String(r.id), name: String(r.name), createdAt: num(r.created_at) });
const toGroup = (r: Row): GroupRow => ({ id: String(r.id), orgId: String(r.org_id), name: String(r.name), createdAt: num(r.created_at) });

/** Runs an insert; a unique-constraint violation is `exists`, anything else is thrown. */
async function insertOrExists(write: () => Promise<unknown>): Promise<'ok' | 'exists'> {
  try {
    await write();
    return 'ok';
  } catch (err) {
    if (isUniqueViolation(err)) return 'exists';
    throw err;
  }
}

const GRANT_RANK: Record<GrantRole, number> = { viewer: 0, operator: 1 };

async function insertPrincipal(sql: Sql, p: PrincipalRow): Promise<void> {
  await sql.run('INSERT INTO principals (id, org_id, kind, name, role, instance_admin, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
    p.id,
    p.orgId,
    p.kind,
    p.name,
    p.role,
    p.instanceAdmin ? 1 : 0,
    p.createdBy,
    p.createdAt,
  ]);
}

async function insertToken(sql: Sql, t: TokenRow, tokenHash: string, role: PrincipalRow['role']): Promise<void> {
  await sql.run(
    `INSERT INTO api_tokens (id, org_id, principal_id, name, role, token_hash, created_at, expires_at, last_used_at, revoked_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [t.id, t.orgId, t.principalId, t.name, role, tokenHash, t.createdAt, t.expiresAt, t.lastUsedAt, t.revokedAt],
  );
}

export class PgTeams implements TeamsStore {
  constructor(private readonly db: Db) {}

  async createOrgWithAdmin(org: OrgRow, admin: PrincipalRow, token: TokenRow, tokenHash: string): Promise<'ok' | 'exists'> {
    return insertOrExists(() =>
      this.db.tx(async (sql) => {
        await sql.run('INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)', [org.id, org.name, org.createdAt]);
        await insertPrincipal(sql, admin);
        await insertToken(sql, token, tokenHash, admin.role);
      }),
    );
  }

  async listOrgs(): Promise<OrgRow[]> {
    return (await this.db.all('SELECT id, name, created_at FROM orgs ORDER BY created_at, name')).map(toOrg);
  }

  async getOrg(orgId: string): Promise<OrgRow | undefined> {
    const r = await this.db.one('SELECT id, name, created_at FROM orgs WHERE id = ?', [orgId]);
    return r ? toOrg(r) : undefined;
  }

  async createPrincipal(row: PrincipalRow): Promise<'ok' | 'exists'> {
    return insertOrExists(() => insertPrincipal(this.db, row));
  }

  async findPrincipal(orgId: string, name: string): Promise<PrincipalRow | undefined> {
    const r = await this.db.one('SELECT * FROM principals WHERE org_id = ? AND name = ? AND removed_at IS NULL', [orgId, name]);
    return r ? toPrincipal(r) : undefined;
  }

  async createServiceAccount(principal: PrincipalRow, token: TokenRow, tokenHash: string): Promise<'ok' | 'exists'> {
    return insertOrExists(() =>
      this.db.tx(async (sql) => {
        await insertPrincipal(sql, principal);
        await insertToken(sql, token, tokenHash, principal.role);
      }),
    );
  }

  async createToken(row: TokenRow, tokenHash: string): Promise<'ok' | 'exists'> {
    const principal = await this.db.one('SELECT role FROM principals WHERE id = ? AND org_id = ?', [row.principalId, row.orgId]);
    if (!principal) throw new Error(`principal ${row.principalId} is not in organization ${row.orgId}`);
    return insertOrExists(() => insertToken(this.db, row, tokenHash, principal.role as PrincipalRow['role']));
  }

  async findToken(tokenHash: string): Promise<TokenWithPrincipal | undefined> {
    const r = await this.db.one(`${TOKEN_SELECT} WHERE k.token_hash = ?`, [tokenHash]);
    return r ? toTokenWithPrincipal(r) : undefined;
  }

  async touchToken(tokenId: string, now: number): Promise<void> {
    await this.db.run('UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)', [now, tokenId, now]);
  }

  async listTokens(orgId: string, principalIds?: readonly string[]): Promise<TokenWithPrincipal[]> {
    const rows = (await this.db.all(`${TOKEN_SELECT} WHERE k.org_id = ? ORDER BY k.created_at DESC, k.id DESC`, [orgId])).map(toTokenWithPrincipal);
    return principalIds ? rows.filter((t) => principalIds.includes(t.principal.id)) : rows;
  }

  async findLiveToken(orgId: string, idOrName: string): Promise<TokenWithPrincipal | undefined> {
    const r = await this.db.one(`${TOKEN_SELECT} WHERE k.org_id = ? AND (k.id = ? OR k.name = ?) AND k.revoked_at IS NULL ORDER BY k.id = ? DESC LIMIT 1`, [
      orgId,
      idOrName,
      idOrName,
      idOrName,
    ]);
    return r ? toTokenWithPrincipal(r) : undefined;
  }

  async revokeToken(orgId: string, tokenId: string, now: number): Promise<boolean> {
    return (await this.db.run('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND org_id = ? AND revoked_at IS NULL', [now, tokenId, orgId])) === 1;
  }

  async createGroup(row: GroupRow): Promise<'ok' | 'exists'> {
    return insertOrExists(() =>
      this.db.run('INSERT INTO groups (id, org_id, name, created_at) VALUES (?, ?, ?, ?)', [row.id, row.orgId, row.name, row.createdAt]),
    );
  }

  async findGroup(orgId: string, name: string): Promise<GroupRow | undefined> {
    const r = await this.db.one('SELECT * FROM groups WHERE org_id = ? AND name = ?', [orgId, name]);
    return r ? toGroup(r) : undefined;
  }

  async listGroups(orgId: string): Promise<GroupWithMembers[]> {
    const groups = (await this.db.all('SELECT * FROM groups WHERE org_id = ? ORDER BY name', [orgId])).map(toGroup);
    const out: GroupWithMembers[] = [];
    for (const g of groups) {
      const members = await this.db.all('SELECT p.name FROM group_members m JOIN principals p ON p.id = m.principal_id WHERE m.group_id = ? ORDER BY p.name', [
        g.id,
      ]);
      const grants = await this.db.all(
        'SELECT g.name AS target, tg.role FROM target_grants tg JOIN targets g ON g.id = tg.target_id WHERE tg.group_id = ? AND g.deleted_at IS NULL ORDER BY g.name',
        [g.id],
      );
      out.push({ ...g, members: members.map((r) => String(r.name)), grants: grants.map((r) => ({ target: String(r.target), role: r.role as GrantRole })) });
    }
    return out;
  }

  async addGroupMember(groupId: string, principalId: string): Promise<boolean> {
    return (await this.db.run('INSERT INTO group_members (group_id, principal_id) VALUES (?, ?) ON CONFLICT DO NOTHING', [groupId, principalId])) === 1;
  }

  async removeGroupMember(groupId: string, principalId: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM group_members WHERE group_id = ? AND principal_id = ?', [groupId, principalId])) === 1;
  }

  async putGrant(targetId: string, groupId: string, role: GrantRole, now: number): Promise<void> {
    await this.db.run(
      'INSERT INTO target_grants (target_id, group_id, role, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (target_id, group_id) DO UPDATE SET role = excluded.role',
      [targetId, groupId, role, now],
    );
  }

  async deleteGrant(targetId: string, groupId: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM target_grants WHERE target_id = ? AND group_id = ?', [targetId, groupId])) === 1;
  }

  async grantsOf(principalId: string): Promise<Map<string, GrantRole>> {
    const rows = await this.db.all(
      'SELECT tg.target_id, tg.role FROM target_grants tg JOIN group_members m ON m.group_id = tg.group_id WHERE m.principal_id = ?',
      [principalId],
    );
    const grants = new Map<string, GrantRole>();
    for (const r of rows) {
      const role = r.role as GrantRole;
      const had = grants.get(String(r.target_id));
      if (had === undefined || GRANT_RANK[role] > GRANT_RANK[had]) grants.set(String(r.target_id), role);
    }
    return grants;
  }
}
