import { Routes, normalizeFingerprint } from '@ferry/protocol';
import { createNodeClient, fetchPinnedCa, fingerprintOf } from '@ferry/client/node';
import { UsageError } from '../errors.js';
import { readUserFile } from '../files.js';
import { saveSettings } from '../settings.js';

interface LoginOptions {
  server: string;
  token: string;
  caFingerprint?: string;
  caFile?: string;
}

function serverOrigin(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--server ${text} is not a URL; use e.g. https://127.0.0.1:8443`);
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

export async function login(opts: LoginOptions): Promise<void> {
  const origin = serverOrigin(opts.server);
  if (!opts.caFingerprint && !opts.caFile)
    throw new UsageError('Give --ca-fingerprint (printed by `ferry server`) or --ca-file so the CLI can verify the server.');
  const caPem = opts.caFile ? caFromFile(opts.caFile, opts.caFingerprint) : await fetchPinnedCa(origin, opts.caFingerprint ?? '');
  const client = createNodeClient({ serverUrl: origin, caPem, token: opts.token, userAgent: 'ferry-cli' });
  try {
    await client.call(Routes.listTargets); // proves the token works before it is saved
  } finally {
    await client.close();
  }
  const file = saveSettings({ server: origin, token: opts.token, caFingerprint: fingerprintOf(caPem), caPem });
  process.stdout.write(`Logged in to ${origin}. Settings saved in ${file}.\n`);
}
