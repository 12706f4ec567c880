/**
 * Publishing sealing keys. A poll answer names the targets this agent serves that have no
 * sealing key on the server yet; for each, the agent publishes the public half of its key.
 *
 * States per target: key held (copied from another agent of the target, or kept from an
 * earlier run) → published | no key held → key made → published → saved. A fresh key is kept
 * only once the server took it: an agent that lost the race to another agent of the same
 * target must not hold a key nobody seals with. A failure backs off (1 s doubling to 60 s,
 * counted across requests and reset by a success), so an unpublishable key cannot spin the
 * poll loop; 401/403 is thrown for the poll loop to stop the agent.
 */
import { createPublicKey } from 'node:crypto';
import type { Logger } from 'pino';
import { Routes, backoffMs, isFatal, sleep, type FerryClient } from '@ferry/client';
import { generateSealingKeyPair } from './secrets/envelope.js';
import type { KeyStore } from './secrets/key-store.js';
import type { KeyRequest } from './poll-loop.js';
import { messageOf } from './server-answers.js';

export class KeyPublisher {
  private failures = 0;

  constructor(
    private readonly client: FerryClient,
    private readonly keys: KeyStore,
    private readonly log: Logger,
    /** Cuts a backoff short when the agent stops. */
    private readonly stop: AbortSignal,
  ) {}

  async publish(requests: readonly KeyRequest[]): Promise<void> {
    for (const request of requests) await this.publishOne(request);
  }

  private async publishOne({ targetId, targetName }: KeyRequest): Promise<void> {
    const log = this.log.child({ targetId });
    try {
      await this.publishKeyOf(targetId);
      log.info({ target: targetName, kid: this.keys.load(targetId)?.kid }, "published the target's sealing key");
      this.failures = 0;
    } catch (err) {
      if (isFatal(err)) throw err;
      const wait = backoffMs(this.failures++, 1000, 60_000);
      log.warn({ err: messageOf(err), retryInMs: wait }, 'could not publish a sealing key');
      await sleep(wait, this.stop);
    }
  }

  private async publishKeyOf(targetId: string): Promise<void> {
    const held = this.keys.load(targetId);
    if (held) {
      const publicKeyPem = createPublicKey(held.key).export({ type: 'spki', format: 'pem' }).toString();
      await this.client.call(Routes.publishKey, { params: { id: targetId }, body: { publicKeyPem } });
      return;
    }
    const pair = await generateSealingKeyPair();
    await this.client.call(Routes.publishKey, { params: { id: targetId }, body: { publicKeyPem: pair.publicKeyPem } });
    this.keys.save(targetId, pair.privateKeyPem);
  }
}
