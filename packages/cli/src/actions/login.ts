import { Routes, normalizeFingerprint } from '@ferry/protocol';
import { serverUrls } from '@ferry/client';
import { createNodeClient, fetchPinnedCa, fingerprintOf } from '@ferry/client/node';
import { UsageError } from '../errors.js';
import { readUserFile } from '../files.js';
import { promptHidden, readStdinText } from '../prompt.js';
import { saveSettings } from '../settings.js';

export interface TrustOptions {
  caFingerprint?: string;
  caFile?: string;
}

interface LoginOptions extends TrustOptions {
  server: string;
  token?: string;
  email?: string;
  org?: string;
  sso?: string;
  browser?: boolean;
  device?: boolean;
}

/**
 * The server's origin; for several servers of one installation (`--server URL,URL`), each
 * one's, comma-separated: commands go to one and fail over to the next.
 */
export function serverOrigin(text: string, flag = '--server'): string {
  const urls = serverUrls(text);
  if (urls.length === 0) throw new UsageError(`${flag} needs a URL; use e.g. https://127.0.0.1:8443`);
  return urls.map((u) => oneOrigin(u, flag)).join(',');
}

function oneOrigin(text: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${flag} ${text} is not a URL; use e.g. https://127.0.0.1:8443`);
  }
  if (url.protocol !== 'https:') throw new UsageError('Ferry speaks HTTPS only: use an https:// URL.');
  return url.origin;
}

function caFromFile(file: string, fingerprint: string | undefined): string {
  const caPem = readUserFile('--ca-file', file);
  let fp: string;
  try {
    fp = fingerprintOf(caPem);
  } catch {
    throw new UsageError(`--ca-file ${file} is not a PEM certificate; give the server's ca.pem (in its data folder).`);
  }
  if (fingerprint && normalizeFingerprint(fingerprint) !== fp) throw new UsageError(`${file} has fingerprint ${fp}, not ${fingerprint}.`);
  return caPem;
}

/** The server's CA, verified against the fingerprint or read from the file the user gave. */
export async function trustedCa(origin: string, opts: TrustOptions): Promise<string> {
  if (!opts.caFingerprint && !opts.caFile)
    throw new UsageError('Give --ca-fingerprint (printed by `ferry server`) or --ca-file so the CLI can verify the server.');
  return opts.caFile ? caFromFile(opts.caFile, opts.caFingerprint) : await fetchPinnedCa(origin, opts.caFingerprint ?? '');
}

/** Proves the token works, then saves server, token and CA for later commands. */
export async function saveLogin(origin: string, caPem: string, token: string): Promise<string> {
  const client = createNodeClient({ serverUrl: origin, caPem, token, userAgent: 'ferry-cli' });
  try {
    await client.call(Routes.listTargets);
  } finally {
    await client.close();
  }
  return saveSettings({ server: origin, token, caFingerprint: fingerprintOf(caPem), caPem });
}

/** Signs in with e-mail and password; answers the personal token (a 30-day session). */
export async function signIn(
  origin: string,
  caPem: string,
  body: { email: string; password: string; org?: string },
): Promise<{ token: string; org: string; role: string; expiresAt: string }> {
  const client = createNodeClient({ serverUrl: origin, caPem, userAgent: 'ferry-cli' });
  try {
    return await client.call(Routes.signIn, { body });
  } finally {
    await client.close();
  }
}

/**
 * The token to store: `--token -` or a pipe reads it from stdin, otherwise FERRY_TOKEN, so it
 * need never be on a command line (where `ps` and the shell history would show it).
 */
async function tokenFromInput(flag: string | undefined): Promise<string> {
  if (flag !== undefined && flag !== '-') return flag;
  if (flag === '-' || (!process.env.FERRY_TOKEN && !process.stdin.isTTY)) {
    const token = (await readStdinText()).trim();
    if (!token) throw new UsageError('No token on stdin.');
    return token;
  }
  if (process.env.FERRY_TOKEN) return process.env.FERRY_TOKEN;
  throw new UsageError('Give --email EMAIL to sign in with a password, or a token: --token -, piped on stdin, or in FERRY_TOKEN.');
}

export async function login(opts: LoginOptions): Promise<void> {
  if (opts.sso !== undefined) {
    if (opts.email !== undefined || opts.token !== undefined) throw new UsageError('Give one of --sso, --email or --token.');
    const { loginSso } = await import('./sso.js');
    return loginSso({ ...opts, sso: opts.sso });
  }
  const origin = serverOrigin(opts.server);
  if (opts.email !== undefined && opts.token !== undefined) throw new UsageError('Give either --email (sign in with a password) or --token, not both.');
  const token = opts.email === undefined ? await tokenFromInput(opts.token) : undefined;
  const caPem = await trustedCa(origin, opts);
  let signedIn = '';
  let saved: string;
  if (token !== undefined) {
    saved = await saveLogin(origin, caPem, token);
  } else {
    const email = opts.email ?? '';
    const password = process.stdin.isTTY ? await promptHidden(`Password for ${email}:`) : await readStdinText();
    const s = await signIn(origin, caPem, { email, password, ...(opts.org !== undefined ? { org: opts.org } : {}) });
    saved = await saveLogin(origin, caPem, s.token);
    signedIn = ` as ${email} (${s.role} of ${s.org}; the session lasts until ${s.expiresAt})`;
  }
  process.stdout.write(`Logged in to ${origin}${signedIn}. Settings saved in ${saved}.\n`);
}
