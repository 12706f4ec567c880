/**
 * The digest of a task's raw output (before the server's redaction), computed the same way by
 * the agent and by the server, and resumable from a small saved state, so that any server
 * replica can continue it from what the store holds and check an upload or a final status.
 *
 * Definition (hex of the last step):
 *   c₀ = 32 zero bytes;  cₖ = SHA-256(cₖ₋₁ ‖ blockₖ) for each complete block of DIGEST_BLOCK_BYTES
 *   digest(n bytes) = SHA-256(c_⌊n/B⌋ ‖ the remaining n mod B bytes)
 * Blocks are cut at fixed offsets of the output, never where uploads end, so the digest does not
 * depend on how the output was split. Complete blocks are hashed by the caller's native SHA-256
 * (`BlockHasher`); only a block in progress is hashed here in JavaScript, and its state (eight
 * words and at most 63 pending bytes) is what gets saved between uploads.
 *
 * Browser-safe: no Node built-ins (the native hasher is passed in).
 */
import { hexEncode } from './bytes.js';

/** Bytes per chained block. A multiple of 64 (SHA-256's block) and of nothing else in particular. */
export const DIGEST_BLOCK_BYTES = 64 * 1024;

/** SHA-256 of `chain ‖ block`, by whatever is fastest where it runs (node:crypto in Node). */
export type BlockHasher = (chain: Uint8Array, block: Uint8Array) => Uint8Array;

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
  0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
  0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
  0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
  0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));

/** A plain SHA-256 whose state can be saved and restored (Node's cannot). */
class Sha256 {
  readonly h = Uint32Array.from(IV);
  readonly pending = new Uint8Array(64);
  pendingLength = 0;
  /** Bytes hashed so far. */
  length = 0;
  private readonly w = new Uint32Array(64);

  update(data: Uint8Array): void {
    let i = 0;
    this.length += data.length;
    if (this.pendingLength > 0) {
      const take = Math.min(64 - this.pendingLength, data.length);
      this.pending.set(data.subarray(0, take), this.pendingLength);
      this.pendingLength += take;
      i = take;
      if (this.pendingLength < 64) return;
      this.compress(this.pending, 0);
      this.pendingLength = 0;
    }
    for (; i + 64 <= data.length; i += 64) this.compress(data, i);
    this.pending.set(data.subarray(i), 0);
    this.pendingLength = data.length - i;
  }

  digest(): Uint8Array {
    const copy = this.clone();
    const bits = copy.length * 8;
    const tail = new Uint8Array(copy.pendingLength < 56 ? 64 - copy.pendingLength : 128 - copy.pendingLength);
    tail[0] = 0x80;
    const view = new DataView(tail.buffer);
    view.setUint32(tail.length - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(tail.length - 4, bits >>> 0);
    copy.update(tail);
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    copy.h.forEach((word, i) => outView.setUint32(i * 4, word));
    return out;
  }

  clone(): Sha256 {
    const c = new Sha256();
    c.h.set(this.h);
    c.pending.set(this.pending);
    c.pendingLength = this.pendingLength;
    c.length = this.length;
    return c;
  }

  private compress(data: Uint8Array, at: number): void {
    const w = this.w;
    for (let t = 0; t < 16; t++) {
      const j = at + t * 4;
      w[t] = ((data[j]! << 24) | (data[j + 1]! << 16) | (data[j + 2]! << 8) | data[j + 3]!) >>> 0;
    }
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15]!;
      const b = w[t - 2]!;
      const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3);
      const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10);
      w[t] = (w[t - 16]! + s0 + w[t - 7]! + s1) >>> 0;
    }
    const h = this.h;
    let [a, b, c, d, e, f, g, hh] = [h[0]!, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!, h[6]!, h[7]!];
    for (let t = 0; t < 64; t++) {
      const s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + s1 + ch + K[t]! + w[t]!) >>> 0;
      const s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (s0 + maj) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h[0] = (h[0]! + a) >>> 0;
    h[1] = (h[1]! + b) >>> 0;
    h[2] = (h[2]! + c) >>> 0;
    h[3] = (h[3]! + d) >>> 0;
    h[4] = (h[4]! + e) >>> 0;
    h[5] = (h[5]! + f) >>> 0;
    h[6] = (h[6]! + g) >>> 0;
    h[7] = (h[7]! + hh) >>> 0;
  }
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

