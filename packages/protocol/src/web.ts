/**
 * The browser's session: a cookie the page's script cannot read (HttpOnly), and a CSRF token it
 * sends back in a header on every state-changing request. Bearer-token clients (the CLI,
 * agents) send neither and are unaffected.
 */
import { z } from 'zod';
import { Role } from './teams.js';

/** `__Host-`: the browser accepts it only Secure, from this origin, with Path=/ and no Domain. */
export const SESSION_COOKIE = '__Host-ferry_session';
/** Binds an SSO sign-in to the browser that started it (Lax: it must survive the provider's redirect back). */
export const SSO_BINDING_COOKIE = '__Host-ferry_sso';
/** The header that carries the session's CSRF token on cookie-authenticated writes. */
export const CSRF_HEADER = 'x-ferry-csrf';

/** Who is signed in, and the CSRF token the page sends back on writes. */
export const WebSession = z.object({
  email: z.string(),
  org: z.string(),
  role: Role,
  csrfToken: z.string(),
  expiresAt: z.string(),
});
export type WebSession = z.infer<typeof WebSession>;

/** A one-time sign-in link's secret (what follows `#link=` in the link `ferry server` prints). */
export const WebLinkSignInRequest = z.object({ link: z.string().min(1).max(200) }).strict();

export const WebSsoStartRequest = z.object({ org: z.string().min(1).max(63) }).strict();
export const WebSsoStarted = z.object({ authorizationUrl: z.string() });
