/**
 * Redaction of output that arrives a piece at a time (each agent upload, about every 250 ms, is
 * one `push`): a partial line is released at once up to where a match could begin, and only
 * that suffix is held; a credential split across uploads at any position is still redacted; a
 * `\r` ends a line; what is held stays bounded.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Streams, type OutputFrame, type RedactLevel, type StreamId } from '@ferry/protocol';
import { LINE_HOLD_CAP, redactText } from '../src/redaction/engine.js';
import { OutputRedactor } from '../src/redaction/redactor.js';
import { redactingTransform } from '../src/redaction/task-state.js';
import { SECRET_RULES, SECRET_STARTS } from '../src/redaction/secret-rules.js';

const R = (kind: string) => `[REDACTED:${kind}]`;
const latin1 = (s: string) => Buffer.from(s, 'latin1');
const text = (b: Buffer) => b.toString('latin1');

/** Pushes each piece as one upload (optionally through the exported state, as the server does); returns what each released, then the flush. */
function uploads(level: RedactLevel, pieces: readonly string[], viaState = false): string[] {
  let redactor = new OutputRedactor(level);
  const out: string[] = [];
  for (const piece of pieces) {
    out.push(text(redactor.push(latin1(piece))));
    if (viaState) redactor = OutputRedactor.fromState(level, redactor.exportState());
  }
  out.push(text(redactor.flush()));
  return out;
}

/** What one partial line leaves held at a level: the whole line minus what one push released. */
function heldOf(level: RedactLevel, line: string): string {
  const redactor = new OutputRedactor(level);
  const released = text(redactor.push(latin1(line)));
  assert.ok(line.startsWith(released), `released ${JSON.stringify(released)} of ${JSON.stringify(line)}`);
  assert.equal(redactor.heldBytes, line.length - released.length);
  return line.slice(released.length);
}

// Invented values shaped like the real thing.
const TOKENS = {
  'github-token': 'ghp_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3HiJ',
  'aws-access-key': 'AKIAIOSFODNN7EXAMPLE',
  'npm-token': 'npm_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8',
  'google-api-key': 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
  'slack-token': 'xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
  'stripe-key': 'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
  'openai-key': 'sk-proj-Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi9',
  'gitlab-token': 'glpat-Ab3De6Gh9Jk2Mn5Pq8St',
  jwt: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
} as const;

/** Labelled secrets: [text, what it becomes]; the value is what the marker replaces. */
const LABELLED: readonly (readonly [string, string])[] = [
  ['aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', `aws_secret_access_key = ${R('aws-secret-key')}`],
  ['aws_session_token=FwoGZXIvYXdzEJr//////////wEaDH3ExAmPlE', `aws_session_token=${R('aws-session-token')}`],
  ['Authorization: Basic dXNlcjpwYXNzd29yZA==', `Authorization: ${R('authorization-header')}`],
  ['Bearer Ab3De6Gh9Jk2Mn5Pq8St1Vw4', `Bearer ${R('bearer-token')}`],
  ['postgres://admin:s3cr3t-pa55@db.example.com', `postgres://admin:${R('url-password')}@db.example.com`],
  ['AccountKey=Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi==', `AccountKey=${R('azure-storage-key')}`],
  ['"private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"', `"private_key": "${R('gcp-private-key')}"`],
];

const PERSONAL: readonly (readonly [string, string])[] = [
  ['john.doe@example.org', R('email')],
  ['4111 1111 1111 1111', R('card-number')],
  ['4111111111111111', R('card-number')],
  ['+14155552671', R('phone')],
  ['(555) 123-4567', R('phone')],
];

test('every secret rule has its start pattern (one per rule, in order, and one for private key blocks)', () => {
  assert.equal(SECRET_STARTS.length, SECRET_RULES.length + 1, 'a secret rule was added without its start pattern in SECRET_STARTS');
});

