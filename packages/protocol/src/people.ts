/**
 * Wire schemas of people: principals of kind 'person' (named by their e-mail), invited by an
 * admin, who set a password (Argon2id on the server) and sign in for a personal token.
 *
 * Invitation secrets travel in request bodies and in the URL's fragment (`/v1/invite#…`), never
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

// ---- single sign-on (OpenID Connect), per organization ----

const Domain = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, 'write a domain such as example.com');

export const SetSsoRequest = z
  .object({
    issuer: z.string().url().max(500),
    clientId: z.string().min(1).max(500),
    clientSecret: z.string().min(1).max(4096),
    /** Only people whose (verified) e-mail is in one of these domains may sign in. */
    domains: z.array(Domain).min(1).max(100),
    /** The ID token claim that lists the person's groups; those that name a Ferry group make them a member. */
    groupsClaim: z.string().min(1).max(100).optional(),
  })
  .strict();
export const SsoInfo = z.object({
  issuer: z.string(),
  clientId: z.string(),
  domains: z.array(z.string()),
  groupsClaim: z.string().nullable(),
  updatedAt: z.string(),
});

export const SsoStartRequest = z
  .object({
    org: z.string().max(63),
    /** The port the CLI listens on, on 127.0.0.1, for the browser's return. */
    loopbackPort: z.number().int().min(1024).max(65535),
    /** base64url(SHA-256(verifier)): only the CLI that started the sign-in can redeem it. */
    cliChallenge: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'base64url of a SHA-256 digest'),
  })
  .strict();
export const SsoStarted = z.object({ authorizationUrl: z.string(), expiresAt: z.string() });
/** What the provider sends back to the server's callback (RFC 6749 §4.1.2, RFC 9207). */
export const SsoCallbackQuery = z.looseObject({
  code: z.string().max(2000).optional(),
  state: z.string().max(200).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(2000).optional(),
});
export const SsoExchangeRequest = z.object({ code: z.string().min(8).max(200), verifier: z.string().min(43).max(128) }).strict();

/** A sign-in without a browser here (RFC 8628): the person confirms a code at the provider elsewhere. */
export const SsoDeviceStartRequest = z.object({ org: z.string().max(63) }).strict();
export const SsoDeviceStarted = z.object({
  /** What the CLI polls with (a secret: only this CLI gets the session). */
  handle: z.string(),
  verificationUri: z.string(),
  verificationUriComplete: z.string().nullable(),
  userCode: z.string(),
  intervalSeconds: z.number().int(),
  expiresAt: z.string(),
});
export const SsoDevicePollRequest = z.object({ handle: z.string().min(8).max(200) }).strict();
