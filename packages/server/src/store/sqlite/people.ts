/* eslint-disable @typescript-eslint/require-await -- the PeopleStore interface is async for PostgreSQL; better-sqlite3 is synchronous */
/** People in SQLite: invitations, Argon2id password hashes, and principals of kind 'person'. */
import type Database from 'better-sqlite3';
import type { Role } from '@ferry/protocol';
import type { Account, InvitationRow, PeopleStore, PersonRow, SsoDeviceRow, SsoLoginRow, SsoSettingsRow } from '../people-types.js';
import type { PrincipalRow } from '../teams-types.js';
import { num, strOrNull, toInvitation, toPrincipal, toSsoLogin, type Row } from './rows.js';
import type { Statements } from './output.js';

const INVITATION_COLUMNS = 'id, org_id, email, role, created_by, created_at, expires_at, used_at';

export class SqlitePeople implements PeopleStore {
  constructor(
    private readonly db: Database.Database,
    private readonly stmt: Statements,
  ) {}

  async createInvitation(row: InvitationRow, secretHash: string): Promise<void> {
    this.db.transaction(() => {
      this.stmt('UPDATE invitations SET used_at = ? WHERE org_id = ? AND email = ? AND used_at IS NULL').run(row.createdAt, row.orgId, row.email);
      this.stmt(
        `INSERT INTO invitations (id, org_id, email, role, token_hash, created_by, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
      ).run(row.id, row.orgId, row.email, row.role, secretHash, row.createdBy, row.createdAt, row.expiresAt);
    })();
  }

  async findInvitation(secretHash: string): Promise<InvitationRow | undefined> {
    const r = this.stmt(`SELECT ${INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?`).get(secretHash) as Row | undefined;
    return r ? toInvitation(r) : undefined;
  }

  async listPendingInvitations(orgId: string, now: number): Promise<InvitationRow[]> {
    return this.stmt(`SELECT ${INVITATION_COLUMNS} FROM invitations WHERE org_id = ? AND used_at IS NULL AND expires_at > ? ORDER BY email`)
      .all(orgId, now)
      .map((r) => toInvitation(r as Row));
  }

  async acceptInvitation(invitationId: string, person: PrincipalRow, passwordHash: string, now: number): Promise<'ok' | 'used' | 'exists'> {
    return this.db.transaction((): 'ok' | 'used' | 'exists' => {
      const used = this.stmt('UPDATE invitations SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?').run(now, invitationId, now);
      if (used.changes !== 1) return 'used';
      const taken = this.stmt('SELECT 1 FROM principals WHERE org_id = ? AND name = ? AND removed_at IS NULL').get(person.orgId, person.name);
      if (taken) return 'exists';
      this.stmt('INSERT INTO principals (id, org_id, kind, name, role, instance_admin, created_by, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)').run(
        person.id,
        person.orgId,
        person.kind,
        person.name,
        person.role,
        person.createdBy,
        person.createdAt,
      );
      this.stmt('INSERT INTO passwords (principal_id, hash, updated_at) VALUES (?, ?, ?)').run(person.id, passwordHash, now);
      return 'ok';
    })();
  }

  async findAccounts(email: string): Promise<Account[]> {
    const rows = this.stmt(
      `SELECT p.*, o.name AS org_name, pw.hash AS password_hash FROM principals p
      JOIN passwords pw ON pw.principal_id = p.id JOIN orgs o ON o.id = p.org_id
      WHERE p.kind = 'person' AND p.name = ? AND p.removed_at IS NULL ORDER BY o.name`,
    ).all(email) as Row[];
    return rows.map((r) => ({ principal: toPrincipal(r), orgName: String(r.org_name), passwordHash: String(r.password_hash) }));
  }

  async listPeople(orgId: string): Promise<PersonRow[]> {
    const people = this.stmt("SELECT * FROM principals WHERE org_id = ? AND kind = 'person' AND removed_at IS NULL ORDER BY name")
      .all(orgId)
      .map((r) => toPrincipal(r as Row));
    const groups = this.stmt('SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.principal_id = ? ORDER BY g.name');
    return people.map((p) => ({ ...p, groups: groups.all(p.id).map((r) => String((r as Row).name)) }));
  }

  async setRole(orgId: string, principalId: string, role: Role): Promise<void> {
    this.stmt('UPDATE principals SET role = ? WHERE id = ? AND org_id = ?').run(role, principalId, orgId);
  }

  async removePerson(orgId: string, principalId: string, now: number): Promise<void> {
    this.db.transaction(() => {
      this.stmt('UPDATE api_tokens SET revoked_at = ? WHERE principal_id = ? AND org_id = ? AND revoked_at IS NULL').run(now, principalId, orgId);
      this.stmt('DELETE FROM group_members WHERE principal_id = ?').run(principalId);
      this.stmt('DELETE FROM passwords WHERE principal_id = ?').run(principalId);
      this.stmt('UPDATE principals SET removed_at = ? WHERE id = ? AND org_id = ?').run(now, principalId, orgId);
    })();
  }

  async useInvitations(orgId: string, email: string, now: number): Promise<void> {
    this.stmt('UPDATE invitations SET used_at = ? WHERE org_id = ? AND email = ? AND used_at IS NULL').run(now, orgId, email);
  }

  async wasRemoved(orgId: string, email: string): Promise<boolean> {
    return this.stmt("SELECT 1 FROM principals WHERE org_id = ? AND name = ? AND kind = 'person' AND removed_at IS NOT NULL").get(orgId, email) !== undefined;
  }

  async putSso(row: SsoSettingsRow): Promise<void> {
    this.stmt(
      `INSERT INTO org_sso (org_id, issuer, client_id, client_secret, domains, groups_claim, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id, client_secret = excluded.client_secret,
        domains = excluded.domains, groups_claim = excluded.groups_claim, updated_at = excluded.updated_at`,
    ).run(row.orgId, row.issuer, row.clientId, row.clientSecret, JSON.stringify(row.domains), row.groupsClaim, row.updatedAt);
  }

  async getSso(orgId: string): Promise<SsoSettingsRow | undefined> {
    const r = this.stmt('SELECT * FROM org_sso WHERE org_id = ?').get(orgId) as Row | undefined;
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
    this.stmt(
      `INSERT INTO sso_logins (id, org_id, state_hash, code_verifier, nonce, loopback_port, cli_challenge, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(row.id, row.orgId, stateHash, row.codeVerifier, row.nonce, row.loopbackPort, row.cliChallenge, row.createdAt, row.expiresAt);
  }

  async takeSsoLogin(stateHash: string, now: number): Promise<SsoLoginRow | undefined> {
    return this.db.transaction((): SsoLoginRow | undefined => {
      const r = this.stmt('SELECT * FROM sso_logins WHERE state_hash = ? AND used_at IS NULL AND expires_at > ?').get(stateHash, now) as Row | undefined;
      if (!r) return undefined;
      this.stmt('UPDATE sso_logins SET used_at = ? WHERE id = ?').run(now, r.id);
      return toSsoLogin(r);
    })();
  }

  async completeSsoLogin(id: string, principalId: string, exchangeHash: string): Promise<void> {
    this.stmt('UPDATE sso_logins SET principal_id = ?, exchange_hash = ? WHERE id = ?').run(principalId, exchangeHash, id);
  }

  async takeSsoExchange(exchangeHash: string, now: number): Promise<(SsoLoginRow & { principalId: string }) | undefined> {
    return this.db.transaction((): (SsoLoginRow & { principalId: string }) | undefined => {
      const r = this.stmt('SELECT * FROM sso_logins WHERE exchange_hash = ? AND exchanged_at IS NULL AND expires_at > ?').get(exchangeHash, now) as
        Row | undefined;
      const principalId = r ? strOrNull(r.principal_id) : null;
      if (!r || principalId === null) return undefined;
      this.stmt('UPDATE sso_logins SET exchanged_at = ? WHERE id = ?').run(now, r.id);
      return { ...toSsoLogin(r), principalId };
    })();
  }

  async createSsoDevice(row: SsoDeviceRow, handleHash: string): Promise<void> {
    this.stmt('INSERT INTO sso_devices (id, org_id, handle_hash, device_code, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)').run(
      row.id,
      row.orgId,
      handleHash,
      row.deviceCode,
      row.createdAt,
      row.expiresAt,
    );
  }

  async findSsoDevice(handleHash: string, now: number): Promise<SsoDeviceRow | undefined> {
    const r = this.stmt('SELECT * FROM sso_devices WHERE handle_hash = ? AND used_at IS NULL AND expires_at > ?').get(handleHash, now) as Row | undefined;
    if (!r) return undefined;
    return { id: String(r.id), orgId: String(r.org_id), deviceCode: String(r.device_code), createdAt: num(r.created_at), expiresAt: num(r.expires_at) };
  }

  async useSsoDevice(id: string, now: number): Promise<boolean> {
    return this.stmt('UPDATE sso_devices SET used_at = ? WHERE id = ? AND used_at IS NULL').run(now, id).changes === 1;
  }
}
