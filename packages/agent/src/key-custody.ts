/**
 * Key custody: what the agent does about its targets' sealing keys, as its poll answers ask.
 *
 * - Announce: the first poll carries the agent's identity public key and the ids of the target
 *   keys it holds (again after anything that says the server's record is stale).
 * - keyRequests: a target has no key yet: make one (or reuse one held), publish the public half,
 *   keep the private one only once the server took it (an agent that lost the race to another
 *   agent of the target must not hold a key nobody seals with).
 * - keyHandovers: another agent serving a target lacks its key: wrap the key to that agent's
 *   identity key (envelope.ts `wrapTargetKey`) and post the wrapped copy.
 * - keyDeliveries: a copy wrapped for this agent: unwrap, check it is the target's key (its id),
 *   keep it, confirm; from then on the server gives this agent the target's tasks that need it.
 * - keyRotations: a user asked for a new key: make one, open every value with the old key and
 *   seal it with the new one, post both in one request the server applies only if nothing
 *   changed meanwhile. The new key is kept on disk before it is posted, so a lost answer cannot
 *   lose it.
 *
 * A failure backs off (1 s doubling to 60 s, counted across jobs and reset by a success), so a
 * job that keeps failing cannot spin the poll loop; FERRY_E_KEY_CHANGED means the work is
 * outdated (the next answer has the current work) and costs no wait; 401/403 is thrown for the
 * poll loop to stop the agent.
 */
import { createPublicKey } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiError, Routes, backoffMs, isFatal, sealSecret, sleep, type FerryClient } from '@ferry/client';
import type { AgentKeys, PollResponse } from '@ferry/protocol';
import { generateSealingKeyPair, openSecret, unwrapTargetKey, wrapTargetKey } from './secrets/envelope.js';
import type { KeyStore } from './secrets/key-store.js';
import { messageOf } from './server-answers.js';

type Work<K extends 'keyRequests' | 'keyHandovers' | 'keyDeliveries' | 'keyRotations'> = NonNullable<PollResponse[K]>[number];

export class KeyCustody {
  private failures = 0;
  private announced = false;

  constructor(
    private readonly client: FerryClient,
    private readonly keys: KeyStore,
    private readonly agentId: string,
    private readonly log: Logger,
    /** Cuts a backoff short when the agent stops. */
    private readonly stop: AbortSignal,
  ) {}

  /** What the next poll tells the server about this agent's keys, until a poll answer came back. */
  async announcement(): Promise<AgentKeys | undefined> {
    if (this.announced) return undefined;
    const identity = await this.keys.identity();
    return { identityKeyPem: identity.publicKeyPem, held: this.keys.held() };
  }

  /** A poll that carried the announcement was answered. */
  announcedOk(): void {
    this.announced = true;
  }

  /** Does the key work a poll answer asks for, one job at a time. */
  async handle(answer: PollResponse): Promise<void> {
    for (const r of answer.keyRequests ?? []) await this.attempt(r.targetId, 'publish a sealing key', () => this.publish(r));
    for (const h of answer.keyHandovers ?? []) await this.attempt(h.targetId, `hand the key over to ${h.agentId}`, () => this.handOver(h));
    for (const d of answer.keyDeliveries ?? []) await this.attempt(d.targetId, 'take a key handed over', () => this.receive(d));
    for (const r of answer.keyRotations ?? []) await this.attempt(r.targetId, 'rotate the key', () => this.rotate(r));
  }

  private async attempt(targetId: string, what: string, job: () => Promise<void>): Promise<void> {
    const log = this.log.child({ targetId });
    try {
      await job();
      this.failures = 0;
    } catch (err) {
      if (isFatal(err)) throw err;
      if (err instanceof ApiError && (err.code === 'FERRY_E_KEY_CHANGED' || err.code === 'FERRY_E_TARGET_KEY_EXISTS')) {
        log.info({ err: messageOf(err) }, `did not ${what}: the target's key changed meanwhile`);
        return;
      }
      const wait = backoffMs(this.failures++, 1000, 60_000);
      log.warn({ err: messageOf(err), retryInMs: wait }, `could not ${what}`);
      await sleep(wait, this.stop);
    }
  }

