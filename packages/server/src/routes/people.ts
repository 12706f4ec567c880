/**
 * People: admins invite them by e-mail; the invitation's one-time URL opens a page (or
 * `ferry user accept URL`) where they set a password and become principals of kind 'person';
 * they sign in with e-mail and password for a personal token (a session) that acts as them.
 *
 * Sign-in and the invitation routes are unauthenticated and limited twice: per client address
 * (the route's limit) and, for sign-in, per account. Failed attempts use the allowance up;
 * successful ones give it back (rate-limit.ts).
 */
import type { z } from 'zod';
import { FerryError, INVITATION_PREFIX, Routes, type ParsedBody, type SignedIn, type UserInfo } from '@ferry/protocol';
import type { FerryApp } from '../app.js';
import { USER_TOKEN_PREFIX, type UserPrincipal } from '../auth.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { hashSecret, newId, newSecret } from '../ids.js';
import { checkPasswordPolicy, hashPassword, verifyPassword } from '../people/password.js';
import { invitationPage } from '../people/page.js';
import type { InvitationRow, PersonRow } from '../store/people-types.js';
import type { PrincipalRow } from '../store/teams-types.js';

/** An invitation works for a week. */
const INVITATION_MS = 7 * 24 * 3600 * 1000;
/** A session (the personal token sign-in makes) lasts 30 days; `ferry login` again for another. */
const SESSION_MS = 30 * 24 * 3600 * 1000;

const iso = (ms: number): string => new Date(ms).toISOString();

function userView(p: PersonRow): UserInfo {
  return { email: p.name, role: p.role, groups: p.groups, createdAt: iso(p.createdAt) };
}

function invalidInvitation(): FerryError {
  return new FerryError('FERRY_E_INVITATION_INVALID');
}

/** The live invitation with that secret, or FERRY_E_INVITATION_INVALID (unknown, used and expired alike). */
async function liveInvitation(ctx: ServerContext, secret: string): Promise<InvitationRow> {
  if (!secret.startsWith(`${INVITATION_PREFIX}_`)) throw invalidInvitation();
  const row = await ctx.store.people.findInvitation(hashSecret(secret));
  if (!row || row.usedAt !== null || row.expiresAt <= Date.now()) throw invalidInvitation();
  return row;
}

/** The person of that e-mail in the caller's organization, or 404. */
async function findPerson(ctx: ServerContext, user: UserPrincipal, email: string): Promise<PersonRow> {
  const wanted = email.trim().toLowerCase();
  const found = (await ctx.store.people.listPeople(user.orgId)).find((p) => p.name === wanted);
  if (!found) throw new FerryError('FERRY_E_USER_NOT_FOUND', `No person ${wanted} in this organization. \`ferry user list\` shows them.`);
  return found;
}

function notSelf(user: UserPrincipal, person: PersonRow, what: string): void {
  if (person.id === user.principalId) throw new FerryError('FERRY_E_SELF_CHANGE', `You cannot ${what} yourself; ask another admin.`);
}

async function invite(ctx: ServerContext, user: UserPrincipal, body: ParsedBody<typeof Routes.inviteUser>): Promise<{ row: InvitationRow; url: string }> {
  const existing = await ctx.store.teams.findPrincipal(user.orgId, body.email);
  if (existing) throw new FerryError('FERRY_E_NAME_TAKEN', `${body.email} is already a member of this organization (\`ferry user list\`).`);
  const now = Date.now();
  const secret = newSecret(INVITATION_PREFIX);
  const row: InvitationRow = {
    id: newId('i'),
    orgId: user.orgId,
    email: body.email,
    role: body.role,
    createdBy: user.principalId,
    createdAt: now,
    expiresAt: now + INVITATION_MS,
    usedAt: null,
  };
  await ctx.store.people.createInvitation(row, hashSecret(secret));
  // The secret goes in the fragment: browsers never send it, so no log or Referer holds it.
  // It opens the web UI's page (packages/web, src/pages/invite.tsx); `ferry user accept URL` takes it too.
  return { row, url: `${ctx.publicUrl}/ui/invite#${secret}` };
}

