/**
 * Sealed secrets: the envelope format (version 1), shared by every client that seals (CLI with
 * Node crypto, browser with WebCrypto) and the agent that opens.
 *
 *   plaintext ──AES-256-GCM(key K, 12-byte iv, aad)──▶ ct ‖ tag
 *   K ──RSA-OAEP(SHA-256, the target's 3072-bit public key)──▶ ek
 *
 *   { "v": 1, "alg": "RSA-OAEP-256+A256GCM", "kid": "<key id>",
 *     "ek": b64, "iv": b64, "ct": b64, "tag": b64 }        (b64 = standard base64)
 *
 * The associated data binds the value to its organization, target, name and key id, so a
 * sealed value copied to another target or renamed fails to open. A fresh K per value.
 * Key id = first 16 bytes (hex) of SHA-256 over the public key's SPKI DER.
 */
import { z } from 'zod';
import { base64DecodedLength, utf8Encode } from './bytes.js';

export const SECRET_NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;
export const SecretName = z
  .string()
  .max(128)
  .regex(SECRET_NAME_PATTERN, 'secret names are upper-case letters, digits and _, not starting with a digit (e.g. DB_PASSWORD)');
/** Names the task environment already uses; a secret may not replace them. */
export const RESERVED_SECRET_NAMES = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', 'TERM', 'PWD', 'SHELL', 'USER', 'LD_PRELOAD', 'LD_LIBRARY_PATH'];
export function isReservedSecretName(name: string): boolean {
  return RESERVED_SECRET_NAMES.includes(name) || name.startsWith('FERRY_') || name.startsWith('BASH_');
}
export const MAX_SECRET_BYTES = 48 * 1024;
export const MAX_SECRETS_PER_TARGET = 200;
export const MAX_SECRET_BYTES_PER_TARGET = 1024 * 1024;
/** Values shorter than this are not masked in output (too likely to match ordinary text). */
export const MIN_MASKED_SECRET_LENGTH = 6;

export const ENVELOPE_ALG = 'RSA-OAEP-256+A256GCM';
const b64 = z
  .string()
  .max(200_000)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64');

export const SealedSecret = z
  .object({
    v: z.literal(1),
    alg: z.literal(ENVELOPE_ALG),
    kid: z.string().regex(/^[0-9a-f]{32}$/),
    ek: b64,
    iv: b64,
    ct: b64,
    tag: b64,
  })
  .strict();
export type SealedSecret = z.infer<typeof SealedSecret>;

export interface SecretBinding {
  orgId: string;
  targetId: string;
  name: string;
  kid: string;
}

export function secretAad(b: SecretBinding): Uint8Array<ArrayBuffer> {
  return utf8Encode(['ferry-secret-v1', b.orgId, b.targetId, b.name, b.kid].join('\n'));
}

/** Upper bound of the plaintext size from the ciphertext (GCM adds no padding). */
export function sealedPlaintextBytes(sealed: SealedSecret): number {
  return base64DecodedLength(sealed.ct);
}

export const SetSecretRequest = z.object({ sealed: SealedSecret }).strict();
/** What listing a secret shows: never its value, nor its length (which says something about the value). */
export const SecretInfo = z.object({ name: z.string(), kid: z.string(), setBy: z.string(), setAt: z.string() });
export type SecretInfo = z.infer<typeof SecretInfo>;

export const TargetKey = z.object({ orgId: z.string(), targetId: z.string(), kid: z.string(), publicKeyPem: z.string() });
export type TargetKey = z.infer<typeof TargetKey>;

export const PublishKeyRequest = z.object({ publicKeyPem: z.string().max(4096) }).strict();

/** What an agent receives for each of the target's secrets. */
export const AssignedSecret = z.object({ name: z.string(), sealed: SealedSecret });
export type AssignedSecret = z.infer<typeof AssignedSecret>;

/**
 * Handing a target's key to another agent. Every agent has its own identity key pair
 * (RSA-OAEP-SHA256, 3072-bit); an agent that holds a target's private key wraps it for a newcomer
 * in the same envelope as a secret value (a fresh AES-256-GCM key, wrapped with RSA-OAEP to the
 * newcomer's identity key; `kid` is the identity key's id), over the private key's PKCS#8 DER.
 * The associated data binds organization, target, the target key's id and the recipient agent,
 * so a wrapped copy cannot be replayed for another target, key or agent. The server stores and
 * relays wrapped copies; it cannot open them.
 */
export interface KeyWrapBinding {
  orgId: string;
  targetId: string;
  /** Id of the target key being handed over. */
  keyId: string;
  /** The agent it is wrapped for. */
  agentId: string;
}

export function keyWrapAad(b: KeyWrapBinding): Uint8Array<ArrayBuffer> {
  return utf8Encode(['ferry-key-wrap-v1', b.orgId, b.targetId, b.keyId, b.agentId].join('\n'));
}

const KeyId = z.string().regex(/^[0-9a-f]{32}$/);
/** A holder's wrapped copy of a target key for one agent. */
export const HandOverKeyRequest = z.object({ keyId: KeyId, wrapped: SealedSecret }).strict();
/** The recipient unwrapped the key and checked its id. */
export const KeyReceivedRequest = z.object({ keyId: KeyId }).strict();
/** A rotation, done by an agent: the new public key and every value re-sealed with it, applied in one step if `oldKeyId` is still in force. */
export const RotateKeyRequest = z
  .object({
    oldKeyId: KeyId,
    publicKeyPem: z.string().max(4096),
    secrets: z.array(z.object({ name: SecretName, sealed: SealedSecret, setAt: z.number().int() }).strict()).max(MAX_SECRETS_PER_TARGET),
  })
  .strict();
export const RevokeAgentQuery = z.object({ force: z.enum(['true', 'false']).default('false') }).strict();
/** `discardSecrets`: when no agent holds the key any more, start over: drop the key and the secrets nobody can open. */
export const RotateTargetKeyQuery = z.object({ discardSecrets: z.enum(['true', 'false']).default('false') }).strict();
