/**
 * Who is calling. A user token acts as its principal (a service account now, a person later):
 * with the principal's role in its organization and the grants of the principal's groups. Agent
 * tokens act only as that agent. Tokens are looked up by their SHA-256 hash, never stored in
 * clear. What a caller may do is decided in authz.ts.
 */
import type { FastifyRequest } from 'fastify';
import { FerryError, SESSION_COOKIE, type GrantRole } from '@ferry/protocol';
import { revokedError } from './agent-standing.js';
import { requireRole } from './authz.js';
import { hashSecret } from './ids.js';
import type { TokenWithPrincipal } from './store/teams-types.js';
import type { AgentRow, Role, Store } from './store/types.js';
import { checkCookieRequest, readCookie } from './web/cookies.js';

/** User tokens start with this (agent credentials with `ferry_a_`), so scanners and redaction recognise them. */
export const USER_TOKEN_PREFIX = 'ferry_u';
/** Tokens named `sign-in-link-…` are one-time web sign-in links (web/sign-in-link.ts), refused by the API. */
export const LINK_NAME = 'sign-in-link';

export interface UserPrincipal {
  kind: 'user';
  orgId: string;
  tokenId: string;
  principalId: string;
  principalKind: 'service' | 'person';
  /** The service account's name (a person's e-mail, later). */
  name: string;
  role: Role;
  instanceAdmin: boolean;
  /** Who did it and with which token, as audit entries and tasks record it. */
  actor: string;
  /** The role each target is granted to the principal through its groups (admins need none: empty). */
  grants: ReadonlyMap<string, GrantRole>;
}

/** A token's last use is written at most this often (one write a minute, not one per request). */
const LAST_USE_RESOLUTION_MS = 60_000;

export function bearer(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/** The audit trail's name for a principal acting through a token: `service:ci-bot (token k_…)`. */
function actorName(found: TokenWithPrincipal): string {
  return `${found.principal.kind}:${found.principal.name} (token ${found.token.id})`;
}

/** The live token in the request, or the 401 that says what is wrong with it. */
async function findLiveToken(store: Store, token: string | undefined, now: number): Promise<TokenWithPrincipal> {
  if (!token || !token.startsWith(`${USER_TOKEN_PREFIX}_`)) throw new FerryError('FERRY_E_UNAUTHENTICATED');
  const found = await store.teams.findToken(hashSecret(token));
  if (!found) throw new FerryError('FERRY_E_UNAUTHENTICATED');
  const { token: row } = found;
  // A sign-in link's token only opens a browser session (web/sign-in-link.ts), never the API.
  if (row.name.startsWith(`${LINK_NAME}-`)) throw new FerryError('FERRY_E_UNAUTHENTICATED');
  if (row.revokedAt !== null) throw new FerryError('FERRY_E_TOKEN_REVOKED', `Token ${row.name} (${row.id}) was revoked; ask an admin for a new one.`);
  if (row.expiresAt !== null && row.expiresAt <= now) {
    throw new FerryError(
      'FERRY_E_TOKEN_EXPIRED',
      `Token ${row.name} (${row.id}) expired at ${new Date(row.expiresAt).toISOString()}; ask an admin for a new one.`,
    );
  }
  return found;
}

/**
 * The caller's token: the bearer token (CLI, scripts), else the browser's session cookie, whose
 * writes must carry the CSRF token and come from this origin (web/cookies.ts). Agent routes
 * read only the bearer token (requireAgent), so a cookie never authenticates an agent.
 */
function userToken(req: FastifyRequest): string | undefined {
  const token = bearer(req);
  if (token) return token;
  const session = readCookie(req, SESSION_COOKIE);
  if (session) checkCookieRequest(req, session);
  return session;
}

export async function requireUser(store: Store, req: FastifyRequest, minRole: Role = 'viewer'): Promise<UserPrincipal> {
  const now = Date.now();
  const found = await findLiveToken(store, userToken(req), now);
  const { token, principal } = found;
  if (token.lastUsedAt === null || now - token.lastUsedAt >= LAST_USE_RESOLUTION_MS) await store.teams.touchToken(token.id, now);
  const grants = principal.role === 'admin' ? new Map<string, GrantRole>() : await store.teams.grantsOf(principal.id);
  const user: UserPrincipal = {
    kind: 'user',
    orgId: principal.orgId,
    tokenId: token.id,
    principalId: principal.id,
    principalKind: principal.kind,
    name: principal.name,
    role: principal.role,
    instanceAdmin: principal.instanceAdmin,
    actor: actorName(found),
    grants,
  };
  requireRole(user, minRole);
  return user;
}

export async function requireAgent(store: Store, req: FastifyRequest): Promise<AgentRow> {
  const token = bearer(req);
  if (!token || !token.startsWith('ferry_a_')) throw new FerryError('FERRY_E_UNAUTHENTICATED', 'Missing or invalid agent credential.');
  const agent = await store.findAgentByToken(hashSecret(token));
  if (!agent) throw new FerryError('FERRY_E_UNAUTHENTICATED', 'Missing or invalid agent credential.');
  if (agent.revokedAt !== null) throw await revokedError(store, agent);
  return agent;
}