describe('partial lines are released up to where a match could begin', () => {
  test('progress output with nothing that could begin a match is released whole, at once', () => {
    for (const line of ['\rprogress 1/4', '\r[#####     ] 50%', 'Downloading foo.tar.gz', 'step 3 of 10: ', 'ok. ']) {
      for (const level of ['none', 'secrets'] as const) assert.equal(heldOf(level, line), '', `${level}: ${JSON.stringify(line)}`);
    }
  });

  test('what each rule family holds back (the rest of the line is released)', () => {
    const cases: readonly (readonly [string, string, string])[] = [
      // [partial line, held at secrets, held at all]
      ['\rprogress 1/4', '', '4'], // at all, the last word could begin an e-mail address or a card number
      ['\r[#####     ] 50%', '', '50%'],
      ['\rETA 3s ', '', ''],
      ['token: ghp_Ab3De6', 'ghp_Ab3De6', 'ghp_Ab3De6'],
      ['token: g', 'g', 'g'],
      ['key AKIA', 'AKIA', 'AKIA'],
      ['curl -H "Authorization: Bearer abc', 'Authorization: Bearer abc', 'Authorization: Bearer abc'],
      ['export AWS_SECRET_ACCESS_KEY=wJalr', 'AWS_SECRET_ACCESS_KEY=wJalr', 'AWS_SECRET_ACCESS_KEY=wJalr'],
      ['id_token=eyJhbGciOi', 'eyJhbGciOi', 'eyJhbGciOi'],
      ['psql postgres://admin:s3c', '://admin:s3c', '://admin:s3c'],
      ['writing -----BEGIN RSA PRI', '-----BEGIN RSA PRI', '-----BEGIN RSA PRI'],
      ['mail john.doe@exa', '', 'john.doe@exa'],
      ['card 4111 1111 11', '', '4111 1111 11'],
      ['call +1 415', '', '+1 415'],
      ['a token is coming: ', '', ''],
      ['x:ghp_Ab3De6', 'ghp_Ab3De6', 'ghp_Ab3De6'],
      ['xghp_Ab3De6', '', 'xghp_Ab3De6'], // a word character before it: no GitHub token can start there (an address could)
      ['\rdownloading 123/50000 ', '', ''], // "50000 " cannot begin a card or phone number
      ['\rdownloading 123/50000', '', '50000'],
      ['\rat 1795899961.295101 ', '', ''], // a "1" that ends a number cannot begin "1 (555) 123-4567"
      ['call 1 (55', '', '1 (55'],
    ];
    for (const [line, secrets, all] of cases) {
      assert.equal(heldOf('secrets', line), secrets, `secrets: ${JSON.stringify(line)}`);
      assert.equal(heldOf('all', line), all, `all: ${JSON.stringify(line)}`);
    }
  });

  test('a \\r ends a line: what it follows is released, however it looked', () => {
    const out = uploads('secrets', ['\rtoken: ghp_Ab3', '\r', 'progress 2/4']);
    assert.deepEqual(out, ['\rtoken: ', 'ghp_Ab3\r', 'progress 2/4', '']);
    // and a token that ends a progress line is still whole across it
    assert.deepEqual(uploads('secrets', [`\rkey ${TOKENS['github-token'].slice(0, 9)}`, `${TOKENS['github-token'].slice(9)}\rnext`]), [
      '\rkey ',
      `${R('github-token')}\rnext`,
      '',
    ]);
  });

  test('each upload releases: the server needs no timer, the agent flushes partial lines every ~250 ms', () => {
    const steps = ['\rprogress 1/4', '\rprogress 2/4', '\rprogress 3/4', '\rprogress 4/4', '\n'];
    assert.deepEqual(uploads('secrets', steps, true), [...steps, '']);
    assert.deepEqual(uploads('all', steps, true), ['\rprogress 1/', '4\rprogress 2/', '4\rprogress 3/', '4\rprogress 4/', '4\n', '']);
  });
});

