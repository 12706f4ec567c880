/* eslint-disable @typescript-eslint/require-await -- the TeamsStore interface is async for PostgreSQL; better-sqlite3 is synchronous */
/**
 * Teams in SQLite: organizations, principals, tokens, groups and target grants. Each query a
 * user's request makes names the organization (or a row already found within it).
 */
import type Database from 'better-sqlite3';
import type { GrantRole } from '@ferry/protocol';
import type { GroupRow, GroupWithMembers, PrincipalRow, TeamsStore, TokenRow, TokenWithPrincipal } from '../teams-types.js';
import type { OrgRow } from '../types.js';
import { num, toPrincipal, toTokenWithPrincipal, type Row } from './rows.js';
import type { Statements } from './output.js';

/** Columns of a token joined with its principal (principal columns prefixed `p_`). */
const TOKEN_SELECT = `SELECT k.id, k.org_id, k.principal_id, k.name, k.created_at, k.expires_at, k.last_used_at, k.revoked_at,
  p.kind AS p_kind, p.name AS p_name, p.role AS p_role, p.instance_admin AS p_instance_admin, p.created_by AS p_created_by, p.created_at AS p_created_at
  FROM api_tokens k JOIN principals p ON p.id = k.principal_id`;

const toOrg = (r: Row): OrgRow => ({ id: String(r.id), name: String(r.name), createdAt: num(r.created_at) });
const toGroup = (r: Row): GroupRow => ({ id: String(r.id), orgId: String(r.org_id), name: String(r.name), createdAt: num(r.created_at) });

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Runs an insert; a unique-constraint violation is `exists`, anything else is thrown. */
function insertOrExists(write: () => void): 'ok' | 'exists' {
  try {
    write();
    return 'ok';
  } catch (err) {
    if (isUniqueViolation(err)) return 'exists';
    throw err;
  }
}

const GRANT_RANK: Record<GrantRole, number> = { viewer: 0, operator: 1 };

export class SqliteTeams implements TeamsStore {
  constructor(
    private readonly db: Database.Database,
    private readonly stmt: Statements,
  ) {}

  async createOrgWithAdmin(org: OrgRow, admin: PrincipalRow, token: TokenRow, tokenHash: string): Promise<'ok' | 'exists'> {
    return insertOrExists(() =>
      this.db.transaction(() => {
        this.stmt('INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)').run(org.id, org.name, org.createdAt);
        this.insertPrincipal(admin);
        this.insertToken(token, tokenHash, admin.role);
      })(),
    );
  }

  async listOrgs(): Promise<OrgRow[]> {
    return this.stmt('SELECT id, name, created_at FROM orgs ORDER BY created_at, name')
      .all()
      .map((r) => toOrg(r as Row));
  }

  async getOrg(orgId: string): Promise<OrgRow | undefined> {
    const r = this.stmt('SELECT id, name, created_at FROM orgs WHERE id = ?').get(orgId) as Row | undefined;
    return r ? toOrg(r) : undefined;
  }

  private insertPrincipal(p: PrincipalRow): void {
    this.stmt('INSERT INTO principals (id, org_id, kind, name, role, instance_admin, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      p.id,
      p.orgId,
      p.kind,
      p.name,
      p.role,
      p.instanceAdmin ? 1 : 0,
      p.createdBy,
      p.createdAt,
    );
  }

