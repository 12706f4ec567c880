/**
 * Sealing secret values with WebCrypto (Node 20 and browsers alike), in the envelope format of
 * `@ferry/protocol` secrets.ts: RSA-OAEP-SHA256 (the target's 3072-bit public key) wraps a
 * fresh AES-256-GCM key per value; the associated data binds organization, target, name and
 * key id. The agent opens these (packages/agent/src/secrets/envelope.ts).
 */
import { ENVELOPE_ALG, base64Decode, base64Encode, hexEncode, secretAad, utf8Encode, type SealedSecret, type SecretBinding } from '@ferry/protocol';

const GCM_TAG_BYTES = 16;

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error('WebCrypto is not available here (a browser needs a secure context: HTTPS).');
  return s;
}

/** The DER bytes of a PEM `PUBLIC KEY` (SPKI). */
function spkiFromPem(pem: string): Uint8Array<ArrayBuffer> {
  const m = /-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----/.exec(pem);
  if (!m?.[1]) throw new Error('not a PEM public key (-----BEGIN PUBLIC KEY-----)');
  return base64Decode(m[1].replace(/\s+/g, ''));
}

/** Key id: the first 16 bytes (hex) of SHA-256 over the public key's SPKI DER. */
export async function sealingKeyId(publicKeyPem: string): Promise<string> {
  const digest = new Uint8Array(await subtle().digest('SHA-256', spkiFromPem(publicKeyPem)));
  return hexEncode(digest.subarray(0, 16));
}

/** Seals `plaintext` (bytes, or a string as UTF-8) for one secret of one target. */
export async function sealSecret(publicKeyPem: string, binding: Omit<SecretBinding, 'kid'>, plaintext: Uint8Array | string): Promise<SealedSecret> {
  const s = subtle();
  const kid = await sealingKeyId(publicKeyPem);
  const rsa = await s.importKey('spki', spkiFromPem(publicKeyPem), { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['encrypt']);
  const dataKey = crypto.getRandomValues(new Uint8Array(32));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const aes = await s.importKey('raw', dataKey, { name: 'AES-GCM' }, false, ['encrypt']);
  // A private copy: WebCrypto wants an ArrayBuffer-backed view, and the copy is wiped after.
  const data = typeof plaintext === 'string' ? utf8Encode(plaintext) : new Uint8Array(plaintext);
  const sealed = new Uint8Array(await s.encrypt({ name: 'AES-GCM', iv, additionalData: secretAad({ ...binding, kid }), tagLength: 128 }, aes, data));
  const ek = new Uint8Array(await s.encrypt({ name: 'RSA-OAEP' }, rsa, dataKey));
  dataKey.fill(0);
  data.fill(0);
  const ct = sealed.subarray(0, sealed.length - GCM_TAG_BYTES);
  const tag = sealed.subarray(sealed.length - GCM_TAG_BYTES);
  return { v: 1, alg: ENVELOPE_ALG, kid, ek: base64Encode(ek), iv: base64Encode(iv), ct: base64Encode(ct), tag: base64Encode(tag) };
}
