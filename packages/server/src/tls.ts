/**
 * Transport security material. On first start the server makes a private CA and a server
 * certificate signed by it, in its data folder; later starts reuse them. An operator may
 * provide their own (`tlsCert`/`tlsKey`, with `tlsCa` for the chain clients should pin).
 * Clients pin the CA by its SHA-256 fingerprint, which join tokens and `ferry login` carry.
 */
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';

export interface TlsMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
  caFingerprint: string;
}

function rsaKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function serialNumber(): string {
  // Positive 16-byte serial: clear the top bit.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

function yearsFromNow(years: number): Date {
  const d = new Date();
  d.setFullYear(d.getFullYear() + years);
  return d;
}

function makeCa(): { certPem: string; keyPem: string } {
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = yearsFromNow(10);
  const subject = [
    { name: 'commonName', value: `Ferry private CA (${hostname()})` },
    { name: 'organizationName', value: 'Ferry' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

function makeServerCert(ca: { certPem: string; keyPem: string }, names: readonly string[]): { certPem: string; keyPem: string } {
  const keys = rsaKeyPair();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = yearsFromNow(2);
  cert.setSubject([{ name: 'commonName', value: names[0] ?? 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

function caFingerprint(caPem: string): string {
  return new X509Certificate(caPem).fingerprint256;
}

function certCoversNames(certPem: string, names: readonly string[]): boolean {
  const cert = new X509Certificate(certPem);
  if (new Date(cert.validTo).getTime() < Date.now() + 7 * 24 * 3600 * 1000) return false;
  const san = cert.subjectAltName ?? '';
  return names.every((n) => san.includes(isIP(n) ? `IP Address:${n}` : `DNS:${n}`));
}

/** Names the generated server certificate covers: loopback, this host, and any extras. */
export function defaultCertNames(listenHost: string, extra: readonly string[]): string[] {
  const names = new Set(['localhost', '127.0.0.1', '::1', hostname(), ...extra]);
  if (listenHost && listenHost !== '0.0.0.0' && listenHost !== '::') names.add(listenHost);
  return [...names];
}

/**
 * Loads or creates the CA and server certificate in `dataDir`. The server certificate is
 * re-issued (by the same CA, so pins stay valid) when it lacks a needed name or nears expiry.
 */
export function ensureTlsMaterial(dataDir: string, names: readonly string[]): TlsMaterial {
  const caCertFile = join(dataDir, 'ca.pem');
  const caKeyFile = join(dataDir, 'ca-key.pem');
  const certFile = join(dataDir, 'server-cert.pem');
  const keyFile = join(dataDir, 'server-key.pem');
  if (!existsSync(caCertFile) || !existsSync(caKeyFile)) {
    const ca = makeCa();
    writeFileSync(caKeyFile, ca.keyPem, { mode: 0o600 });
    writeFileSync(caCertFile, ca.certPem, { mode: 0o644 });
  }
  const ca = { certPem: readFileSync(caCertFile, 'utf8'), keyPem: readFileSync(caKeyFile, 'utf8') };
  if (!existsSync(certFile) || !existsSync(keyFile) || !certCoversNames(readFileSync(certFile, 'utf8'), names)) {
    const server = makeServerCert(ca, names);
    writeFileSync(keyFile, server.keyPem, { mode: 0o600 });
    writeFileSync(certFile, server.certPem, { mode: 0o644 });
  }
  return {
    caPem: ca.certPem,
    certPem: readFileSync(certFile, 'utf8'),
    keyPem: readFileSync(keyFile, 'utf8'),
    caFingerprint: caFingerprint(ca.certPem),
  };
}

/** Operator-provided certificate, key and CA. */
export function loadProvidedTls(certFile: string, keyFile: string, caFile: string): TlsMaterial {
  const caPem = readFileSync(caFile, 'utf8');
  return { caPem, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), caFingerprint: caFingerprint(caPem) };
}