  private async publish({ targetId, targetName }: Work<'keyRequests'>): Promise<void> {
    const held = this.keys.load(targetId);
    if (held) {
      const publicKeyPem = createPublicKey(held.key).export({ type: 'spki', format: 'pem' }).toString();
      await this.client.call(Routes.publishKey, { params: { id: targetId }, body: { publicKeyPem } });
    } else {
      const pair = await generateSealingKeyPair();
      await this.client.call(Routes.publishKey, { params: { id: targetId }, body: { publicKeyPem: pair.publicKeyPem } });
      this.keys.save(targetId, pair.privateKeyPem);
    }
    this.log.info({ targetId, target: targetName, kid: this.keys.load(targetId)?.kid }, "published the target's sealing key");
  }

  /** The server's record says this agent holds a key it does not: say again what it holds. */
  private notHeld(targetId: string, keyId: string): void {
    this.log.warn({ targetId, keyId }, 'asked about a key this agent does not hold; telling the server what it holds');
    this.announced = false;
  }

  private async handOver(h: Work<'keyHandovers'>): Promise<void> {
    const key = this.keys.find(h.targetId, h.keyId);
    if (!key) return this.notHeld(h.targetId, h.keyId);
    const wrapped = wrapTargetKey(h.identityKeyPem, { orgId: h.orgId, targetId: h.targetId, keyId: h.keyId, agentId: h.agentId }, key.key);
    await this.client.call(Routes.handOverKey, { params: { id: h.targetId, agent: h.agentId }, body: { keyId: h.keyId, wrapped } });
    this.log.info({ targetId: h.targetId, target: h.targetName, kid: h.keyId, to: h.agentId }, "handed the target's key over");
  }

  private async receive(d: Work<'keyDeliveries'>): Promise<void> {
    const identity = await this.keys.identity();
    const key = unwrapTargetKey(identity.key, { orgId: d.orgId, targetId: d.targetId, keyId: d.keyId, agentId: this.agentId }, d.wrapped);
    this.keys.save(d.targetId, key.export({ type: 'pkcs8', format: 'pem' }).toString());
    await this.client.call(Routes.keyReceived, { params: { id: d.targetId }, body: { keyId: d.keyId } });
    this.log.info({ targetId: d.targetId, target: d.targetName, kid: d.keyId }, "received the target's key from another agent");
  }

  private async rotate(r: Work<'keyRotations'>): Promise<void> {
    const old = this.keys.find(r.targetId, r.keyId);
    if (!old) return this.notHeld(r.targetId, r.keyId);
    const pair = await generateSealingKeyPair();
    const secrets = [];
    for (const s of r.secrets) {
      const plain = openSecret(old.key, { orgId: r.orgId, targetId: r.targetId, name: s.name, kid: r.keyId }, s.sealed);
      try {
        secrets.push({
          name: s.name,
          setAt: s.setAt,
          sealed: await sealSecret(pair.publicKeyPem, { orgId: r.orgId, targetId: r.targetId, name: s.name }, plain),
        });
      } finally {
        plain.fill(0);
      }
    }
    // Kept before it is posted: if the server applies the rotation and its answer is lost, the key is still here.
    this.keys.keep(r.targetId, pair.privateKeyPem);
    await this.client.call(Routes.rotateKey, { params: { id: r.targetId }, body: { oldKeyId: r.keyId, publicKeyPem: pair.publicKeyPem, secrets } });
    this.keys.save(r.targetId, pair.privateKeyPem);
    this.log.info({ targetId: r.targetId, target: r.targetName, oldKid: r.keyId, kid: pair.kid, resealed: secrets.length }, "rotated the target's key");
  }
}
