/**
 * The store's side of keys that follow the agents, on both stores (helpers/stores.ts): who holds a target's
 * key, which hand-overs a holder is asked for and which copies a recipient gets, and the
 * rotation's compare-and-set (on the old key id and on every value's version), which applies a
 * rotation whole or not at all.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { SealedSecret } from '@ferry/protocol';
import type { AgentRow, SecretRow, Store } from '../src/store/types.js';
import { registerTestAgent, testTarget } from './helpers/store-fixtures.js';
import { forEachStore } from './helpers/stores.js';

const kid = (c: string): string => c.repeat(32);
const sealed = (k: string, ct = 'AAAA'): SealedSecret => ({ v: 1, alg: 'RSA-OAEP-256+A256GCM', kid: k, ek: 'AAAA', iv: 'AAAA', ct, tag: 'AAAA' });
let store: Store;
let orgId: string;
let first: AgentRow;
let second: AgentRow;
let outsider: AgentRow;

function secret(name: string, k: string, setAt: number): SecretRow {
  return { targetId: 'g_site', orgId, name, kid: k, sealed: sealed(k), bytes: 4, setBy: 'test', setAt };
}

forEachStore('keys in the store', (backend) => {
  before(async () => {
    store = await backend.open();
    orgId = (await store.ensureOrg('acme', Date.now())).id;
    const target = testTarget({ orgId, name: 'site', agentMode: 'self-hosted' });
    assert.notEqual(await store.createTarget(target), 'exists');
    first = await registerTestAgent(store, 'first', { orgId, hosted: false, targetIds: ['g_site'] });
    second = await registerTestAgent(store, 'second', { orgId, hosted: false, targetIds: ['g_site'] });
    outsider = await registerTestAgent(store, 'outsider', { orgId, hosted: true });
    for (const a of [first, second, outsider]) await store.setAgentIdentityKey(a.id, `PEM-${a.name}`, kid('e'), Date.now());
    assert.ok(await store.setTargetKey('g_site', 'PEM', kid('a')));
    assert.ok(await store.addKeyHolder('g_site', first.id, kid('a'), Date.now()));
  });
  after(async () => {
    await store.close();
  });

  test('a holder is asked to hand the key to the agents of the target that lack it, and only those', async () => {
    const work = await store.keyHandoversFor(first, 20);
    assert.deepEqual(
      work.map((w) => [w.target.id, w.agentId, w.identityKeyPem]),
      [['g_site', second.id, 'PEM-second']],
    );
    assert.deepEqual(await store.keyHandoversFor(second, 20), [], 'an agent without the key hands nothing over');
    assert.deepEqual(await store.keyDeliveriesFor(second, 20), [], 'nothing wrapped yet');
  });

  test('a wrapped copy for the key in force is kept and delivered; one for another key is refused', async () => {
    assert.equal(await store.putKeyHandover('g_site', second.id, kid('f'), first.id, sealed(kid('e')), Date.now()), false);
    assert.ok(await store.putKeyHandover('g_site', second.id, kid('a'), first.id, sealed(kid('e'), 'BBBB'), Date.now()));
    assert.ok(await store.putKeyHandover('g_site', second.id, kid('a'), first.id, sealed(kid('e'), 'CCCC'), Date.now()), 'a second copy is as good');
    assert.deepEqual(await store.keyHandoversFor(first, 20), [], 'nothing more to wrap');
    const deliveries = await store.keyDeliveriesFor(second, 20);
    assert.deepEqual(
      deliveries.map((d) => d.wrapped.ct),
      ['BBBB'],
      'the first copy wins',
    );
    assert.equal(await store.addKeyHolder('g_site', second.id, kid('f'), Date.now()), false, 'not the key in force');
    assert.ok(await store.addKeyHolder('g_site', second.id, kid('a'), Date.now()));
    assert.deepEqual(await store.keyDeliveriesFor(second, 20), [], 'a holder gets no copy');
    assert.deepEqual(
      (await store.targetKeyState('g_site')).holders.map((h) => h.name),
      ['first', 'second'],
    );
  });

  test('the last holder of a target with secrets is known; a revoked agent holds nothing', async () => {
    assert.deepEqual(await store.targetsOnlyHeldBy(first.id), [], 'no secrets yet');
    assert.equal(await store.putSecret(secret('A_SECRET', kid('a'), 100)), 'ok');
    assert.deepEqual(await store.targetsOnlyHeldBy(first.id), [], 'second holds it too');
    assert.ok(await store.revokeAgent(orgId, second.id, Date.now()));
    assert.deepEqual(
      (await store.targetsOnlyHeldBy(first.id)).map((t) => t.name),
      ['site'],
    );
    assert.deepEqual(
      (await store.targetKeyState('g_site')).holders.map((h) => h.name),
      ['first'],
    );
  });

  test('a rotation applies only over the key and the values it re-sealed, and then whole', async () => {
    assert.equal(await store.putSecret(secret('B_SECRET', kid('a'), 200)), 'ok');
    assert.ok(await store.requestKeyRotation('g_site', Date.now()));
    assert.deepEqual(
      (await store.keyRotationsFor(first)).map((r) => r.secrets.map((s) => s.name)),
      [['A_SECRET', 'B_SECRET']],
    );
    const rotation = {
      targetId: 'g_site',
      oldKeyId: kid('a'),
      publicKeyPem: 'NEW',
      keyId: kid('b'),
      agentId: first.id,
      secrets: [
        { name: 'A_SECRET', sealed: sealed(kid('b')), setAt: 100 },
        { name: 'B_SECRET', sealed: sealed(kid('b')), setAt: 200 },
      ],
      now: Date.now(),
    };
    // B was set again after the agent read it: its re-sealed copy is stale.
    assert.equal(await store.putSecret(secret('B_SECRET', kid('a'), 300)), 'ok');
    assert.equal(await store.rotateTargetKey(rotation), 'secrets_changed');
    assert.equal((await store.getTargetById('g_site'))?.keyId, kid('a'), 'nothing applied');
    assert.deepEqual(
      (await store.listSecrets('g_site')).map((s) => s.kid),
      [kid('a'), kid('a')],
    );
    assert.equal(await store.rotateTargetKey({ ...rotation, oldKeyId: kid('c') }), 'key_changed');
    const fresh = { ...rotation, secrets: [rotation.secrets[0]!, { ...rotation.secrets[1]!, setAt: 300 }] };
    assert.equal(await store.rotateTargetKey(fresh), 'ok');
    const target = await store.getTargetById('g_site');
    assert.equal(target?.keyId, kid('b'));
    assert.equal((await store.targetKeyState('g_site')).rotationRequested, false);
    assert.deepEqual(
      (await store.listSecrets('g_site')).map((s) => s.kid),
      [kid('b'), kid('b')],
    );
    assert.deepEqual(
      (await store.targetKeyState('g_site')).holders.map((h) => h.name),
      ['first'],
      'the rotating agent holds the new key',
    );
    assert.equal(await store.rotateTargetKey(fresh), 'key_changed', 'applied once');
    assert.equal(await store.putSecret(secret('C_SECRET', kid('a'), 400)), 'key_changed', 'a value sealed with the old key is refused');
  });

  test("what an agent says it holds counts only for its targets' keys in force", async () => {
    await store.replaceHeldKeys(outsider, [{ targetId: 'g_site', keyId: kid('b') }], Date.now());
    await store.replaceHeldKeys(first, [{ targetId: 'g_site', keyId: kid('a') }], Date.now());
    assert.deepEqual((await store.targetKeyState('g_site')).holders, [], 'an old key, and an agent that does not serve the target');
    await store.replaceHeldKeys(first, [{ targetId: 'g_site', keyId: kid('b') }], Date.now());
    assert.deepEqual([...(await store.keyHoldings(orgId)).entries()], [[first.id, ['site']]]);
  });

  test('starting over drops the key in force, its secrets, holders and copies, and nothing for another key', async () => {
    assert.equal(await store.resetTargetKey('g_site', kid('a')), undefined, 'not the key in force');
    assert.equal((await store.listSecrets('g_site')).length, 2);
    assert.deepEqual(await store.resetTargetKey('g_site', kid('b')), ['A_SECRET', 'B_SECRET']);
    const target = await store.getTargetById('g_site');
    assert.equal(target?.keyId, null);
    assert.deepEqual(await store.listSecrets('g_site'), []);
    assert.deepEqual((await store.targetKeyState('g_site')).holders, []);
    assert.deepEqual(
      (await store.targetsNeedingKeys(first)).map((t) => t.id),
      ['g_site'],
      'its agent is asked for a new key',
    );
  });
});
