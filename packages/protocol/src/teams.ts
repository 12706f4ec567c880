/**
 * Wire schemas of teams: organizations, principals (service accounts now, people later), their
 * tokens, groups, and the grants that give a group a role on a target.
 *
 * A principal is who acts: a service account (named, for automation) or, later, a person
 * (an e-mail). Each belongs to one organization, has one role there and is a member of groups;
 * tokens belong to a principal and act as it.
 */
import { z } from 'zod';

export const ROLES = ['admin', 'operator', 'viewer'] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;
/** The roles a group can be granted on a target (admins see and do everything anyway). */
export const GrantRole = z.enum(['operator', 'viewer']);
export type GrantRole = z.infer<typeof GrantRole>;

const NAME_RULE = 'names are 1-63 characters: lower-case letters, digits, ".", "_" and "-", starting with a letter or digit';
/** Organization, service account, token and group names share the target-name rule. */
export const TeamName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, NAME_RULE);

export const PrincipalKind = z.enum(['service', 'person']);

/** At most ten years; a token without expiry is asked for by leaving this out. */
const MAX_TOKEN_SECONDS = 10 * 366 * 24 * 3600;

export const CreateOrgRequest = z.object({ name: TeamName }).strict();
export const OrgInfo = z.object({ id: z.string(), name: z.string(), createdAt: z.string() });
export type OrgInfo = z.infer<typeof OrgInfo>;
/** A new organization and the one-time token of its first admin (shown once, stored hashed). */
export const OrgCreated = OrgInfo.extend({ adminToken: z.string(), admin: z.string() });

export const CreateTokenRequest = z
  .object({
    name: TeamName,
    /** A new service account with this role; leave out with `personal`. */
    role: Role.optional(),
    /** Another token for the caller's own principal. */
    personal: z.boolean().default(false),
    expiresInSeconds: z.number().int().min(1).max(MAX_TOKEN_SECONDS).optional(),
  })
  .strict()
  .refine((r) => r.personal !== (r.role !== undefined), {
    message: 'a token is either for a new service account (role) or for yourself (personal: true), not both and not neither',
  });

export const TokenInfo = z.object({
  id: z.string(),
  name: z.string(),
  principal: z.string(),
  principalKind: PrincipalKind,
  role: Role,
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});
export type TokenInfo = z.infer<typeof TokenInfo>;
/** The token's secret is in `token`, this once. */
export const TokenCreated = TokenInfo.extend({ token: z.string() });

export const CreateGroupRequest = z.object({ name: TeamName }).strict();
export const GroupInfo = z.object({
  name: z.string(),
  members: z.array(z.string()),
  grants: z.array(z.object({ target: z.string(), role: GrantRole })),
  createdAt: z.string(),
});
export type GroupInfo = z.infer<typeof GroupInfo>;

export const GrantRequest = z.object({ role: GrantRole }).strict();
export const GrantInfo = z.object({ target: z.string(), group: z.string(), role: GrantRole });
