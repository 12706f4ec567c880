/**
 * The people part of the storage interface: invitations, local passwords, and the principals of
 * kind 'person' (named by their e-mail). Who may call these is decided in routes/people.ts.
 */
import type { Role } from '@ferry/protocol';
import type { PrincipalRow } from './teams-types.js';

export interface InvitationRow {
  id: string;
  orgId: string;
  email: string;
  role: Role;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface PersonRow extends PrincipalRow {
  groups: string[];
}

/** A person's account somewhere, as sign-in looks it up (by e-mail, across organizations). */
export interface Account {
  principal: PrincipalRow;
  orgName: string;
  passwordHash: string;
}

export interface PeopleStore {
  /** Stores a new invitation; pending ones for the same e-mail in that organization stop working. */
  createInvitation(row: InvitationRow, secretHash: string): Promise<void>;
  findInvitation(secretHash: string): Promise<InvitationRow | undefined>;
  listPendingInvitations(orgId: string, now: number): Promise<InvitationRow[]>;
  /**
   * Uses the invitation (once: compare-and-set on its use) and makes the person with its
   * password, in one transaction. `used`: the invitation was used or expired meanwhile;
   * `exists`: the organization already has a principal of that name.
   */
  acceptInvitation(invitationId: string, person: PrincipalRow, passwordHash: string, now: number): Promise<'ok' | 'used' | 'exists'>;
  /** The accounts with a password for this e-mail, in every organization. */
  findAccounts(email: string): Promise<Account[]>;
  listPeople(orgId: string): Promise<PersonRow[]>;
  setRole(orgId: string, principalId: string, role: Role): Promise<void>;
  /** Removes the person at once: revokes every token, drops group memberships and password. */
  removePerson(orgId: string, principalId: string, now: number): Promise<void>;
}
