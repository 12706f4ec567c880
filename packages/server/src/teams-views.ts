/** Teams rows → API shapes (as views.ts does for the rest): never a token's hash or secret. */
import type { GroupInfo, OrgInfo, TokenInfo } from '@ferry/protocol';
import type { GroupWithMembers, TokenWithPrincipal } from './store/teams-types.js';
import type { OrgRow } from './store/types.js';

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export function orgView(row: OrgRow): OrgInfo {
  return { id: row.id, name: row.name, createdAt: iso(row.createdAt) };
}

export function tokenView({ token, principal }: TokenWithPrincipal): TokenInfo {
  return {
    id: token.id,
    name: token.name,
    principal: principal.name,
    principalKind: principal.kind,
    role: principal.role,
    createdAt: iso(token.createdAt),
    expiresAt: isoOrNull(token.expiresAt),
    lastUsedAt: isoOrNull(token.lastUsedAt),
    revokedAt: isoOrNull(token.revokedAt),
  };
}

export function groupView(row: GroupWithMembers): GroupInfo {
  return { name: row.name, members: row.members, grants: row.grants, createdAt: iso(row.createdAt) };
}
