/**
 * The CLI's settings: which server, which token, which CA to trust. Written by `ferry login`
 * (0600) to $FERRY_CONFIG or <config dir>/ferry/config.json; FERRY_SERVER, FERRY_TOKEN and
 * FERRY_CA_FINGERPRINT override what the file says.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { normalizeFingerprint } from '@ferry/protocol';
import { serverUrls, type FerryClient } from '@ferry/client';
import { createNodeClient, fetchPinnedCa, fingerprintOf } from '@ferry/client/node';
import { UsageError } from './errors.js';

const CliSettings = z
  .object({
    /** One server URL, or several (replicas) comma-separated. */
    server: z.string().refine((text) => serverUrls(text).length > 0 && serverUrls(text).every((u) => URL.canParse(u)), 'not a server URL (or list of them)'),
    token: z.string(),
    caFingerprint: z.string(),
    caPem: z.string(),
  })
  .strict();
export type CliSettings = z.infer<typeof CliSettings>;

function settingsFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FERRY_CONFIG) return env.FERRY_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'ferry', 'config.json');
}

export function saveSettings(settings: CliSettings, env: NodeJS.ProcessEnv = process.env): string {
  const file = settingsFile(env);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, JSON.stringify(settings, null, 2) + '\n', { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return file;
}

function readSettingsFile(file: string): Partial<CliSettings> {
  if (!existsSync(file)) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    json = undefined;
  }
  const parsed = CliSettings.partial().safeParse(json);
  if (!parsed.success) throw new UsageError(`${file} is not a valid Ferry config file; run \`ferry login\` again.`);
  return parsed.data;
}

/** An API client from settings + environment, verifying the server against the pinned CA. */
export async function connect(env: NodeJS.ProcessEnv = process.env): Promise<FerryClient> {
  const file = settingsFile(env);
  const stored = readSettingsFile(file);
  const server = env.FERRY_SERVER || stored.server;
  const token = env.FERRY_TOKEN || stored.token;
  const wantFp = env.FERRY_CA_FINGERPRINT ? normalizeFingerprint(env.FERRY_CA_FINGERPRINT) : stored.caFingerprint;
  if (!server || !token)
    throw new UsageError('Not logged in. Run `ferry login --server URL --token TOKEN --ca-fingerprint SHA256` first (or set FERRY_SERVER and FERRY_TOKEN).');
  if (!wantFp) throw new UsageError('No CA fingerprint to trust: pass it to `ferry login` or set FERRY_CA_FINGERPRINT.');
  let caPem = stored.caPem;
  if (!caPem || stored.server !== server || fingerprintOf(caPem) !== wantFp) caPem = await fetchPinnedCa(server, wantFp);
  return createNodeClient({ serverUrl: server, caPem, token, userAgent: 'ferry-cli' });
}
