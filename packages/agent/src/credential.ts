/**
 * The agent's own credential, stored in its data folder (mode 0600) after it registers with
 * a join token, so a restart needs no new token. Every call to the server goes through the
 * one typed client (@ferry/client), pinned to the CA the join token named.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname, platform, arch } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { Routes, type FerryClient } from '@ferry/client';
import { createNodeClient, fetchPinnedCa } from '@ferry/client/node';
import { FERRY_VERSION, decodeJoinToken, joinTokenUrls } from '@ferry/protocol';

const StoredCredential = z.object({
  serverUrl: z.string(),
  caPem: z.string(),
  agentId: z.string(),
  token: z.string(),
  name: z.string(),
  /** SHA-256 of the join token this credential came from: the same token given again is not a new one. */
  joinTokenSha256: z.string().optional(),
});
export type StoredCredential = z.infer<typeof StoredCredential>;

export class CredentialError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CredentialError';
  }
}

/** A client that trusts only the server's pinned CA; with a token once the agent is registered. */
export function agentClient(server: { serverUrl: string; caPem: string; token?: string }): FerryClient {
  return createNodeClient({ serverUrl: server.serverUrl, caPem: server.caPem, token: server.token, userAgent: `ferry-agent/${FERRY_VERSION}` });
}

function credentialFile(dataDir: string): string {
  return join(dataDir, 'agent.json');
}

export function loadCredential(dataDir: string): StoredCredential | undefined {
  const file = credentialFile(dataDir);
  if (!existsSync(file)) return undefined;
  const parsed = StoredCredential.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new CredentialError(`${file} is damaged; remove it and register again with a new join token.`);
  return parsed.data;
}

function saveCredential(dataDir: string, cred: StoredCredential): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = credentialFile(dataDir);
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(cred, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

export function joinTokenDigest(joinToken: string): string {
  return createHash('sha256').update(joinToken.trim()).digest('hex');
}

/** The host name and a short random suffix, so agents started alike on one host (or image) differ. */
function defaultAgentName(): string {
  return `${hostname()}-${randomBytes(2).toString('hex')}`;
}

/** `server`: URL(s) to register with and keep, over the join token's (`--server`). */
export async function registerAgent(
  dataDir: string,
  joinToken: string,
  name: string | undefined,
  concurrency: number,
  server?: string,
): Promise<StoredCredential> {
  const payload = decodeJoinToken(joinToken);
  if (!payload) throw new CredentialError('The join token is malformed. Copy the whole token printed by `ferry agent token create`.');
  // Several servers (replicas) are kept as one comma-separated list: the client fails over between them.
  const serverUrl = server ?? joinTokenUrls(payload).join(',');
  const caPem = await fetchPinnedCa(serverUrl, payload.fp);
  const client = agentClient({ serverUrl, caPem });
  const agentName = name ?? defaultAgentName();
  try {
    const res = await client.call(Routes.registerAgent, {
      body: { joinSecret: payload.secret, name: agentName, hostname: hostname(), version: FERRY_VERSION, platform: `${platform()}-${arch()}`, concurrency },
    });
    const cred: StoredCredential = {
      serverUrl,
      caPem,
      agentId: res.agentId,
      token: res.token,
      name: agentName,
      joinTokenSha256: joinTokenDigest(joinToken),
    };
    saveCredential(dataDir, cred);
    return cred;
  } finally {
    await client.close();
  }
}
