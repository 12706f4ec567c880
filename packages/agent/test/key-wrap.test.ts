/**
 * Handing a target key to another agent: a key wrapped to an agent's identity key opens only
 * with that identity key, for the same organization, target, key id and agent, and unwraps to
 * the very key the id names. The key store keeps the key in force, the one before it, and a
 * rotation's new key kept before the server confirmed it.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { base64Decode, base64Encode } from '@ferry/protocol';
import { SecretOpenError, generateSealingKeyPair, unwrapTargetKey, wrapTargetKey } from '../src/secrets/envelope.js';
import { KeyStore } from '../src/secrets/key-store.js';

const [target, other, identity, stranger] = await Promise.all([1, 2, 3, 4].map(() => generateSealingKeyPair()));
const binding = { orgId: 'o_acme', targetId: 'g_prod1', keyId: target!.kid, agentId: 'a_new1' };
const identityKey = createPrivateKey(identity!.privateKeyPem);
const wrapped = wrapTargetKey(identity!.publicKeyPem, binding, createPrivateKey(target!.privateKeyPem));
const dir = mkdtempSync(join(tmpdir(), 'ferry-keywrap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a wrapped key unwraps with the recipient identity key to the target key itself', () => {
  assert.equal(wrapped.kid, identity!.kid, "the envelope names the recipient's identity key");
  assert.ok(!JSON.stringify(wrapped).includes('PRIVATE KEY'));
  const key = unwrapTargetKey(identityKey, binding, wrapped);
  assert.equal(createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString(), target!.publicKeyPem);
});

test('a copy is refused for another agent, target, organization or key id, with another identity key, or altered', () => {
  for (const change of [{ agentId: 'a_other' }, { targetId: 'g_prod2' }, { orgId: 'o_evil' }]) {
    assert.throws(() => unwrapTargetKey(identityKey, { ...binding, ...change }, wrapped), SecretOpenError, JSON.stringify(change));
  }
  // A copy of another key under this key's id: it opens, but is not the key the id names.
  const swapped = wrapTargetKey(identity!.publicKeyPem, binding, createPrivateKey(other!.privateKeyPem));
  assert.throws(() => unwrapTargetKey(identityKey, binding, swapped), /not the target's key/);
  assert.throws(() => unwrapTargetKey(createPrivateKey(stranger!.privateKeyPem), binding, wrapped), /wrapped for identity key/);
  const ct = base64Decode(wrapped.ct);
  ct[0] = (ct[0] ?? 0) ^ 1;
  assert.throws(() => unwrapTargetKey(identityKey, binding, { ...wrapped, ct: base64Encode(ct) }), SecretOpenError);
});

test('the key store: identity made once, keys held by id, the previous key kept beside a new one', async () => {
  const store = new KeyStore(dir);
  const first = await store.identity();
  assert.equal((await new KeyStore(dir).identity()).kid, first.kid, 'the identity key stays across restarts');
  assert.deepEqual(store.held(), []);
  store.save('g_prod1', target!.privateKeyPem);
  assert.equal(store.keep('g_prod1', other!.privateKeyPem), other!.kid);
  assert.equal(store.load('g_prod1')?.kid, target!.kid, 'a kept key is not in force');
  assert.deepEqual(
    store
      .held()
      .map((h) => h.keyId)
      .sort(),
    [target!.kid, other!.kid].sort(),
  );
  store.save('g_prod1', other!.privateKeyPem);
  const reopened = new KeyStore(dir);
  assert.equal(reopened.load('g_prod1')?.kid, other!.kid);
  assert.equal(reopened.find('g_prod1', target!.kid)?.kid, target!.kid, 'the previous key still opens values sealed for it');
  for (const name of readdirSync(join(dir, 'keys'))) assert.equal(statSync(join(dir, 'keys', name)).mode & 0o777, 0o600, name);
});
