/**
 * Join tokens and CA fingerprints: a token round-trips; anything malformed is refused
 * (undefined, never an exception); fingerprints are normalized to the one form pins compare.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { base64UrlEncode, utf8Encode } from '../src/bytes.js';
import { agentInstallCommands, decodeJoinToken, encodeJoinToken, joinTokenUrls, normalizeFingerprint, type JoinTokenPayload } from '../src/jointoken.js';

const FP = Array.from({ length: 32 }, (_, i) => (i * 7 + 10).toString(16).toUpperCase().padStart(2, '0')).join(':');
const PAYLOAD: JoinTokenPayload = { url: 'https://ferry.example.com:8443', fp: FP, secret: 'ferry_j_abcdefghijklmnopqrstuvwxyz0123' };

/** A token around any JSON value, as the encoder would write it. */
const tokenOf = (value: unknown): string => 'ferryjoin1.' + base64UrlEncode(utf8Encode(JSON.stringify(value)));

describe('join tokens', () => {
  it('round-trips', () => {
    const token = encodeJoinToken(PAYLOAD);
    assert.match(token, /^ferryjoin1\.[A-Za-z0-9_-]+$/, 'prefix, then URL-safe base64 without padding');
    assert.deepEqual(decodeJoinToken(token), PAYLOAD);
  });

  it('may carry several server URLs (replicas); a token without them names its one URL', () => {
    const urls = ['https://a.example.com:8443', 'https://b.example.com:8443'];
    const several = decodeJoinToken(encodeJoinToken({ ...PAYLOAD, url: urls[0]!, urls }));
    assert.ok(several);
    assert.deepEqual(joinTokenUrls(several), urls);
    assert.deepEqual(joinTokenUrls(decodeJoinToken(encodeJoinToken(PAYLOAD))!), [PAYLOAD.url]);
    assert.equal(decodeJoinToken(tokenOf({ ...PAYLOAD, urls: [] })), undefined, 'an empty list is malformed');
    assert.equal(decodeJoinToken(tokenOf({ ...PAYLOAD, urls: ['not a url'] })), undefined);
  });

  it('round-trips any valid payload (property), and tolerates surrounding whitespace', () => {
    const payload = fc.record({
      url: fc.webUrl(),
      fp: fc
        .array(fc.integer({ min: 0, max: 255 }), { minLength: 32, maxLength: 32 })
        .map((b) => b.map((x) => x.toString(16).toUpperCase().padStart(2, '0')).join(':')),
      secret: fc.string({ minLength: 20, maxLength: 80 }),
    });
    fc.assert(
      fc.property(payload, (p) => {
        assert.deepEqual(decodeJoinToken(` ${encodeJoinToken(p)}\n`), { ...p });
      }),
    );
  });

  it('refuses malformed base64 and non-JSON content', () => {
    for (const body of ['', '!!!not-base64!!!', 'a', 'abc$def', base64UrlEncode(utf8Encode('not json')), base64UrlEncode(utf8Encode('"a string"'))]) {
      assert.equal(decodeJoinToken('ferryjoin1.' + body), undefined, JSON.stringify(body));
    }
  });

  it('refuses a wrong or missing prefix', () => {
    const body = encodeJoinToken(PAYLOAD).slice('ferryjoin1.'.length);
    for (const prefix of ['', 'ferryjoin2.', 'FERRYJOIN1.', 'ferryjoin1', 'xferryjoin1.']) {
      assert.equal(decodeJoinToken(prefix + body), undefined, JSON.stringify(prefix));
    }
  });

  it('refuses missing fields, extra fields and bad values', () => {
    const without = (key: keyof JoinTokenPayload): object => Object.fromEntries(Object.entries(PAYLOAD).filter(([k]) => k !== key));
    const bad: unknown[] = [
      without('url'),
      without('fp'),
      without('secret'),
      {},
      null,
      [],
      42,
      { ...PAYLOAD, extra: 1 },
      { ...PAYLOAD, url: 'not a url' },
      { ...PAYLOAD, fp: FP.toLowerCase() },
      { ...PAYLOAD, fp: FP.replace(/:/g, '') },
      { ...PAYLOAD, secret: 'short' },
    ];
    for (const value of bad) assert.equal(decodeJoinToken(tokenOf(value)), undefined, JSON.stringify(value));
  });
});

describe('CA fingerprints', () => {
  const hex = FP.replace(/:/g, '');

  it('normalizes to upper-case, colon-separated hex', () => {
    for (const form of [FP, FP.toLowerCase(), hex, hex.toLowerCase(), `sha256:${hex}`, `SHA256:${FP.toLowerCase()}`, `  ${FP}\n`, FP.replace(/:/g, ' ')]) {
      assert.equal(normalizeFingerprint(form), FP, JSON.stringify(form));
    }
  });

  it('refuses anything that is not 32 bytes of hex', () => {
    for (const form of ['', 'sha256:', hex.slice(2), hex + 'AB', hex.replace(/.$/, 'G'), `sha1:${hex}`, 'not a fingerprint']) {
      assert.equal(normalizeFingerprint(form), undefined, JSON.stringify(form));
    }
  });

  it('is idempotent and accepts what the join token schema accepts (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const lower = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
        const normal = normalizeFingerprint(lower);
        assert.ok(normal);
        assert.equal(normalizeFingerprint(normal), normal);
        assert.deepEqual(decodeJoinToken(encodeJoinToken({ ...PAYLOAD, fp: normal })), { ...PAYLOAD, fp: normal });
      }),
    );
  });
});

describe('agent install commands', () => {
  /** What a POSIX shell makes of a command line: its words, as the program would receive them. */
  const words = (line: string): string[] =>
    execFileSync('sh', ['-c', `for w in ${line.replace(/^(sudo )?ferry /, '')}; do printf '%s\\0' "$w"; done`], { encoding: 'utf8' })
      .split('\0')
      .slice(0, -1);

  it('carry the token as one word, unquoted when nothing in it is special to a shell', () => {
    const token = encodeJoinToken(PAYLOAD);
    const { start, service } = agentInstallCommands(token);
    assert.equal(start, `ferry agent start --join-token ${token} --data-dir /var/lib/ferry-agent`);
    assert.equal(service, `sudo ferry agent install --join-token ${token}`);
    assert.deepEqual(words(start), ['agent', 'start', '--join-token', token, '--data-dir', '/var/lib/ferry-agent']);
  });

  it('quote anything else so the shell passes it through unchanged', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\0')),
        (odd) => {
          const { start } = agentInstallCommands(odd, '/srv/agent data');
          assert.deepEqual(words(start).slice(3), [odd, '--data-dir', '/srv/agent data']);
        },
      ),
      { numRuns: 50 },
    );
  });
});
