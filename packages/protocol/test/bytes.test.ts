/**
 * The browser-safe byte helpers, checked against Node's Buffer as the reference: base64 both
 * ways (standard and URL-safe, padded or not), the decoded-length shortcut, UTF-8 (invalid
 * sequences become U+FFFD), concatenation and hex.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { base64Decode, base64DecodedLength, base64Encode, base64UrlEncode, concatBytes, hexEncode, utf8Decode, utf8Encode } from '../src/bytes.js';

const bytesArb = fc.uint8Array({ maxLength: 300 });

describe('base64', () => {
  it('encodes as Buffer does (property)', () => {
    fc.assert(
      fc.property(bytesArb, (bytes) => {
        assert.equal(base64Encode(bytes), Buffer.from(bytes).toString('base64'));
        assert.equal(base64UrlEncode(bytes), Buffer.from(bytes).toString('base64url'));
      }),
    );
  });

  it('decodes standard and URL-safe text, padded or not, as Buffer does (property)', () => {
    fc.assert(
      fc.property(bytesArb, (bytes) => {
        const standard = Buffer.from(bytes).toString('base64');
        const url = Buffer.from(bytes).toString('base64url');
        for (const text of [standard, standard.replace(/=+$/, ''), url, url + '='.repeat((4 - (url.length % 4)) % 4)]) {
          assert.deepEqual([...base64Decode(text)], [...Buffer.from(text, 'base64')], text);
        }
      }),
    );
  });

  it('encodes inputs larger than one chunk of String.fromCharCode', () => {
    const big = new Uint8Array(200_000).map((_, i) => (i * 31) % 256);
    assert.equal(base64Encode(big), Buffer.from(big).toString('base64'));
    assert.deepEqual(base64Decode(base64Encode(big)), big);
  });

  it('known values', () => {
    assert.equal(base64Encode(utf8Encode('')), '');
    assert.equal(base64Encode(utf8Encode('f')), 'Zg==');
    assert.equal(base64Encode(utf8Encode('fo')), 'Zm8=');
    assert.equal(base64Encode(utf8Encode('foo')), 'Zm9v');
    assert.equal(base64Encode(new Uint8Array([0xfb, 0xff])), '+/8=');
    assert.equal(base64UrlEncode(new Uint8Array([0xfb, 0xff])), '-_8');
    assert.deepEqual([...base64Decode('-_8')], [0xfb, 0xff]);
    assert.deepEqual([...base64Decode('+/8=')], [0xfb, 0xff]);
  });

  it('refuses text that is not base64', () => {
    for (const text of ['abc$', 'ab cd', 'Zg==Zg', 'Zg===', '=Zg', 'a', 'Z\n g==', 'ä']) {
      assert.throws(() => base64Decode(text), Error, JSON.stringify(text));
    }
  });

  it('base64DecodedLength gives the decoded size of standard padded base64 without decoding (property)', () => {
    fc.assert(
      fc.property(bytesArb, (bytes) => {
        assert.equal(base64DecodedLength(Buffer.from(bytes).toString('base64')), bytes.length);
      }),
    );
    assert.equal(base64DecodedLength(''), 0);
    assert.equal(base64DecodedLength('Zg=='), 1);
    assert.equal(base64DecodedLength('Zm8='), 2);
    assert.equal(base64DecodedLength('Zm9v'), 3);
  });
});

describe('UTF-8, concatenation, hex', () => {
  it('UTF-8 round-trips any string and matches Buffer (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 100 }), (text) => {
        assert.deepEqual([...utf8Encode(text)], [...Buffer.from(text, 'utf8')]);
        assert.equal(utf8Decode(utf8Encode(text)), text);
      }),
    );
  });

  it('invalid UTF-8 decodes with replacement characters, as Buffer does, never throwing (property)', () => {
    assert.equal(utf8Decode(new Uint8Array([0x61, 0xc3, 0x28, 0x62, 0xff])), 'a\uFFFD(b\uFFFD');
    fc.assert(
      fc.property(bytesArb, (bytes) => {
        assert.equal(utf8Decode(bytes), Buffer.from(bytes).toString('utf8'));
      }),
    );
  });

  it('concatBytes joins in order, views included (property)', () => {
    fc.assert(
      fc.property(fc.array(bytesArb, { maxLength: 6 }), (parts) => {
        assert.deepEqual([...concatBytes(parts)], [...Buffer.concat(parts)]);
      }),
    );
    const backing = new Uint8Array([9, 1, 2, 3, 9]);
    assert.deepEqual([...concatBytes([backing.subarray(1, 4), new Uint8Array(0), Buffer.from([4])])], [1, 2, 3, 4]);
  });

  it('hexEncode matches Buffer (property)', () => {
    fc.assert(
      fc.property(bytesArb, (bytes) => {
        assert.equal(hexEncode(bytes), Buffer.from(bytes).toString('hex'));
      }),
    );
  });
});