async function accept(ctx: ServerContext, body: ParsedBody<typeof Routes.acceptInvitation>): Promise<PersonRow> {
  const inv = await liveInvitation(ctx, body.invitation);
  checkPasswordPolicy(body.password, inv.email);
  const now = Date.now();
  const person: PrincipalRow = {
    id: newId('p'),
    orgId: inv.orgId,
    kind: 'person',
    name: inv.email,
    role: inv.role,
    instanceAdmin: false,
    createdBy: inv.createdBy,
    createdAt: now,
  };
  const result = await ctx.store.people.acceptInvitation(inv.id, person, await hashPassword(body.password), now);
  if (result === 'used') throw invalidInvitation();
  if (result === 'exists') throw new FerryError('FERRY_E_NAME_TAKEN', `${inv.email} is already a member of this organization; sign in with \`ferry login\`.`);
  await ctx.audit({
    orgId: inv.orgId,
    actor: `person:${inv.email} (invitation ${inv.id})`,
    action: 'user.join',
    subject: inv.email,
    details: { role: inv.role },
  });
  return { ...person, groups: [] };
}

export interface Session {
  person: PrincipalRow;
  orgName: string;
  secret: string;
  tokenId: string;
  expiresAt: number;
}

/** A personal token for the person who just signed in (by password or through the provider). */
export async function createSession(
  ctx: ServerContext,
  person: PrincipalRow,
  orgName: string,
  method: 'password' | 'sso' | 'link',
  kind: { lifetimeMs: number; name: string } = { lifetimeMs: SESSION_MS, name: 'session' },
): Promise<Session> {
  const now = Date.now();
  const secret = newSecret(USER_TOKEN_PREFIX);
  const tokenId = newId('k');
  const expiresAt = now + kind.lifetimeMs;
  const name = `${kind.name}-${tokenId.slice(2)}`;
  const made = await ctx.store.teams.createToken(
    { id: tokenId, orgId: person.orgId, principalId: person.id, name, createdAt: now, expiresAt, lastUsedAt: null, revokedAt: null },
    hashSecret(secret),
  );
  if (made !== 'ok') throw new FerryError('FERRY_E_INTERNAL', 'The session token could not be stored.');
  await ctx.audit({
    orgId: person.orgId,
    actor: `person:${person.name} (session ${tokenId})`,
    action: 'user.sign-in',
    subject: person.name,
    details: { method, expiresAt, ...(kind.name === 'session' ? {} : { kind: kind.name }) },
  });
  return { person, orgName, secret, tokenId, expiresAt };
}

export const signedInView = (s: Session): z.input<typeof SignedIn> => ({
  token: s.secret,
  tokenId: s.tokenId,
  email: s.person.name,
  org: s.orgName,
  role: s.person.role,
  expiresAt: iso(s.expiresAt),
});

/** Checks e-mail and password; the person's account and organization, or FERRY_E_SIGN_IN_FAILED. */
export async function checkPassword(ctx: ServerContext, body: ParsedBody<typeof Routes.signIn>): Promise<{ principal: PrincipalRow; orgName: string }> {
  // Counted per account before the (slow) check; a success gives the attempt back.
  try {
    ctx.rateLimits.accountSignIns.take(body.email);
  } catch (err) {
    if (!(err instanceof FerryError)) throw err;
    const seconds = Number(err.details?.retryAfterSeconds ?? 60);
    throw new FerryError('FERRY_E_RATE_LIMITED', `Too many failed sign-ins for ${body.email}; retry in ${seconds} s.`, {
      details: { retryAfterSeconds: seconds },
    });
  }
  const accounts = (await ctx.store.people.findAccounts(body.email)).filter((a) => body.org === undefined || a.orgName === body.org);
  // Every candidate's password is checked (an unknown e-mail against a decoy, so it takes as
  // long): whether an address has accounts in several organizations is said only to its owner.
  const matching: typeof accounts = [];
  for (const a of accounts) if (await verifyPassword(a.passwordHash, body.password)) matching.push(a);
  if (accounts.length === 0) await verifyPassword(undefined, body.password);
  const account = matching[0];
  if (!account) throw new FerryError('FERRY_E_SIGN_IN_FAILED');
  if (matching.length > 1) throw new FerryError('FERRY_E_ORG_REQUIRED', `${body.email} has accounts in several organizations; name one with --org.`);
  ctx.rateLimits.accountSignIns.refund(body.email);
  return account;
}

