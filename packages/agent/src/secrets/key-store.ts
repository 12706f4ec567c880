/**
 * The agent's sealing keys, one private key per target, in `<data dir>/keys/<target id>.pem`
 * (mode 0600, folder 0700). Several agents of one target share a key by sharing this file
 * (copy it, or mount it from a secret store); see the README for rotation.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealingKeyIdOf } from './envelope.js';

export class KeyStore {
  private readonly dir: string;
  private readonly cache = new Map<string, { kid: string; key: KeyObject }>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'keys');
  }

  private file(targetId: string): string {
    if (!/^[a-z]_[0-9a-z]+$/.test(targetId)) throw new Error(`bad target id ${targetId}`);
    return join(this.dir, `${targetId}.pem`);
  }

  has(targetId: string): boolean {
    return existsSync(this.file(targetId));
  }

  save(targetId: string, privateKeyPem: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(targetId);
    writeFileSync(`${file}.tmp`, privateKeyPem, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
    this.cache.delete(targetId);
  }

  /** The target's private key and its key id, or undefined when this agent does not hold it. */
  load(targetId: string): { kid: string; key: KeyObject } | undefined {
    const cached = this.cache.get(targetId);
    if (cached) return cached;
    const file = this.file(targetId);
    if (!existsSync(file)) return undefined;
    const key = createPrivateKey(readFileSync(file, 'utf8'));
    const entry = { kid: sealingKeyIdOf(createPublicKey(key)), key };
    this.cache.set(targetId, entry);
    return entry;
  }
}
