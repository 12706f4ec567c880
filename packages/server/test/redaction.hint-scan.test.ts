/**
 * The fast hint scan finds exactly what the hint regex finds: in random bytes with words of the
 * hint (in any case) put in anywhere, from any starting point. If a word of SECRET_HINT began
 * with a pair missing from SECRET_HINT_PAIRS, the generated words would show it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pairPrefilteredHint, regexHint } from '../src/redaction/hint-scan.js';
import { SECRET_HINT, SECRET_HINT_PAIRS } from '../src/redaction/secret-rules.js';

const fast = pairPrefilteredHint(SECRET_HINT, SECRET_HINT_PAIRS);
const reference = regexHint(new RegExp(SECRET_HINT, 'gi'));

/** A word the hint matches, in random case. */
const hintWord = fc
  .tuple(fc.stringMatching(new RegExp(`^(?:${SECRET_HINT})$`)), fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }))
  .map(([word, upper]) => [...word].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join(''));
/** Any bytes, as the engine sees them: a latin1 string. */
const noise = fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('latin1'));

describe('hint scan', () => {
  it('finds the first hint at or after any position exactly as the regex does (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(noise, hintWord), { maxLength: 8 }), fc.nat(), (pieces, seed) => {
        const s = pieces.join('');
        const from = s.length === 0 ? 0 : seed % s.length;
        assert.equal(fast.first(s, from), reference.first(s, from), JSON.stringify(s));
      }),
      { numRuns: 2000 },
    );
  });

  it('finds every word of the hint, in any case, also at the very end', () => {
    fc.assert(
      fc.property(hintWord, noise, (word, before) => {
        assert.equal(fast.first(before + word, 0), reference.first(before + word, 0));
        assert.notEqual(fast.first(before + word, 0), -1);
      }),
      { numRuns: 1000 },
    );
  });
});
