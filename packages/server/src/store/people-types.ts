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

/** An organization's OpenID Connect provider. */
export interface SsoSettingsRow {
  orgId: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  domains: string[];
  groupsClaim: string | null;
  updatedAt: number;
}

/** A sign-in through the provider, from its start to the CLI's exchange. */
export interface SsoLoginRow {
  id: string;
  orgId: string;
  codeVerifier: string;
  nonce: string;
  loopbackPort: number;
  cliChallenge: string;
  createdAt: number;
  expiresAt: number;
}

/** A device sign-in waiting for the person to confirm its code at the provider. */
export interface SsoDeviceRow {
  id: string;
  orgId: string;
  deviceCode: string;
  createdAt: number;
  expiresAt: number;
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

  /** Marks the pending invitations of that e-mail used (the person joined another way: single sign-on). */
  useInvitations(orgId: string, email: string, now: number): Promise<void>;
  /** Whether a person of that e-mail was removed from the organization (and not invited back). */
  wasRemoved(orgId: string, email: string): Promise<boolean>;
  putSso(row: SsoSettingsRow): Promise<void>;
  getSso(orgId: string): Promise<SsoSettingsRow | undefined>;
  createSsoLogin(row: SsoLoginRow, stateHash: string): Promise<void>;
  /** The sign-in with that state, once (compare-and-set on its use), if it has not expired. */
  takeSsoLogin(stateHash: string, now: number): Promise<SsoLoginRow | undefined>;
  /** Records who signed in, and the hash of the code the CLI redeems for a session. */
  completeSsoLogin(id: string, principalId: string, exchangeHash: string): Promise<void>;
  /** The completed sign-in with that exchange code, once, if it has not expired. */
  takeSsoExchange(exchangeHash: string, now: number): Promise<(SsoLoginRow & { principalId: string }) | undefined>;
  createSsoDevice(row: SsoDeviceRow, handleHash: string): Promise<void>;
  /** The live device sign-in with that handle (not used, not expired). */
  findSsoDevice(handleHash: string, now: number): Promise<SsoDeviceRow | undefined>;
  /** Marks it used, once: false if it already was. */
  useSsoDevice(id: string, now: number): Promise<boolean>;
}
