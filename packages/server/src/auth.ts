/**
 * Who is calling. User tokens act with their role inside their organization; agent tokens
 * act only as that agent. Tokens are looked up by their SHA-256 hash, never stored in clear.
 */
import type { FastifyRequest } from 'fastify';
import { FerryError } from '@ferry/protocol';
import { revokedError } from './agent-standing.js';
import { hashSecret } from './ids.js';
import type { AgentRow, ApiTokenRow, Store } from './store/types.js';

export interface UserPrincipal {
  kind: 'user';
  orgId: string;
  tokenId: string;
  role: ApiTokenRow['role'];
  actor: string;
}

function bearer(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

export async function requireUser(store: Store, req: FastifyRequest, minRole: ApiTokenRow['role'] = 'viewer'): Promise<UserPrincipal> {
  const token = bearer(req);
  if (!token || !token.startsWith('ferry_u_')) throw new FerryError('FERRY_E_UNAUTHENTICATED');
  const row = await store.findApiToken(hashSecret(token));
  if (!row) throw new FerryError('FERRY_E_UNAUTHENTICATED');
  const rank = { viewer: 0, operator: 1, admin: 2 } as const;
  if (rank[row.role] < rank[minRole]) throw new FerryError('FERRY_E_FORBIDDEN', `This needs the ${minRole} role; your token has ${row.role}.`);
  return { kind: 'user', orgId: row.orgId, tokenId: row.id, role: row.role, actor: `token:${row.name}` };
}

export async function requireAgent(store: Store, req: FastifyRequest): Promise<AgentRow> {
  const token = bearer(req);
  if (!token || !token.startsWith('ferry_a_')) throw new FerryError('FERRY_E_UNAUTHENTICATED', 'Missing or invalid agent credential.');
  const agent = await store.findAgentByToken(hashSecret(token));
  if (!agent) throw new FerryError('FERRY_E_UNAUTHENTICATED', 'Missing or invalid agent credential.');
  if (agent.revokedAt !== null) throw await revokedError(store, agent);
  return agent;
}
