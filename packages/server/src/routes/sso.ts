/**
 * Single sign-on through an organization's OpenID Connect provider, with openid-client (a
 * certified relying party): the authorization code flow with PKCE, `state` and `nonce` checked.
 *
 * 1. The CLI listens on 127.0.0.1 and asks `ssoStart` for the provider's URL, sending the hash
 *    of a verifier only it knows; the server keeps the PKCE verifier, the nonce and the state's
 *    hash (10 minutes, usable once).
 * 2. The browser signs in at the provider, which sends it back to `ssoCallback`. The server
 *    redeems the code (the provider refuses a replayed or expired one), checks the ID token
 *    (signature, issuer, audience, nonce) and the e-mail's domain, makes the person on first
 *    sign-in, maps the groups claim to Ferry groups, and sends the browser on to the CLI's
 *    loopback with a one-time exchange code (or the reason it refused).
 * 3. The CLI redeems the exchange code with its verifier (`ssoExchange`) for a session token.
 */
import { createHash } from 'node:crypto';
import * as oidc from 'openid-client';
import type { z } from 'zod';
import { FerryError, Routes, SSO_BINDING_COOKIE, type ParsedBody, type ParsedQuery, type SsoDeviceStarted } from '@ferry/protocol';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FerryApp } from '../app.js';
import type { ServerContext } from '../context.js';
import { addRoute } from '../http/route.js';
import { hashSecret, newId, newSecret } from '../ids.js';
import type { SsoLoginRow, SsoSettingsRow } from '../store/people-types.js';
import type { OrgRow } from '../store/types.js';
import type { PrincipalRow } from '../store/teams-types.js';
import { createSession, signedInView } from './people.js';
import { checkSameOrigin, readCookie, setSsoBindingCookie } from '../web/cookies.js';
import { startBrowserSession } from '../web/session.js';

/** A sign-in must come back from the provider (and be redeemed by the CLI) within this. */
const LOGIN_MS = 10 * 60 * 1000;
const iso = (ms: number): string => new Date(ms).toISOString();

/** Plain HTTP is allowed for a provider on this machine only (development and tests). */
function isLoopbackHttp(issuer: URL): boolean {
  return issuer.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname);
}

function checkIssuerUrl(ctx: ServerContext, text: string): URL {
  const url = new URL(text);
  if (url.protocol === 'https:' || (ctx.config.ssoAllowLoopbackHttp && isLoopbackHttp(url))) return url;
  throw new FerryError(
    'FERRY_E_BAD_REQUEST',
    `The issuer must be an https:// URL: ${text}. (Plain http on 127.0.0.1 or localhost, for development, needs the server setting ssoAllowLoopbackHttp.)`,
  );
}

/** Discovered provider configurations, per organization and settings version. */
const configs = new Map<string, { updatedAt: number; config: Promise<oidc.Configuration> }>();

async function discover(ctx: ServerContext, s: Pick<SsoSettingsRow, 'issuer' | 'clientId' | 'clientSecret'>): Promise<oidc.Configuration> {
  const issuer = checkIssuerUrl(ctx, s.issuer);
  try {
    return await oidc.discovery(issuer, s.clientId, s.clientSecret, undefined, isLoopbackHttp(issuer) ? { execute: [oidc.allowInsecureRequests] } : undefined);
  } catch (err) {
    throw new FerryError('FERRY_E_SSO_PROVIDER', `Could not read the OpenID configuration of ${s.issuer}: ${(err as Error).message}.`, { cause: err });
  }
}

function providerConfig(ctx: ServerContext, s: SsoSettingsRow): Promise<oidc.Configuration> {
  const cached = configs.get(s.orgId);
  if (cached && cached.updatedAt === s.updatedAt) return cached.config;
  const config = discover(ctx, s);
  configs.set(s.orgId, { updatedAt: s.updatedAt, config });
  config.catch(() => configs.delete(s.orgId));
  return config;
}

const callbackUrl = (ctx: ServerContext): string => `${ctx.publicUrl}${Routes.ssoCallback.path}`;
const base64urlSha256 = (text: string): string => createHash('sha256').update(text).digest('base64url');

/** The organization of that name and its single sign-on settings (the same 404 when either is missing). */
async function orgSso(ctx: ServerContext, name: string): Promise<{ org: OrgRow; settings: SsoSettingsRow }> {
  const org = (await ctx.store.teams.listOrgs()).find((o) => o.name === name);
  const settings = org ? await ctx.store.people.getSso(org.id) : undefined;
  if (!org || !settings) throw new FerryError('FERRY_E_SSO_NOT_CONFIGURED', `Organization ${name} has no single sign-on (or does not exist).`);
  return { org, settings };
}