describe('a credential split across uploads is still redacted', () => {
  const before = fc.constantFrom('', ' ', 'x=', '"', 'token: ', 'progress 1/4 ', '\r', '\n', 'a\nb ');
  const after = fc.constantFrom('', ' ', '\n', '"', ' more', '\rnext', ';');
  const secrets = [...Object.entries(TOKENS).map(([rule, t]) => [t, R(rule)] as const), ...LABELLED];

  test('property: split at every position, through the exported state or not, the output is the whole redaction and nothing of the value shows early', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...secrets),
        before,
        after,
        fc.boolean(),
        fc.constantFrom<RedactLevel>('secrets', 'all'),
        ([secret, redacted], pre, post, viaState, level) => {
          const whole = `${pre}${secret}${post}`;
          const expected = redactText(level, whole);
          assert.ok(expected.includes(redacted), `${secret} is redacted whole: ${expected}`);
          // Where the value starts: the text before the marker (a label, a URL's user) may stream.
          const valueAt = pre.length + redacted.indexOf('[REDACTED:');
          for (let i = 0; i <= secret.length; i++) {
            const out = uploads(level, [pre + secret.slice(0, i), secret.slice(i) + post], viaState);
            assert.equal(out.join(''), expected, `split at ${i}`);
            assert.ok((out[0] ?? '').length <= valueAt, `split at ${i}: the first upload released ${JSON.stringify(out[0])}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('property: personal data at level all, split at every position, is redacted whole', () => {
    fc.assert(
      fc.property(fc.constantFrom(...PERSONAL), before, after, fc.boolean(), ([value, redacted], pre, post, viaState) => {
        const expected = redactText('all', `${pre}${value}${post}`);
        assert.ok(expected.includes(redacted), expected);
        for (let i = 0; i <= value.length; i++) {
          const out = uploads('all', [pre + value.slice(0, i), value.slice(i) + post], viaState);
          assert.equal(out.join(''), expected, `split at ${i}`);
          assert.ok(pre.startsWith(out[0] ?? ''), `split at ${i} released ${JSON.stringify(out[0])}`);
        }
      }),
      { numRuns: 200 },
    );
  });

  test('property: a token split into many uploads around progress updates is redacted', () => {
    const token = TOKENS['github-token'];
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: token.length }), { maxLength: 6 }), fc.boolean(), (cuts, viaState) => {
        const at = [...new Set(cuts)].sort((a, b) => a - b);
        const pieces = ['\rprogress 1/4 token '];
        let prev = 0;
        for (const c of at) {
          pieces.push(token.slice(prev, c));
          prev = c;
        }
        pieces.push(`${token.slice(prev)} ok\rprogress 2/4`);
        const out = uploads('secrets', pieces, viaState);
        assert.equal(out.join(''), `\rprogress 1/4 token ${R('github-token')} ok\rprogress 2/4`);
        for (const piece of out) assert.ok(!piece.includes('ghp_'), JSON.stringify(out));
      }),
      { numRuns: 300 },
    );
  });

  test('a private key block across uploads, starting on a progress line, is redacted whole', () => {
    const block = [
      '-----BEGIN RSA PRIVATE KEY-----',
      'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun',
      'VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK',
      '-----END RSA PRIVATE KEY-----',
    ].join('\n');
    const input = `\rprogress 3/4 ${block}\ndone\n`;
    const expected = `\rprogress 3/4 ${R('private-key')}\ndone\n`;
    assert.equal(redactText('secrets', input), expected);
    const begin = input.indexOf('-----BEGIN');
    const end = input.indexOf('\ndone');
    for (let i = 1; i < input.length; i++) {
      for (const viaState of [false, true]) {
        const out = uploads('secrets', [input.slice(0, i), input.slice(i)], viaState);
        assert.equal(out.join(''), expected, `split at ${i}`);
        assert.ok(!/-----|MIIE/.test(out[0] ?? ''), `split at ${i}: nothing of the block was released before it was whole`);
        if (i > begin && i < end) assert.equal(out[0], '\rprogress 3/4 ', `split at ${i}`);
      }
    }
    // line by line, as a slow `cat` would upload it
    const lines = input.split(/(?<=\n)/);
    const out = uploads('secrets', lines, true);
    assert.equal(out.join(''), expected);
    for (const piece of out) assert.ok(!piece.includes('MIIE'), JSON.stringify(piece));
  });
});

describe('the hold-back is bounded', () => {
  test('a progress bar that never prints a newline holds a few bytes, however long it runs', () => {
    for (const level of ['secrets', 'all'] as const) {
      const redactor = new OutputRedactor(level);
      let released = 0;
      for (let i = 1; i <= 50_000; i++) {
        released += redactor.push(latin1(`\rdownloading ${i}/50000 `)).length;
        assert.ok(redactor.heldBytes <= 0, `${level}: held ${redactor.heldBytes}`);
        if (i % 5000 === 0) assert.ok(redactor.exportState().length < 120, redactor.exportState());
      }
      assert.ok(released > 1_000_000);
    }
  });

  test('what could begin a match is held at most a line cap, then released (cut), so memory stays bounded', () => {
    for (const start of ['Authorization: ', 'token ghp_', 'mail ']) {
      const redactor = new OutputRedactor('all');
      let released = redactor.push(latin1(start)).length;
      for (let sent = 0; sent < 4 * LINE_HOLD_CAP; sent += 1000) {
        released += redactor.push(latin1('a'.repeat(1000))).length;
        assert.ok(redactor.heldBytes <= LINE_HOLD_CAP + 1000 + 128, `${start}: held ${redactor.heldBytes}`);
        assert.ok(redactor.exportState().length < ((LINE_HOLD_CAP + 1128) * 4) / 3 + 64);
      }
      assert.ok(released >= 4 * LINE_HOLD_CAP - LINE_HOLD_CAP - 1128, `${start}: released ${released}`);
    }
  });

  test('card and phone numbers hold a bounded suffix, however long the run of digits', () => {
    const redactor = new OutputRedactor('all');
    for (let i = 0; i < 2000; i++) {
      redactor.push(latin1('12 34 '));
      assert.ok(redactor.heldBytes <= 40, `held ${redactor.heldBytes}`);
    }
  });
});

describe('uploads as the server applies them (one transform per upload, state between)', () => {
  const frames = (stream: StreamId, s: string): OutputFrame[] => [...latin1(s)].map((b) => ({ stream, time: 0, data: Buffer.from([b]) }));
  const textOf = (fs: readonly OutputFrame[], stream: StreamId) =>
    fs
      .filter((f) => f.stream === stream)
      .map((f) => text(Buffer.from(f.data)))
      .join('');

  test('a partial line sent as one-byte frames is released at the end of its upload, a token across two uploads is redacted', () => {
    const transform = redactingTransform('secrets');
    const first = transform([...frames(Streams.stdout, '\rprogress 1/4 token ghp_Ab3De6Gh9'), ...frames(Streams.stderr, 'warn: ')], null);
    assert.equal(textOf(first.frames, Streams.stdout), '\rprogress 1/4 token ');
    assert.equal(textOf(first.frames, Streams.stderr), 'warn: ');
    const second = transform(frames(Streams.stdout, 'Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3HiJ ok\rprogress 2/4'), first.state);
    assert.equal(textOf(second.frames, Streams.stdout), `${R('github-token')} ok\rprogress 2/4`);
  });

  test('an upload of many one-byte frames on one long line costs little per frame (the partial line is worked on once per upload)', () => {
    const transform = redactingTransform('all');
    const started = performance.now();
    let state: string | null = null;
    let released = 0;
    for (let upload = 0; upload < 20; upload++) {
      // 10,000 one-byte frames of letters: at `all` the whole run could still be an e-mail address.
      const out = transform(frames(Streams.stdout, 'abcdefghij'.repeat(1000)), state);
      state = out.state;
      released += out.frames.reduce((n, f) => n + f.data.length, 0);
    }
    const ms = performance.now() - started;
    // Working on the held line at every frame took minutes here; once per upload, well under a second.
    assert.ok(ms < 20_000, `${ms} ms`);
    assert.ok(released >= 200_000 - LINE_HOLD_CAP - 128, `released ${released}`);
  });
});
