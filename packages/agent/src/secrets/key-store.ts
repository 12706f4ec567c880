/**
 * The agent's keys, in `<data dir>/keys/` (files 0600, folder 0700):
 * - `<target id>.pem`: the target's sealing key in force here;
 * - `<target id>.<key id>.pem`: other keys of the target: the one before a rotation or a newer
 *   hand-over (tasks claimed before the change still open with it), or a rotation's new key kept
 *   before the server confirmed it (so a lost answer cannot lose the key);
 * - `agent-identity.pem`: the agent's own identity key, to which other agents wrap target keys
 *   when they hand them over (key-custody.ts).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSealingKeyPair, sealingKeyIdOf } from './envelope.js';

const TARGET_ID = /^[a-z]_[0-9a-z]+$/;
const KEY_FILE = /^([a-z]_[0-9a-z]+)(?:\.([0-9a-f]{32}))?\.pem$/;
const IDENTITY_FILE = 'agent-identity.pem';

export interface HeldKey {
  kid: string;
  key: KeyObject;
}

export interface IdentityKey extends HeldKey {
  publicKeyPem: string;
}

function keyEntry(pem: string): HeldKey {
  const key = createPrivateKey(pem);
  return { kid: sealingKeyIdOf(createPublicKey(key)), key };
}

export class KeyStore {
  private readonly dir: string;
  private readonly cache = new Map<string, HeldKey>();
  private identityKey: Promise<IdentityKey> | undefined;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'keys');
  }

  private file(targetId: string, kid?: string): string {
    if (!TARGET_ID.test(targetId)) throw new Error(`bad target id ${targetId}`);
    if (kid !== undefined && !/^[0-9a-f]{32}$/.test(kid)) throw new Error(`bad key id ${kid}`);
    return join(this.dir, kid === undefined ? `${targetId}.pem` : `${targetId}.${kid}.pem`);
  }

  private write(file: string, pem: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileSync(`${file}.tmp`, pem, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  private read(file: string): HeldKey | undefined {
    const cached = this.cache.get(file);
    if (cached) return cached;
    if (!existsSync(file)) return undefined;
    const entry = keyEntry(readFileSync(file, 'utf8'));
    this.cache.set(file, entry);
    return entry;
  }

  /** Makes `privateKeyPem` the target's key in force here; a different key in force before is kept beside it. */
  save(targetId: string, privateKeyPem: string): void {
    const file = this.file(targetId);
    const before = this.read(file);
    const next = keyEntry(privateKeyPem);
    if (before && before.kid !== next.kid) this.write(this.file(targetId, before.kid), before.key.export({ type: 'pkcs8', format: 'pem' }).toString());
    this.write(file, privateKeyPem);
    this.cache.delete(file);
  }

  /** Keeps a key that may become the target's (a rotation not yet confirmed) without putting it in force. */
  keep(targetId: string, privateKeyPem: string): string {
    const { kid } = keyEntry(privateKeyPem);
    this.write(this.file(targetId, kid), privateKeyPem);
    return kid;
  }

  /** The target's key in force here, or undefined when this agent does not hold one. */
  load(targetId: string): HeldKey | undefined {
    return this.read(this.file(targetId));
  }

  /** The target's key with id `kid`, in force or kept beside it. */
  find(targetId: string, kid: string): HeldKey | undefined {
    const current = this.load(targetId);
    if (current?.kid === kid) return current;
    return this.read(this.file(targetId, kid));
  }

  /** Every target key held here, with its id (what the agent tells the server on its first poll). */
  held(): { targetId: string; keyId: string }[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir).flatMap((name) => {
      const targetId = KEY_FILE.exec(name)?.[1];
      const entry = targetId ? this.read(join(this.dir, name)) : undefined;
      return targetId && entry ? [{ targetId, keyId: entry.kid }] : [];
    });
  }

  /** The agent's identity key pair, made on first use and kept with the other keys. */
  identity(): Promise<IdentityKey> {
    this.identityKey ??= this.loadIdentity();
    return this.identityKey;
  }

  private async loadIdentity(): Promise<IdentityKey> {
    const file = join(this.dir, IDENTITY_FILE);
    if (!existsSync(file)) this.write(file, (await generateSealingKeyPair()).privateKeyPem);
    const { key, kid } = keyEntry(readFileSync(file, 'utf8'));
    return { key, kid, publicKeyPem: createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString() };
  }
}
