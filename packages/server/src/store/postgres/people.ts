/** People in PostgreSQL: invitations, Argon2id password hashes, principals of kind 'person' (the same queries as sqlite/people.ts). */
import type { Role } from '@ferry/protocol';
import type { Account, InvitationRow, PeopleStore, PersonRow, SsoDeviceRow, SsoLoginRow, SsoSettingsRow } from '../people-types.js';
import type { PrincipalRow } from '../teams-types.js';
import { num, strOrNull, toInvitation, toPrincipal, toSsoLogin } from '../sqlite/rows.js';
import type { Db } from './db.js';

const INVITATION_COLUMNS = 'id, org_id, email, role, created_by, created_at, expires_at, used_at';

export class PgPeople implements PeopleStore {
  constructor(private readonly db: Db) {}

  async createInvitation(row: InvitationRow, secretHash: string): Promise<void> {
    await this.db.tx(async (sql) => {
      await sql.run('UPDATE invitations SET used_at = ? WHERE org_id = ? AND email = ? AND used_at IS NULL', [row.createdAt, row.orgId, row.email]);
      await sql.run(
        'INSERT INTO invitations (id, org_id, email, role, token_hash, created_by, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)',
        [row.id, row.orgId, row.email, row.role, secretHash, row.createdBy, row.createdAt, row.expiresAt],
      );
    });
  }

  async findInvitation(secretHash: string): Promise<InvitationRow | undefined> {
    const r = await this.db.one(`SELECT ${INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?`, [secretHash]);
    return r ? toInvitation(r) : undefined;
  }

  async listPendingInvitations(orgId: string, now: number): Promise<InvitationRow[]> {
    return (
      await this.db.all(`SELECT ${INVITATION_COLUMNS} FROM invitations WHERE org_id = ? AND used_at IS NULL AND expires_at > ? ORDER BY email`, [orgId, now])
    ).map(toInvitation);
  }

  async acceptInvitation(invitationId: string, person: PrincipalRow, passwordHash: string, now: number): Promise<'ok' | 'used' | 'exists'> {
    return this.db.tx(async (sql): Promise<'ok' | 'used' | 'exists'> => {
      if ((await sql.run('UPDATE invitations SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?', [now, invitationId, now])) !== 1)
        return 'used';
      if (await sql.one('SELECT 1 FROM principals WHERE org_id = ? AND name = ? AND removed_at IS NULL', [person.orgId, person.name])) return 'exists';
      await sql.run('INSERT INTO principals (id, org_id, kind, name, role, instance_admin, created_by, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)', [
        person.id,
        person.orgId,
        person.kind,
        person.name,
        person.role,
        person.createdBy,
        person.createdAt,
      ]);
      await sql.run('INSERT INTO passwords (principal_id, hash, updated_at) VALUES (?, ?, ?)', [person.id, passwordHash, now]);
      return 'ok';
    });
  }

  async findAccounts(email: string): Promise<Account[]> {
    const rows = await this.db.all(
      `SELECT p.*, o.name AS org_name, pw.hash AS password_hash FROM principals p
      JOIN passwords pw ON pw.principal_id = p.id JOIN orgs o ON o.id = p.org_id
      WHERE p.kind = 'person' AND p.name = ? AND p.removed_at IS NULL ORDER BY o.name`,
      [email],
    );
    return rows.map((r) => ({ principal: toPrincipal(r), orgName: String(r.org_name), passwordHash: String(r.password_hash) }));
  }

  async listPeople(orgId: string): Promise<PersonRow[]> {
    const people = (await this.db.all("SELECT * FROM principals WHERE org_id = ? AND kind = 'person' AND removed_at IS NULL ORDER BY name", [orgId])).map(
      toPrincipal,
    );
    const out: PersonRow[] = [];
    for (const p of people) {
      const groups = await this.db.all('SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.principal_id = ? ORDER BY g.name', [
        p.id,
      ]);
      out.push({ ...p, groups: groups.map((r) => String(r.name)) });
    }
    return out;
  }

  async setRole(orgId: string, principalId: string, role: Role): Promise<void> {
    await this.db.run('UPDATE principals SET role = ? WHERE id = ? AND org_id = ?', [role, principalId, orgId]);
  }

