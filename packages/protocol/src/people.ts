/**
 * Wire schemas of people: principals of kind 'person' (named by their e-mail), invited by an
 * admin, who set a password (Argon2id on the server) and sign in for a personal token.
 *
 * Invitation secrets travel in request bodies and in the URL's fragment (`/invite#…`), never
 * in a path or a query, so they stay out of access logs and Referer headers.
 */
import { z } from 'zod';
import { Role } from './teams.js';

/** An e-mail address, compared in lower case (that is how it is stored). */
export const Email = z
  .string()
  .trim()
  .toLowerCase()
  .max(254)
  .regex(/^[^\s@/]+@[^\s@/]+\.[^\s@/]+$/, 'write an e-mail address such as ada@example.com');

/** The minimum password policy (the server checks the rest: not the e-mail, not a common password). */
export const MIN_PASSWORD_LENGTH = 12;
export const Password = z.string().min(MIN_PASSWORD_LENGTH, `a password has at least ${MIN_PASSWORD_LENGTH} characters`).max(1024);

/** The secret of an invitation, as the URL's fragment carries it. */
export const INVITATION_PREFIX = 'ferry_i';
const InvitationSecret = z.string().min(8).max(200);

export const InviteUserRequest = z.object({ email: Email, role: Role }).strict();
/** The one-time URL is shown here, this once; the server keeps only its hash. */
export const InvitationCreated = z.object({ email: z.string(), role: Role, url: z.string(), expiresAt: z.string() });

export const InvitationRequest = z.object({ invitation: InvitationSecret }).strict();
export const InvitationInfo = z.object({ org: z.string(), email: z.string(), role: Role, expiresAt: z.string() });
export const AcceptInvitationRequest = z.object({ invitation: InvitationSecret, password: z.string().max(1024) }).strict();

export const UserInfo = z.object({ email: z.string(), role: Role, groups: z.array(z.string()), createdAt: z.string() });
export type UserInfo = z.infer<typeof UserInfo>;
export const PendingInvitation = z.object({ email: z.string(), role: Role, createdAt: z.string(), expiresAt: z.string() });
export const UserList = z.object({ users: z.array(UserInfo), invitations: z.array(PendingInvitation) });
export const SetUserRoleRequest = z.object({ role: Role }).strict();

export const SignInRequest = z
  .object({
    email: Email,
    password: z.string().max(1024),
    /** The organization's name; needed only when the e-mail has accounts in several. */
    org: z.string().max(63).optional(),
  })
  .strict();
/** A personal token (a session) for the person, shown once. */
export const SignedIn = z.object({ token: z.string(), tokenId: z.string(), email: z.string(), org: z.string(), role: Role, expiresAt: z.string() });
