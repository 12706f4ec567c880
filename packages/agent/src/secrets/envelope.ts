/**
 * Opening secret envelopes (format: @ferry/protocol secrets.ts) with Node's built-in crypto,
 * and making the per-target key pairs they are sealed for: RSA-OAEP-SHA256 wraps a fresh
 * AES-256-GCM key per value; the associated data binds organization, target, name and key id.
 * Sealing is the clients' job: @ferry/client's `sealSecret` (WebCrypto) is the one sealing
 * implementation, and test/envelope.client.test.ts checks that what it seals opens here.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { ENVELOPE_ALG, keyWrapAad, secretAad, type KeyWrapBinding, type SealedSecret, type SecretBinding } from '@ferry/protocol';

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

/** Opens an envelope with `aad`; throws when the key or the associated data is not the one it was sealed with. */
function openEnvelope(privateKey: KeyObject | string, aad: Uint8Array, sealed: SealedSecret): Buffer {
  const dataKey = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(sealed.ek, 'base64'));
  try {
    // A fixed tag length: without it Node accepts a tag cut down to 4 bytes, which is far easier to forge.
    const decipher = createDecipheriv('aes-256-gcm', dataKey, Buffer.from(sealed.iv, 'base64'), { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.ct, 'base64')), decipher.final()]);
  } finally {
    dataKey.fill(0);
  }
}

/** Opens an envelope; throws SecretOpenError when it was sealed for another target, name or key. */
export function openSecret(privateKey: KeyObject | string, binding: SecretBinding, sealed: SealedSecret): Buffer {
  if (sealed.kid !== binding.kid) throw new SecretOpenError(`sealed with key ${sealed.kid}, not this target's key ${binding.kid}`);
  try {
    return openEnvelope(privateKey, secretAad(binding), sealed);
  } catch (err) {
    throw new SecretOpenError("it does not open with this target's key for this name: it was sealed for another target or name, or altered", { cause: err });
  }
}

/**
 * Wraps a target's private key for another agent (format: @ferry/protocol secrets.ts, "Handing a
 * target's key to another agent"): the PKCS#8 DER, sealed like a secret value to the recipient's
 * identity key, bound to organization, target, key id and recipient.
 */
export function wrapTargetKey(recipientIdentityPem: string, binding: KeyWrapBinding, targetKey: KeyObject): SealedSecret {
  const recipient = createPublicKey(recipientIdentityPem);
  const der = targetKey.export({ type: 'pkcs8', format: 'der' });
  const dataKey = randomBytes(32);
  const iv = randomBytes(12);
  try {
    const cipher = createCipheriv('aes-256-gcm', dataKey, iv, { authTagLength: GCM_TAG_BYTES });
    cipher.setAAD(keyWrapAad(binding));
    const ct = Buffer.concat([cipher.update(der), cipher.final()]);
    const ek = publicEncrypt({ key: recipient, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, dataKey);
    return {
      v: 1,
      alg: ENVELOPE_ALG,
      kid: sealingKeyIdOf(recipient),
      ek: ek.toString('base64'),
      iv: iv.toString('base64'),
      ct: ct.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
    };
  } finally {
    dataKey.fill(0);
    der.fill(0);
  }
}

/**
 * Unwraps a target key wrapped for this agent and checks it is the key `binding.keyId` names
 * (the public half's id), so a copy of another key is refused. Throws SecretOpenError.
 */
export function unwrapTargetKey(identity: KeyObject, binding: KeyWrapBinding, wrapped: SealedSecret): KeyObject {
  const identityKid = sealingKeyIdOf(createPublicKey(identity));
  if (wrapped.kid !== identityKid) throw new SecretOpenError(`wrapped for identity key ${wrapped.kid}, not this agent's ${identityKid}`);
  let der: Buffer;
  try {
    der = openEnvelope(identity, keyWrapAad(binding), wrapped);
  } catch (err) {
    throw new SecretOpenError("the wrapped key does not open with this agent's identity key for this target, key and agent", { cause: err });
  }
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  der.fill(0);
  const kid = sealingKeyIdOf(createPublicKey(key));
  if (kid !== binding.keyId) throw new SecretOpenError(`the unwrapped key is ${kid}, not the target's key ${binding.keyId}`);
  return key;
}