  async removePerson(orgId: string, principalId: string, now: number): Promise<void> {
    await this.db.tx(async (sql) => {
      await sql.run('UPDATE api_tokens SET revoked_at = ? WHERE principal_id = ? AND org_id = ? AND revoked_at IS NULL', [now, principalId, orgId]);
      await sql.run('DELETE FROM group_members WHERE principal_id = ?', [principalId]);
      await sql.run('DELETE FROM passwords WHERE principal_id = ?', [principalId]);
      await sql.run('UPDATE principals SET removed_at = ? WHERE id = ? AND org_id = ?', [now, principalId, orgId]);
    });
  }

  async useInvitations(orgId: string, email: string, now: number): Promise<void> {
    await this.db.run('UPDATE invitations SET used_at = ? WHERE org_id = ? AND email = ? AND used_at IS NULL', [now, orgId, email]);
  }

  async wasRemoved(orgId: string, email: string): Promise<boolean> {
    return (
      (await this.db.one("SELECT 1 FROM principals WHERE org_id = ? AND name = ? AND kind = 'person' AND removed_at IS NOT NULL", [orgId, email])) !== undefined
    );
  }

  async putSso(row: SsoSettingsRow): Promise<void> {
    await this.db.run(
      `INSERT INTO org_sso (org_id, issuer, client_id, client_secret, domains, groups_claim, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id, client_secret = excluded.client_secret,
        domains = excluded.domains, groups_claim = excluded.groups_claim, updated_at = excluded.updated_at`,
      [row.orgId, row.issuer, row.clientId, row.clientSecret, JSON.stringify(row.domains), row.groupsClaim, row.updatedAt],
    );
  }

  async getSso(orgId: string): Promise<SsoSettingsRow | undefined> {
    const r = await this.db.one('SELECT * FROM org_sso WHERE org_id = ?', [orgId]);
    if (!r) return undefined;
    return {
      orgId: String(r.org_id),
      issuer: String(r.issuer),
      clientId: String(r.client_id),
      clientSecret: String(r.client_secret),
      domains: JSON.parse(String(r.domains)) as string[],
      groupsClaim: strOrNull(r.groups_claim),
      updatedAt: num(r.updated_at),
    };
  }

  async createSsoLogin(row: SsoLoginRow, stateHash: string): Promise<void> {
    await this.db.run(
      'INSERT INTO sso_logins (id, org_id, state_hash, code_verifier, nonce, loopback_port, cli_challenge, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [row.id, row.orgId, stateHash, row.codeVerifier, row.nonce, row.loopbackPort, row.cliChallenge, row.createdAt, row.expiresAt],
    );
  }

  async takeSsoLogin(stateHash: string, now: number): Promise<SsoLoginRow | undefined> {
    const r = await this.db.one('UPDATE sso_logins SET used_at = ? WHERE state_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING *', [
      now,
      stateHash,
      now,
    ]);
    return r ? toSsoLogin(r) : undefined;
  }

  async completeSsoLogin(id: string, principalId: string, exchangeHash: string): Promise<void> {
    await this.db.run('UPDATE sso_logins SET principal_id = ?, exchange_hash = ? WHERE id = ?', [principalId, exchangeHash, id]);
  }

  async takeSsoExchange(exchangeHash: string, now: number): Promise<(SsoLoginRow & { principalId: string }) | undefined> {
    const r = await this.db.one(
      'UPDATE sso_logins SET exchanged_at = ? WHERE exchange_hash = ? AND exchanged_at IS NULL AND expires_at > ? AND principal_id IS NOT NULL RETURNING *',
      [now, exchangeHash, now],
    );
    const principalId = r ? strOrNull(r.principal_id) : null;
    return r && principalId !== null ? { ...toSsoLogin(r), principalId } : undefined;
  }

  async createSsoDevice(row: SsoDeviceRow, handleHash: string): Promise<void> {
    await this.db.run('INSERT INTO sso_devices (id, org_id, handle_hash, device_code, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [
      row.id,
      row.orgId,
      handleHash,
      row.deviceCode,
      row.createdAt,
      row.expiresAt,
    ]);
  }

  async findSsoDevice(handleHash: string, now: number): Promise<SsoDeviceRow | undefined> {
    const r = await this.db.one('SELECT * FROM sso_devices WHERE handle_hash = ? AND used_at IS NULL AND expires_at > ?', [handleHash, now]);
    if (!r) return undefined;
    return { id: String(r.id), orgId: String(r.org_id), deviceCode: String(r.device_code), createdAt: num(r.created_at), expiresAt: num(r.expires_at) };
  }

  async useSsoDevice(id: string, now: number): Promise<boolean> {
    return (await this.db.run('UPDATE sso_devices SET used_at = ? WHERE id = ? AND used_at IS NULL', [now, id])) === 1;
  }
}