  private insertToken(t: TokenRow, tokenHash: string, role: PrincipalRow['role']): void {
    this.stmt(
      `INSERT INTO api_tokens (id, org_id, principal_id, name, role, token_hash, created_at, expires_at, last_used_at, revoked_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(t.id, t.orgId, t.principalId, t.name, role, tokenHash, t.createdAt, t.expiresAt, t.lastUsedAt, t.revokedAt);
  }

  async createPrincipal(row: PrincipalRow): Promise<'ok' | 'exists'> {
    return insertOrExists(() => this.insertPrincipal(row));
  }

  async findPrincipal(orgId: string, name: string): Promise<PrincipalRow | undefined> {
    const r = this.stmt('SELECT * FROM principals WHERE org_id = ? AND name = ? AND removed_at IS NULL').get(orgId, name) as Row | undefined;
    return r ? toPrincipal(r) : undefined;
  }

  async createServiceAccount(principal: PrincipalRow, token: TokenRow, tokenHash: string): Promise<'ok' | 'exists'> {
    return insertOrExists(() =>
      this.db.transaction(() => {
        this.insertPrincipal(principal);
        this.insertToken(token, tokenHash, principal.role);
      })(),
    );
  }

  async createToken(row: TokenRow, tokenHash: string): Promise<'ok' | 'exists'> {
    const principal = this.stmt('SELECT role FROM principals WHERE id = ? AND org_id = ?').get(row.principalId, row.orgId) as Row | undefined;
    if (!principal) throw new Error(`principal ${row.principalId} is not in organization ${row.orgId}`);
    return insertOrExists(() => this.insertToken(row, tokenHash, principal.role as PrincipalRow['role']));
  }

  async findToken(tokenHash: string): Promise<TokenWithPrincipal | undefined> {
    const r = this.stmt(`${TOKEN_SELECT} WHERE k.token_hash = ?`).get(tokenHash) as Row | undefined;
    return r ? toTokenWithPrincipal(r) : undefined;
  }

  async touchToken(tokenId: string, now: number): Promise<void> {
    this.stmt('UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)').run(now, tokenId, now);
  }

  async listTokens(orgId: string, principalIds?: readonly string[]): Promise<TokenWithPrincipal[]> {
    const rows = this.stmt(`${TOKEN_SELECT} WHERE k.org_id = ? ORDER BY k.created_at DESC, k.id DESC`)
      .all(orgId)
      .map((r) => toTokenWithPrincipal(r as Row));
    return principalIds ? rows.filter((t) => principalIds.includes(t.principal.id)) : rows;
  }

  async findLiveToken(orgId: string, idOrName: string): Promise<TokenWithPrincipal | undefined> {
    const r = this.stmt(`${TOKEN_SELECT} WHERE k.org_id = ? AND (k.id = ? OR k.name = ?) AND k.revoked_at IS NULL ORDER BY k.id = ? DESC LIMIT 1`).get(
      orgId,
      idOrName,
      idOrName,
      idOrName,
    ) as Row | undefined;
    return r ? toTokenWithPrincipal(r) : undefined;
  }

  async revokeToken(orgId: string, tokenId: string, now: number): Promise<boolean> {
    return this.stmt('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND org_id = ? AND revoked_at IS NULL').run(now, tokenId, orgId).changes === 1;
  }

  async createGroup(row: GroupRow): Promise<'ok' | 'exists'> {
    return insertOrExists(() =>
      this.stmt('INSERT INTO groups (id, org_id, name, created_at) VALUES (?, ?, ?, ?)').run(row.id, row.orgId, row.name, row.createdAt),
    );
  }

  async findGroup(orgId: string, name: string): Promise<GroupRow | undefined> {
    const r = this.stmt('SELECT * FROM groups WHERE org_id = ? AND name = ?').get(orgId, name) as Row | undefined;
    return r ? toGroup(r) : undefined;
  }

  async listGroups(orgId: string): Promise<GroupWithMembers[]> {
    const groups = this.stmt('SELECT * FROM groups WHERE org_id = ? ORDER BY name')
      .all(orgId)
      .map((r) => toGroup(r as Row));
    const members = this.stmt('SELECT p.name FROM group_members m JOIN principals p ON p.id = m.principal_id WHERE m.group_id = ? ORDER BY p.name');
    const grants = this.stmt(
      'SELECT g.name AS target, tg.role FROM target_grants tg JOIN targets g ON g.id = tg.target_id WHERE tg.group_id = ? AND g.deleted_at IS NULL ORDER BY g.name',
    );
    return groups.map((g) => ({
      ...g,
      members: members.all(g.id).map((r) => String((r as Row).name)),
      grants: grants.all(g.id).map((r) => ({ target: String((r as Row).target), role: (r as Row).role as GrantRole })),
    }));
  }

  async addGroupMember(groupId: string, principalId: string): Promise<boolean> {
    return this.stmt('INSERT OR IGNORE INTO group_members (group_id, principal_id) VALUES (?, ?)').run(groupId, principalId).changes === 1;
  }

  async removeGroupMember(groupId: string, principalId: string): Promise<boolean> {
    return this.stmt('DELETE FROM group_members WHERE group_id = ? AND principal_id = ?').run(groupId, principalId).changes === 1;
  }

  async putGrant(targetId: string, groupId: string, role: GrantRole, now: number): Promise<void> {
    this.stmt(
      'INSERT INTO target_grants (target_id, group_id, role, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (target_id, group_id) DO UPDATE SET role = excluded.role',
    ).run(targetId, groupId, role, now);
  }

  async deleteGrant(targetId: string, groupId: string): Promise<boolean> {
    return this.stmt('DELETE FROM target_grants WHERE target_id = ? AND group_id = ?').run(targetId, groupId).changes === 1;
  }

  async grantsOf(principalId: string): Promise<Map<string, GrantRole>> {
    const rows = this.stmt('SELECT tg.target_id, tg.role FROM target_grants tg JOIN group_members m ON m.group_id = tg.group_id WHERE m.principal_id = ?').all(
      principalId,
    ) as Row[];
    const grants = new Map<string, GrantRole>();
    for (const r of rows) {
      const role = r.role as GrantRole;
      const had = grants.get(String(r.target_id));
      if (had === undefined || GRANT_RANK[role] > GRANT_RANK[had]) grants.set(String(r.target_id), role);
    }
    return grants;
  }
}
