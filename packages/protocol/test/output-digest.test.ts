/**
 * The output digest: its definition checked against node:crypto computing the same chain, its
 * independence from where the output is split, and a saved state continuing exactly.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DIGEST_BLOCK_BYTES, OutputDigest, isOutputDigest, type BlockHasher } from '../src/output-digest.js';

const native: BlockHasher = (chain, block) => createHash('sha256').update(chain).update(block).digest();

/** The definition, written out with node:crypto alone. */
function reference(data: Uint8Array): string {
  let chain: Uint8Array = new Uint8Array(32);
  let at = 0;
  for (; at + DIGEST_BLOCK_BYTES <= data.length; at += DIGEST_BLOCK_BYTES) chain = native(chain, data.subarray(at, at + DIGEST_BLOCK_BYTES));
  return createHash('sha256').update(chain).update(data.subarray(at)).digest('hex');
}

/** Splits `data` at the given cut points (sorted, deduplicated, inside the data). */
function pieces(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    out.push(data.subarray(from, p));
    from = p;
  }
  out.push(data.subarray(from));
  return out;
}

describe('output digest', () => {
  it('matches the definition for the empty output, within a block, at block edges and across several', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, DIGEST_BLOCK_BYTES - 1, DIGEST_BLOCK_BYTES, DIGEST_BLOCK_BYTES + 1, 3 * DIGEST_BLOCK_BYTES + 77]) {
      const data = randomBytes(n);
      assert.equal(new OutputDigest(native).update(data).hex(), reference(data), `${n} bytes`);
    }
  });

  it('does not depend on where the output was split, and a saved state continues exactly (property)', () => {
    const big = randomBytes(2 * DIGEST_BLOCK_BYTES + 1000);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: big.length }), fc.array(fc.nat(), { maxLength: 8 }), (n, cuts) => {
        const data = big.subarray(0, n);
        let d = new OutputDigest(native);
        for (const piece of pieces(data, cuts)) {
          d.update(piece);
          d = OutputDigest.fromState(d.exportState(), native); // as if each upload reached another replica
        }
        assert.equal(d.length, n);
        assert.equal(d.hex(), reference(data));
      }),
      { numRuns: 60 },
    );
  });

  it('a saved state is small, and a damaged one is refused', () => {
    const d = new OutputDigest(native).update(randomBytes(DIGEST_BLOCK_BYTES + 100));
    const state = d.exportState();
    assert.ok(state.length < 400, state);
    assert.throws(() => OutputDigest.fromState(state.replace(/:[0-9a-f]*$/, ':00'), native), /inconsistent/);
    assert.throws(() => OutputDigest.fromState('v2:1:2', native), /not an output digest state/);
    assert.ok(isOutputDigest(d.hex()));
  });
});
