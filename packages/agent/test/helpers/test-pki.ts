/**
 * A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command line
 * in a temporary folder (removed afterwards): what `ferry server` makes on first start, so an
 * agent under test pins a CA exactly as it does in production.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface TestPki {
  caPem: string;
  /** The CA's SHA-256 fingerprint, as a join token carries it. */
  caFingerprint: string;
  certPem: string;
  keyPem: string;
}

const run = promisify(execFile);
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const SERVER_EXTENSIONS = [
  'subjectAltName=IP:127.0.0.1',
  'basicConstraints=CA:FALSE',
  'keyUsage=critical,digitalSignature',
  'extendedKeyUsage=serverAuth',
].join('\n');

export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-test-pki-'));
  const openssl = (args: string[]) => run('openssl', args, { cwd: dir });
  try {
    await openssl([
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=Ferry test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await openssl(['req', ...EC_KEY, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
    await writeFile(join(dir, 'server.ext'), `${SERVER_EXTENSIONS}\n`);
    await openssl([
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.pem',
      '-days',
      '2',
      '-extfile',
      'server.ext',
    ]);
    const [caPem, certPem, keyPem] = await Promise.all(['ca.pem', 'server.pem', 'server.key'].map((f) => readFile(join(dir, f), 'utf8')));
    if (caPem === undefined || certPem === undefined || keyPem === undefined) throw new Error('openssl made no certificates');
    return { caPem, certPem, keyPem, caFingerprint: new X509Certificate(caPem).fingerprint256 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