const scopeOf = (settings: SsoSettingsRow): string => (settings.groupsClaim ? `openid email profile ${settings.groupsClaim}` : 'openid email profile');

/** Why the provider refused, from openid-client's error (an OAuth error, or the check that failed). */
function refusal(err: unknown): string {
  const e = err as Error & { error?: string; error_description?: string };
  // openid-client wraps the check that failed (e.g. 'unexpected ID Token "nonce" claim value') as the cause.
  const detail = e.cause instanceof Error && e.cause.message !== e.message ? ` (${e.cause.message})` : '';
  return e.error ? `${e.error}${e.error_description ? ` (${e.error_description})` : ''}` : `${e.message}${detail}`;
}

/**
 * A sign-in in a browser (the web UI) rather than for the CLI: no loopback port (0), and the
 * challenge is the hash of a secret kept in the browser's SSO binding cookie, so only the
 * browser that started the sign-in can finish it (no login CSRF).
 */
const BROWSER_PORT = 0;

async function start(ctx: ServerContext, body: ParsedBody<typeof Routes.ssoStart>): Promise<{ url: URL; expiresAt: number }> {
  const { org, settings } = await orgSso(ctx, body.org);
  const config = await providerConfig(ctx, settings);
  const now = Date.now();
  const state = oidc.randomState();
  const row: SsoLoginRow = {
    id: newId('s'),
    orgId: org.id,
    codeVerifier: oidc.randomPKCECodeVerifier(),
    nonce: oidc.randomNonce(),
    loopbackPort: body.loopbackPort,
    cliChallenge: body.cliChallenge,
    createdAt: now,
    expiresAt: now + LOGIN_MS,
  };
  await ctx.store.people.createSsoLogin(row, hashSecret(state));
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: callbackUrl(ctx),
    scope: scopeOf(settings),
    code_challenge: await oidc.calculatePKCECodeChallenge(row.codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce: row.nonce,
  });
  return { url, expiresAt: row.expiresAt };
}

/** The person the provider vouched for, made on first sign-in; their groups from the claim. */
async function personFor(ctx: ServerContext, settings: SsoSettingsRow, claims: oidc.IDToken): Promise<PrincipalRow> {
  const email = typeof claims.email === 'string' ? claims.email.trim().toLowerCase() : '';
  if (!email) throw new FerryError('FERRY_E_SSO_REFUSED', 'The identity provider sent no e-mail address (ask for the "email" scope).');
  if (claims.email_verified === false) throw new FerryError('FERRY_E_SSO_REFUSED', `The identity provider says ${email} is not verified.`);
  const domain = email.split('@').at(-1) ?? '';
  if (!settings.domains.includes(domain)) {
    throw new FerryError('FERRY_E_SSO_DOMAIN', `${email} is not in an allowed domain of this organization (${settings.domains.join(', ')}).`);
  }
  let person = await ctx.store.teams.findPrincipal(settings.orgId, email);
  if (!person) {
    // A pending invitation decides the role (and is used up); otherwise a first sign-in makes a
    // viewer, unless an admin removed this person: then only a new invitation lets them back.
    const invited = (await ctx.store.people.listPendingInvitations(settings.orgId, Date.now())).find((i) => i.email === email);
    if (!invited && (await ctx.store.people.wasRemoved(settings.orgId, email))) {
      throw new FerryError('FERRY_E_SSO_REFUSED', `${email} was removed from this organization; an admin can invite them again (\`ferry user invite\`).`);
    }
    if (invited) await ctx.store.people.useInvitations(settings.orgId, email, Date.now());
    const row: PrincipalRow = {
      id: newId('p'),
      orgId: settings.orgId,
      kind: 'person',
      name: email,
      role: invited?.role ?? 'viewer',
      instanceAdmin: false,
      createdBy: invited?.createdBy ?? null,
      createdAt: Date.now(),
    };
    await ctx.store.teams.createPrincipal(row);
    person = (await ctx.store.teams.findPrincipal(settings.orgId, email)) ?? row;
    await ctx.audit({
      orgId: settings.orgId,
      actor: `person:${email} (sso)`,
      action: 'user.join',
      subject: email,
      details: { role: person.role, method: 'sso' },
    });
  }
  if (person.kind !== 'person') throw new FerryError('FERRY_E_SSO_REFUSED', `${email} is the name of a service account here.`);
  await joinClaimedGroups(ctx, settings, person, claims);
  return person;
}

