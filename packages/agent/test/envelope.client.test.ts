/**
 * Secrets sealed by the clients open in the agent: @ferry/client's WebCrypto `sealSecret` (the
 * one sealing implementation, used by the CLI and the web UI) against the agent's Node-crypto
 * `openSecret`, and both sides agree on key ids. Anything sealed for another target, name or
 * organization, or altered on the way, is refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { sealSecret, sealingKeyId } from '@ferry/client';
import { MAX_SECRET_BYTES, base64Decode, base64Encode, type SealedSecret } from '@ferry/protocol';
import { SecretOpenError, generateSealingKeyPair, openSecret, sealingKeyIdOf } from '../src/secrets/envelope.js';

const keys = await generateSealingKeyPair();
const binding = { orgId: 'o_acme', targetId: 'g_prod1', name: 'DB_PASSWORD' };
const kid = sealingKeyIdOf(keys.publicKeyPem);
const open = (sealed: SealedSecret, b: Partial<typeof binding> = {}): Buffer => openSecret(keys.privateKeyPem, { ...binding, ...b, kid }, sealed);

/** The same base64 field with one bit of its first byte flipped. */
function flipBit(b64: string): string {
  const bytes = base64Decode(b64);
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  return base64Encode(bytes);
}

test("the client's key id of a generated key equals the agent's", async () => {
  assert.equal(await sealingKeyId(keys.publicKeyPem), kid);
  assert.equal(keys.kid, kid);
});

const values: [string, string | Uint8Array][] = [
  ['an empty value', ''],
  ['a 1-byte value', 'x'],
  ['a multi-line value', 'line one\nline two\r\n\tindented line three\n'],
  ['a non-ASCII value', 'pässwörd – 密码 🔑 ﬀ\u0301'],
  ['a 48 KiB value of arbitrary bytes', randomBytes(MAX_SECRET_BYTES)],
];

for (const [what, value] of values) {
  test(`${what} sealed by the client opens in the agent, byte for byte`, async () => {
    const sealed = await sealSecret(keys.publicKeyPem, binding, value);
    assert.equal(sealed.kid, kid);
    const expected = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    assert.deepEqual(open(sealed), expected);
  });
}

test('a value sealed for another target, name or organization does not open', async () => {
  const sealed = await sealSecret(keys.publicKeyPem, binding, 'correct horse battery staple');
  assert.throws(() => open(sealed, { targetId: 'g_other' }), SecretOpenError);
  assert.throws(() => open(sealed, { name: 'OTHER_NAME' }), SecretOpenError);
  assert.throws(() => open(sealed, { orgId: 'o_other' }), SecretOpenError);
  assert.equal(open(sealed).toString('utf8'), 'correct horse battery staple', 'with the right binding it opens');
});

test("a value sealed with another target's key does not open", async () => {
  const other = await generateSealingKeyPair();
  const sealed = await sealSecret(other.publicKeyPem, binding, 'correct horse battery staple');
  assert.throws(() => open(sealed), SecretOpenError);
  assert.throws(() => openSecret(keys.privateKeyPem, { ...binding, kid: other.kid }, sealed), SecretOpenError);
});

test('an altered ciphertext, tag, iv or wrapped key does not open', async () => {
  const sealed = await sealSecret(keys.publicKeyPem, binding, 'correct horse battery staple');
  for (const field of ['ct', 'tag', 'iv', 'ek'] as const) {
    assert.throws(() => open({ ...sealed, [field]: flipBit(sealed[field]) }), SecretOpenError, `a flipped bit in ${field}`);
  }
  const shortTag = base64Encode(base64Decode(sealed.tag).subarray(0, 4));
  assert.throws(() => open({ ...sealed, tag: shortTag }), SecretOpenError, 'a tag cut to 4 bytes');
  const longerCt = base64Encode(new Uint8Array([...base64Decode(sealed.ct), 0]));
  assert.throws(() => open({ ...sealed, ct: longerCt }), SecretOpenError, 'a byte appended to the ciphertext');
});
