/**
 * The teams part of the storage interface: organizations, principals, their tokens, groups and
 * target grants. Every lookup a user's request makes is scoped by organization; who may do what
 * with these rows is decided in authz.ts, not here.
 */
import type { GrantRole, Role } from '@ferry/protocol';
import type { OrgRow } from './types.js';

/** Who acts: a service account now, a person (name = e-mail) later. */
export interface PrincipalRow {
  id: string;
  orgId: string;
  kind: 'service' | 'person';
  name: string;
  role: Role;
  /** May create organizations and add agents to the shared hosted pool. */
  instanceAdmin: boolean;
  /** The principal that made this one (null: the server, at first start). */
  createdBy: string | null;
  createdAt: number;
}

export interface TokenRow {
  id: string;
  orgId: string;
  principalId: string;
  name: string;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** A token with the principal it acts as. */
export interface TokenWithPrincipal {
  token: TokenRow;
  principal: PrincipalRow;
}

export interface GroupRow {
  id: string;
  orgId: string;
  name: string;
  createdAt: number;
}

export interface GroupWithMembers extends GroupRow {
  members: string[];
  grants: { target: string; role: GrantRole }[];
}

export interface TeamsStore {
  /** A new organization with its first admin and that admin's token, in one transaction. */
  createOrgWithAdmin(org: OrgRow, admin: PrincipalRow, token: TokenRow, tokenHash: string): Promise<'ok' | 'exists'>;
  listOrgs(): Promise<OrgRow[]>;
  getOrg(orgId: string): Promise<OrgRow | undefined>;

  /** `exists`: the organization already has a principal of that name. */
  createPrincipal(row: PrincipalRow): Promise<'ok' | 'exists'>;
  findPrincipal(orgId: string, name: string): Promise<PrincipalRow | undefined>;
  /** A new service account and its first token, in one transaction. */
  createServiceAccount(principal: PrincipalRow, token: TokenRow, tokenHash: string): Promise<'ok' | 'exists'>;
  /** `exists`: the organization already has a live token of that name. */
  createToken(row: TokenRow, tokenHash: string): Promise<'ok' | 'exists'>;
  /** The token with that hash, revoked or expired ones included (the caller says which it is). */
  findToken(tokenHash: string): Promise<TokenWithPrincipal | undefined>;
  /** Records a use; the caller writes at most once a minute per token. */
  touchToken(tokenId: string, now: number): Promise<void>;
  /** The organization's tokens, newest first; only those of `principalIds` when given. */
  listTokens(orgId: string, principalIds?: readonly string[]): Promise<TokenWithPrincipal[]>;
  /** A live token by id, or by name. */
  findLiveToken(orgId: string, idOrName: string): Promise<TokenWithPrincipal | undefined>;
  revokeToken(orgId: string, tokenId: string, now: number): Promise<boolean>;

  createGroup(row: GroupRow): Promise<'ok' | 'exists'>;
  findGroup(orgId: string, name: string): Promise<GroupRow | undefined>;
  listGroups(orgId: string): Promise<GroupWithMembers[]>;
  /** False when the principal already was a member. */
  addGroupMember(groupId: string, principalId: string): Promise<boolean>;
  /** False when the principal was not a member. */
  removeGroupMember(groupId: string, principalId: string): Promise<boolean>;
  /** Sets (or changes) a group's role on a target. */
  putGrant(targetId: string, groupId: string, role: GrantRole, now: number): Promise<void>;
  deleteGrant(targetId: string, groupId: string): Promise<boolean>;
  /** The role each target is granted to the principal through its groups (the higher one where several). */
  grantsOf(principalId: string): Promise<Map<string, GrantRole>>;
}