/** Adds the person to the Ferry groups named in the groups claim (groups that do not exist are ignored). */
async function joinClaimedGroups(ctx: ServerContext, settings: SsoSettingsRow, person: PrincipalRow, claims: oidc.IDToken): Promise<void> {
  const claimed = settings.groupsClaim ? claims[settings.groupsClaim] : undefined;
  if (!Array.isArray(claimed)) return;
  for (const name of claimed) {
    if (typeof name !== 'string') continue;
    const group = await ctx.store.teams.findGroup(settings.orgId, name);
    if (group && (await ctx.store.teams.addGroupMember(group.id, person.id))) {
      await ctx.audit({
        orgId: settings.orgId,
        actor: `person:${person.name} (sso)`,
        action: 'group.add-member',
        subject: name,
        details: { member: person.name, from: 'groups claim' },
      });
    }
  }
}

/** Redeems the provider's answer; returns the person, or throws why not. */
async function redeem(ctx: ServerContext, login: SsoLoginRow, req: FastifyRequest, query: ParsedQuery<typeof Routes.ssoCallback>): Promise<PrincipalRow> {
  if (query.error)
    throw new FerryError(
      'FERRY_E_SSO_REFUSED',
      `The identity provider answered ${query.error}${query.error_description ? `: ${query.error_description}` : ''}.`,
    );
  const settings = await ctx.store.people.getSso(login.orgId);
  if (!settings) throw new FerryError('FERRY_E_SSO_NOT_CONFIGURED', 'Single sign-on was turned off meanwhile.');
  const config = await providerConfig(ctx, settings);
  let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
  try {
    tokens = await oidc.authorizationCodeGrant(config, new URL(req.url, ctx.publicUrl), {
      pkceCodeVerifier: login.codeVerifier,
      expectedState: query.state,
      expectedNonce: login.nonce,
      idTokenExpected: true,
    });
  } catch (err) {
    throw new FerryError('FERRY_E_SSO_REFUSED', `The identity provider's answer was refused: ${refusal(err)}.`, { cause: err });
  }
  const claims = tokens.claims();
  if (!claims) throw new FerryError('FERRY_E_SSO_REFUSED', 'The identity provider sent no ID token.');
  return personFor(ctx, settings, claims);
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A page that sends the browser on to the CLI's loopback listener. */
function onToCli(port: number, params: Record<string, string>, text: string): { contentType: string; text: string } {
  const url = `http://127.0.0.1:${port}/callback?${new URLSearchParams(params).toString()}`;
  return {
    contentType: 'text/html; charset=utf-8',
    text: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="0;url=${escapeHtml(url)}"><title>Ferry sign-in</title></head>
<body><p>${escapeHtml(text)}</p><p><a href="${escapeHtml(url)}">Back to the Ferry CLI</a></p></body></html>
`,
  };
}

/** A page that sends the browser on within this server (the web UI's tasks or sign-in page). */
function onToUi(path: string, text: string): { contentType: string; text: string } {
  return {
    contentType: 'text/html; charset=utf-8',
    text: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="0;url=${escapeHtml(path)}"><title>Ferry sign-in</title></head>
<body><p>${escapeHtml(text)}</p><p><a href="${escapeHtml(path)}">Continue</a></p></body></html>
`,
  };
}

/** The end of a browser sign-in: the session cookie and on to the tasks page, or back to sign-in with the reason. */
async function browserCallback(
  ctx: ServerContext,
  req: FastifyRequest,
  reply: FastifyReply,
  login: SsoLoginRow,
  query: ParsedQuery<typeof Routes.ssoCallback>,
): Promise<{ contentType: string; text: string }> {
  try {
    const binding = readCookie(req, SSO_BINDING_COOKIE);
    if (!binding || base64urlSha256(binding) !== login.cliChallenge) {
      throw new FerryError('FERRY_E_SSO_STATE', 'This sign-in was started in another browser (or its cookie expired); start again from the sign-in page.');
    }
    const person = await redeem(ctx, login, req, query);
    const org = await ctx.store.teams.getOrg(login.orgId);
    await startBrowserSession(ctx, reply, person, org?.name ?? login.orgId, 'sso');
    return onToUi('/ui/tasks', `Signed in as ${person.name}.`);
  } catch (err) {
    if (!(err instanceof FerryError)) throw err;
    await ctx.audit({
      orgId: login.orgId,
      actor: `sso (sign-in ${login.id})`,
      action: 'user.sso-refused',
      subject: login.id,
      details: { code: err.code, reason: err.message },
    });
    return onToUi(`/ui/sign-in?${new URLSearchParams({ error: err.code, message: err.message }).toString()}`, `Sign-in refused: ${err.message}`);
  }
}

async function callback(
  ctx: ServerContext,
  req: FastifyRequest,
  reply: FastifyReply,
  query: ParsedQuery<typeof Routes.ssoCallback>,
): Promise<{ contentType: string; text: string }> {
  const login = query.state ? await ctx.store.people.takeSsoLogin(hashSecret(query.state), Date.now()) : undefined;
  if (!login)
    throw new FerryError('FERRY_E_SSO_STATE', 'This sign-in is unknown (wrong state), already used or expired; start again with `ferry login --sso ORG`.');
  if (login.loopbackPort === BROWSER_PORT) return browserCallback(ctx, req, reply, login, query);
  try {
    const person = await redeem(ctx, login, req, query);
    const exchange = newSecret('ferry_x');
    await ctx.store.people.completeSsoLogin(login.id, person.id, hashSecret(exchange));
    return onToCli(login.loopbackPort, { code: exchange }, `Signed in as ${person.name}. You can close this window.`);
  } catch (err) {
    if (!(err instanceof FerryError)) throw err;
    await ctx.audit({
      orgId: login.orgId,
      actor: `sso (sign-in ${login.id})`,
      action: 'user.sso-refused',
      subject: login.id,
      details: { code: err.code, reason: err.message },
    });
    return onToCli(login.loopbackPort, { error: err.code, message: err.message }, `Sign-in refused: ${err.message}`);
  }
}

async function exchange(ctx: ServerContext, body: ParsedBody<typeof Routes.ssoExchange>): Promise<ReturnType<typeof signedInView>> {
  const done = await ctx.store.people.takeSsoExchange(hashSecret(body.code), Date.now());
  if (!done || base64urlSha256(body.verifier) !== done.cliChallenge) {
    throw new FerryError(
      'FERRY_E_SSO_STATE',
      'This sign-in code is unknown, already used, expired, or not for this CLI; start again with `ferry login --sso ORG`.',
    );
  }
  const person = (await ctx.store.people.listPeople(done.orgId)).find((p) => p.id === done.principalId);
  const org = await ctx.store.teams.getOrg(done.orgId);
  if (!person || !org) throw new FerryError('FERRY_E_SSO_STATE', 'The person was removed meanwhile.');
  return signedInView(await createSession(ctx, person, org.name, 'sso'));
}

async function deviceStart(ctx: ServerContext, body: ParsedBody<typeof Routes.ssoDeviceStart>): Promise<z.input<typeof SsoDeviceStarted>> {
  const { org, settings } = await orgSso(ctx, body.org);
  const config = await providerConfig(ctx, settings);
  let answer: Awaited<ReturnType<typeof oidc.initiateDeviceAuthorization>>;
  try {
    answer = await oidc.initiateDeviceAuthorization(config, { scope: scopeOf(settings) });
  } catch (err) {
    throw new FerryError('FERRY_E_SSO_PROVIDER', `The identity provider does not offer sign-in with a code here: ${refusal(err)}. Sign in with a browser.`, {
      cause: err,
    });
  }
  const now = Date.now();
  const handle = newSecret('ferry_d');
  const expiresAt = now + answer.expires_in * 1000;
  await ctx.store.people.createSsoDevice({ id: newId('d'), orgId: org.id, deviceCode: answer.device_code, createdAt: now, expiresAt }, hashSecret(handle));
  return {
    handle,
    verificationUri: answer.verification_uri,
    verificationUriComplete: answer.verification_uri_complete ?? null,
    userCode: answer.user_code,
    intervalSeconds: answer.interval ?? 5,
    expiresAt: iso(expiresAt),
  };
}

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

async function devicePoll(ctx: ServerContext, body: ParsedBody<typeof Routes.ssoDevicePoll>): Promise<ReturnType<typeof signedInView>> {
  const row = await ctx.store.people.findSsoDevice(hashSecret(body.handle), Date.now());
  if (!row)
    throw new FerryError('FERRY_E_SSO_STATE', 'This sign-in code is unknown, already used or expired; start again with `ferry login --sso ORG --device`.');
  const settings = await ctx.store.people.getSso(row.orgId);
  if (!settings) throw new FerryError('FERRY_E_SSO_NOT_CONFIGURED', 'Single sign-on was turned off meanwhile.');
  let tokens: Awaited<ReturnType<typeof oidc.genericGrantRequest>>;
  try {
    tokens = await oidc.genericGrantRequest(await providerConfig(ctx, settings), DEVICE_GRANT, { device_code: row.deviceCode });
  } catch (err) {
    const code = (err as { error?: string }).error;
    if (code === 'authorization_pending' || code === 'slow_down') throw new FerryError('FERRY_E_SSO_PENDING');
    await ctx.store.people.useSsoDevice(row.id, Date.now());
    throw new FerryError('FERRY_E_SSO_REFUSED', `The identity provider's answer was refused: ${refusal(err)}.`, { cause: err });
  }
  if (!(await ctx.store.people.useSsoDevice(row.id, Date.now()))) throw new FerryError('FERRY_E_SSO_STATE', 'This sign-in code was already used.');
  const claims = tokens.claims();
  if (!claims) throw new FerryError('FERRY_E_SSO_REFUSED', 'The identity provider sent no ID token.');
  const person = await personFor(ctx, settings, claims);
  const org = await ctx.store.teams.getOrg(row.orgId);
  return signedInView(await createSession(ctx, person, org?.name ?? row.orgId, 'sso'));
}

export function registerSsoRoutes(app: FerryApp, ctx: ServerContext): void {
  const limit = ctx.rateLimits.signIns;

  addRoute(
    app,
    ctx,
    Routes.setSso,
    async ({ caller: user, body }) => {
      await discover(ctx, body); // refuses settings whose provider cannot be read, before storing them
      const row: SsoSettingsRow = { orgId: user.orgId, ...body, groupsClaim: body.groupsClaim ?? null, updatedAt: Date.now() };
      await ctx.store.people.putSso(row);
      await ctx.audit({
        orgId: user.orgId,
        actor: user.actor,
        action: 'org.sso-set',
        subject: body.issuer,
        details: { clientId: body.clientId, domains: body.domains, groupsClaim: row.groupsClaim },
      });
      return { issuer: row.issuer, clientId: row.clientId, domains: row.domains, groupsClaim: row.groupsClaim, updatedAt: iso(row.updatedAt) };
    },
    { role: 'admin', what: 'single sign-on settings' },
  );

  addRoute(
    app,
    ctx,
    Routes.getSso,
    async ({ caller: user }) => {
      const row = await ctx.store.people.getSso(user.orgId);
      if (!row) throw new FerryError('FERRY_E_SSO_NOT_CONFIGURED');
      return { issuer: row.issuer, clientId: row.clientId, domains: row.domains, groupsClaim: row.groupsClaim, updatedAt: iso(row.updatedAt) };
    },
    { role: 'admin' },
  );

  addRoute(
    app,
    ctx,
    Routes.ssoStart,
    async ({ body }) => {
      const { url, expiresAt } = await start(ctx, body);
      return { authorizationUrl: url.href, expiresAt: iso(expiresAt) };
    },
    { what: 'sign-in', limit },
  );

  addRoute(app, ctx, Routes.ssoCallback, ({ req, reply, query }) => callback(ctx, req, reply, query), { limit });
  addRoute(
    app,
    ctx,
    Routes.webSsoStart,
    async ({ req, reply, body }) => {
      checkSameOrigin(req);
      const binding = newSecret('ferry_b');
      const { url, expiresAt } = await start(ctx, { org: body.org, loopbackPort: BROWSER_PORT, cliChallenge: base64urlSha256(binding) });
      setSsoBindingCookie(reply, binding, (expiresAt - Date.now()) / 1000);
      return { authorizationUrl: url.href };
    },
    { what: 'sign-in', limit },
  );
  addRoute(app, ctx, Routes.ssoExchange, ({ body }) => exchange(ctx, body), { what: 'sign-in', limit });
  addRoute(app, ctx, Routes.ssoDeviceStart, ({ body }) => deviceStart(ctx, body), { what: 'sign-in', limit });
  // Not limited per address: the CLI polls every few seconds, and its handle is a 256-bit secret.
  addRoute(app, ctx, Routes.ssoDevicePoll, ({ body }) => devicePoll(ctx, body), { what: 'sign-in' });
}
