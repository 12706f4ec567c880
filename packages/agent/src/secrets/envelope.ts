/**
 * Opening secret envelopes (format: @ferry/protocol secrets.ts) with Node's built-in crypto,
 * and making the per-target key pairs they are sealed for: RSA-OAEP-SHA256 wraps a fresh
 * AES-256-GCM key per value; the associated data binds organization, target, name and key id.
 * Sealing is the clients' job: @ferry/client's `sealSecret` (WebCrypto) is the one sealing
 * implementation, and test/envelope.client.test.ts checks that what it seals opens here.
 */
import { constants, createDecipheriv, createHash, createPublicKey, generateKeyPair, privateDecrypt, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { secretAad, type SealedSecret, type SecretBinding } from '@ferry/protocol';

const SEALING_KEY_BITS = 3072;
const GCM_TAG_BYTES = 16;

export function sealingKeyIdOf(publicKey: string | KeyObject): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 32);
}

export async function generateSealingKeyPair(): Promise<{ publicKeyPem: string; privateKeyPem: string; kid: string }> {
  const { publicKey, privateKey } = await promisify(generateKeyPair)('rsa', {
    modulusLength: SEALING_KEY_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey, kid: sealingKeyIdOf(publicKey) };
}

export class SecretOpenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SecretOpenError';
  }
}

/** Opens an envelope; throws SecretOpenError when it was sealed for another target, name or key. */
export function openSecret(privateKey: KeyObject | string, binding: SecretBinding, sealed: SealedSecret): Buffer {
  if (sealed.kid !== binding.kid) throw new SecretOpenError(`sealed with key ${sealed.kid}, not this target's key ${binding.kid}`);
  try {
    const dataKey = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(sealed.ek, 'base64'));
    // A fixed tag length: without it Node accepts a tag cut down to 4 bytes, which is far easier to forge.
    const decipher = createDecipheriv('aes-256-gcm', dataKey, Buffer.from(sealed.iv, 'base64'), { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(secretAad(binding));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    const plain = Buffer.concat([decipher.update(Buffer.from(sealed.ct, 'base64')), decipher.final()]);
    dataKey.fill(0);
    return plain;
  } catch (err) {
    throw new SecretOpenError("it does not open with this target's key for this name: it was sealed for another target or name, or altered", { cause: err });
  }
}
