/**
 * Trust on first use, done right: the join token (or `ferry login`) carries the SHA-256
 * fingerprint of the server's CA. We fetch the CA certificate once over an unverified
 * connection and accept it only if its fingerprint matches; from then on every connection
 * verifies the server against that CA, hostname included.
 */
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { ClientErrorCodes, Routes, normalizeFingerprint } from '@ferry/protocol';
import { ApiError, clientError, serverUrls } from '../index.js';

const MAX_CA_BYTES = 64 * 1024;

export function fingerprintOf(caPem: string): string {
  return new X509Certificate(caPem).fingerprint256;
}

function fetchUnverified(url: URL): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = request(url, { method: 'GET', rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_CA_BYTES) req.destroy(new Error('CA certificate response too large'));
        else chunks.push(c);
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`GET ${url.href} answered ${res.statusCode}`)),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * The CA of the server(s) at `serverUrl` (one URL, or several comma-separated: replicas of one
 * installation share their CA), checked against `fingerprint`. Servers that cannot be reached
 * are skipped; one whose CA does not match is never.
 */
export async function fetchPinnedCa(serverUrl: string, fingerprint: string): Promise<string> {
  const urls = serverUrls(serverUrl);
  for (const [i, url] of urls.entries()) {
    try {
      return await fetchPinnedCaFrom(url, fingerprint);
    } catch (err) {
      if (i + 1 >= urls.length || !(err instanceof ApiError) || err.code !== 'FERRY_E_NETWORK') throw err;
    }
  }
  throw clientError('FERRY_E_BAD_SERVER_URL', 'No server URL given.');
}

async function fetchPinnedCaFrom(serverUrl: string, fingerprint: string): Promise<string> {
  const want = normalizeFingerprint(fingerprint);
  if (!want) throw clientError('FERRY_E_BAD_FINGERPRINT', `"${fingerprint}" is not a SHA-256 fingerprint (64 hex digits, colons optional).`);
  const pem = await fetchUnverified(new URL(Routes.caCertificate.path, serverUrl)).catch((err: unknown) => {
    throw clientError('FERRY_E_NETWORK', `Cannot reach ${serverUrl}: ${err instanceof Error ? err.message : String(err)}`, err);
  });
  let got: string;
  try {
    got = fingerprintOf(pem);
  } catch (err) {
    throw clientError('FERRY_E_UNEXPECTED_RESPONSE', `${serverUrl} did not send a CA certificate.`, err);
  }
  if (got !== want) {
    throw clientError(
      'FERRY_E_CA_MISMATCH',
      `${ClientErrorCodes.FERRY_E_CA_MISMATCH} The server's CA fingerprint is ${got}, not the expected ${want}. Refusing to connect: check the URL, or someone may be intercepting the connection.`,
    );
  }
  return pem;
}