async function signIn(ctx: ServerContext, body: ParsedBody<typeof Routes.signIn>): Promise<Session> {
  const account = await checkPassword(ctx, body);
  return createSession(ctx, account.principal, account.orgName, 'password');
}

export function registerPeopleRoutes(app: FerryApp, ctx: ServerContext): void {
  const limit = ctx.rateLimits.signIns;

  addRoute(
    app,
    ctx,
    Routes.inviteUser,
    async ({ caller: user, body }) => {
      const { row, url } = await invite(ctx, user, body);
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'user.invite', subject: row.email, details: { role: row.role, invitation: row.id } });
      return { email: row.email, role: row.role, url, expiresAt: iso(row.expiresAt) };
    },
    { role: 'admin', what: 'invitation' },
  );

  addRoute(
    app,
    ctx,
    Routes.listUsers,
    async ({ caller: user }) => {
      const users = (await ctx.store.people.listPeople(user.orgId)).map(userView);
      const pending = await ctx.store.people.listPendingInvitations(user.orgId, Date.now());
      return { users, invitations: pending.map((i) => ({ email: i.email, role: i.role, createdAt: iso(i.createdAt), expiresAt: iso(i.expiresAt) })) };
    },
    { role: 'admin' },
  );

  addRoute(
    app,
    ctx,
    Routes.setUserRole,
    async ({ caller: user, params, body }) => {
      const person = await findPerson(ctx, user, params.email);
      notSelf(user, person, 'change the role of');
      await ctx.store.people.setRole(user.orgId, person.id, body.role);
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'user.set-role', subject: person.name, details: { from: person.role, to: body.role } });
      return userView({ ...person, role: body.role });
    },
    { role: 'admin', what: 'role' },
  );

  addRoute(
    app,
    ctx,
    Routes.removeUser,
    async ({ caller: user, params }) => {
      const person = await findPerson(ctx, user, params.email);
      notSelf(user, person, 'remove');
      await ctx.store.people.removePerson(user.orgId, person.id, Date.now());
      await ctx.audit({ orgId: user.orgId, actor: user.actor, action: 'user.remove', subject: person.name, details: { role: person.role } });
    },
    { role: 'admin' },
  );

  addRoute(app, ctx, Routes.invitationPage, () => ({ contentType: 'text/html; charset=utf-8', text: invitationPage() }));

  addRoute(
    app,
    ctx,
    Routes.getInvitation,
    async ({ body }) => {
      const inv = await liveInvitation(ctx, body.invitation);
      const org = await ctx.store.teams.getOrg(inv.orgId);
      return { org: org?.name ?? inv.orgId, email: inv.email, role: inv.role, expiresAt: iso(inv.expiresAt) };
    },
    { what: 'invitation', limit },
  );

  addRoute(app, ctx, Routes.acceptInvitation, async ({ body }) => userView(await accept(ctx, body)), { what: 'invitation', limit });

  addRoute(
    app,
    ctx,
    Routes.signIn,
    async ({ body }) => {
      return signedInView(await signIn(ctx, body));
    },
    { what: 'sign-in', limit },
  );
}
