import { createHash, createPublicKey } from 'node:crypto';
import { FerryError } from '@ferry/protocol';

/**
 * Checks an agent's published sealing key (RSA, at least 3072 bits) and returns its key id:
 * the first 16 bytes of SHA-256 over the SPKI DER, as the envelope format defines.
 */
export function sealingKeyId(publicKeyPem: string): string {
  let key;
  try {
    key = createPublicKey(publicKeyPem);
  } catch (err) {
    throw new FerryError('FERRY_E_BAD_REQUEST', 'The published key is not a PEM public key.', { cause: err });
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa' || bits < 3072)
    throw new FerryError('FERRY_E_BAD_REQUEST', `Sealing keys are RSA with at least 3072 bits (got ${key.asymmetricKeyType ?? '?'} ${bits}).`);
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 32);
}