const STATE = /^v1:(\d{1,16}):([0-9a-f]{64}):([0-9a-f]{64}):([0-9a-f]{0,126})$/;

/** The running output digest (see the file comment); `exportState`/`fromState` carry it between processes. */
export class OutputDigest {
  private chain: Uint8Array = new Uint8Array(32);
  /** The block in progress (hashing `chain ‖ its bytes`), or undefined at a block boundary. */
  private block: Sha256 | undefined;
  private bytes = 0;

  constructor(private readonly hashBlock: BlockHasher) {}

  /** Bytes of output digested so far. */
  get length(): number {
    return this.bytes;
  }

  update(data: Uint8Array): this {
    let i = 0;
    while (i < data.length) {
      const inBlock = this.bytes % DIGEST_BLOCK_BYTES;
      if (inBlock === 0 && data.length - i >= DIGEST_BLOCK_BYTES) {
        this.chain = this.hashBlock(this.chain, data.subarray(i, i + DIGEST_BLOCK_BYTES));
        i += DIGEST_BLOCK_BYTES;
        this.bytes += DIGEST_BLOCK_BYTES;
        continue;
      }
      const take = Math.min(DIGEST_BLOCK_BYTES - inBlock, data.length - i);
      this.openBlock().update(data.subarray(i, i + take));
      i += take;
      this.bytes += take;
      if (this.bytes % DIGEST_BLOCK_BYTES === 0) {
        this.chain = this.openBlock().digest();
        this.block = undefined;
      }
    }
    return this;
  }

  /** The digest of everything so far (lowercase hex); the state goes on unchanged. */
  hex(): string {
    return hexEncode((this.block ?? this.startBlock()).digest());
  }

  clone(): OutputDigest {
    return OutputDigest.fromState(this.exportState(), this.hashBlock);
  }

  /** `v1:<bytes>:<chain>:<block words>:<block's pending bytes>`, all hex: small enough for a row. */
  exportState(): string {
    const block = this.block ?? this.startBlock();
    const words = new Uint8Array(32);
    const view = new DataView(words.buffer);
    block.h.forEach((word, i) => view.setUint32(i * 4, word));
    return `v1:${this.bytes}:${hexEncode(this.chain)}:${hexEncode(words)}:${hexEncode(block.pending.subarray(0, block.pendingLength))}`;
  }

  /** Restores `exportState`'s output; throws on anything else. */
  static fromState(state: string, hashBlock: BlockHasher): OutputDigest {
    const m = STATE.exec(state);
    if (!m) throw new Error('not an output digest state');
    const d = new OutputDigest(hashBlock);
    d.bytes = Number(m[1]);
    d.chain = hexBytes(m[2]!);
    const inBlock = d.bytes % DIGEST_BLOCK_BYTES;
    const pending = hexBytes(m[4]!);
    if (pending.length !== (32 + inBlock) % 64) throw new Error('output digest state is inconsistent');
    if (inBlock > 0) {
      const block = new Sha256();
      const words = hexBytes(m[3]!);
      const view = new DataView(words.buffer);
      for (let i = 0; i < 8; i++) block.h[i] = view.getUint32(i * 4);
      block.pending.set(pending);
      block.pendingLength = pending.length;
      block.length = 32 + inBlock;
      d.block = block;
    }
    return d;
  }

  private startBlock(): Sha256 {
    const block = new Sha256();
    block.update(this.chain);
    return block;
  }

  private openBlock(): Sha256 {
    this.block ??= this.startBlock();
    return this.block;
  }
}

/** Whether `text` is a digest as `OutputDigest.hex` writes it. */
export function isOutputDigest(text: string): boolean {
  return /^[0-9a-f]{64}$/.test(text);
}
