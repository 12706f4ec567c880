/**
 * The masker against the encodings real tools print: each form is produced by running the
 * tool (bash, base64, openssl, python3, xxd, od, hexdump) on the value, so these tests check
 * real-world output, not our idea of it. After masking, no 12-character window of the value,
 * or of what the tool printed, may be left. The values have quotes, spaces, `!'()*`, non-ASCII
 * characters and more than 57 bytes (so that base64 wraps), or are multi-line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it, type TestContext } from 'node:test';
import { SecretMasker } from '../src/output/masker.js';

const VALUES = [
  `it's a "sp@ced" s3cret!(x)*~/é€ & <b> 100%+more-padding-to-exceed-57-bytes_xyz`,
  `Pa$$ 'wörd' (x)*! "q" ~ über-long-value-that-is-more-than-fifty-seven-bytes-long #1`,
  `-----BEGIN KEY-----\n"first" line (1)*! é\nsecond line: it's 'quoted' & <tagged>\n-----END KEY-----\n`,
];

/** Runs a bash script with S (and more) in its environment; undefined if a tool it needs is missing. */
function sh(script: string, env: Record<string, string>): string | undefined {
  const r = spawnSync('bash', ['-c', script], { env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8', ...env }, encoding: 'utf8' });
  if (r.status === 127) return undefined;
  assert.equal(r.status, 0, `${script}: ${r.stderr}`);
  return r.stdout;
}

const py = (code: string): string => `python3 -c '${code.replace(/'/g, `'"'"'`)}' "$S"`;

/** The 12-character windows of `text` (all of them: each one must be gone). */
function windows(text: string, size = 12): string[] {
  const out = new Set<string>();
  const cps = [...text];
  for (let i = 0; i + size <= cps.length; i++) out.add(cps.slice(i, i + size).join(''));
  return [...out];
}

/** Masks what the tool printed and checks nothing of the value or of the printed form is left. */
function checkMasked(
  t: TestContext,
  m: SecretMasker,
  value: string,
  label: string,
  printed: string | undefined,
  formOf: (p: string) => string = (p) => p,
): void {
  if (printed === undefined) {
    t.diagnostic(`${label}: tool not installed, not checked`);
    return;
  }
  const masked = m.maskString(printed);
  assert.ok(masked.includes('***'), `${label}: nothing masked in ${JSON.stringify(printed)}`);
  for (const w of [...windows(value), ...windows(formOf(printed))]) {
    assert.ok(!masked.includes(w), `${label}: ${JSON.stringify(w)} left in ${JSON.stringify(masked)} (printed ${JSON.stringify(printed)})`);
  }
}

/** Every form each tool prints for the value in $S, by name. */
const TOOL_FORMS: Record<string, string> = {
  // base64, wrapped and not
  'base64 (76 columns)': 'printf %s "$S" | base64',
  'base64 -w0': 'printf %s "$S" | base64 -w0',
  'base64 -w 40': 'printf %s "$S" | base64 -w 40',
  'openssl base64 (64 columns)': 'printf %s "$S" | openssl base64',
  'openssl base64 -A': 'printf %s "$S" | openssl base64 -A',
  'python base64.encodebytes (76)': py('import sys,base64; sys.stdout.write(base64.encodebytes(sys.argv[1].encode()).decode())'),
  'python encodebytes, MIME \\r\\n': py('import sys,base64; sys.stdout.write(base64.encodebytes(sys.argv[1].encode()).decode().replace("\\n","\\r\\n"))'),
  'python b64encode': py('import sys,base64; print(base64.b64encode(sys.argv[1].encode()).decode())'),
  'python urlsafe_b64encode': py('import sys,base64; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode())'),
  'urlsafe base64 without padding': py('import sys,base64; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode().rstrip("="))'),
  'base64 of ${S:1}': 'printf %s "${S:1}" | base64',
  'base64 of ${S:2}, unpadded': 'printf %s "${S:2}" | base64 -w0 | tr -d =',
  'base64 of ${S:1}, URL-safe': 'printf %s "${S:1}" | base64 -w0 | tr "+/" "-_"',
  'echo "$S" | base64': 'echo "$S" | base64',
  // percent-encoding
  'python quote': py('import sys,urllib.parse as u; print(u.quote(sys.argv[1]))'),
  'python quote safe=""': py('import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))'),
  'python quote_plus': py('import sys,urllib.parse as u; print(u.quote_plus(sys.argv[1]))'),
  'quote, lower-case hex': py('import sys,re,urllib.parse as u; print(re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), u.quote(sys.argv[1])))'),
  'quote_plus, lower-case hex': py('import sys,re,urllib.parse as u; print(re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), u.quote_plus(sys.argv[1])))'),
  'python urlencode': py('import sys,urllib.parse as u; print(u.urlencode({"p": sys.argv[1]})[2:])'),
  // shell quoting
  'python shlex.quote': py('import sys,shlex; print(shlex.quote(sys.argv[1]))'),
  'bash printf %q': 'printf "%q\\n" "$S"',
  'bash ${S@Q}': 'echo "${S@Q}"',
  // HTML
  'python html.escape': py('import sys,html; print(html.escape(sys.argv[1]))'),
  'python html.escape quote=False': py('import sys,html; print(html.escape(sys.argv[1], quote=False))'),
  // JSON
  'python json.dumps': py('import sys,json; print(json.dumps(sys.argv[1]))'),
  'python json.dumps ensure_ascii=False': py('import sys,json; print(json.dumps(sys.argv[1], ensure_ascii=False))'),
  // hex
  'xxd -p (60 digits a line)': 'printf %s "$S" | xxd -p',
  'xxd -p -u': 'printf %s "$S" | xxd -p -u',
  'od -An -tx1': 'printf %s "$S" | od -An -tx1',
  'od -An -tx1 -v -w8': 'printf %s "$S" | od -An -tx1 -v -w8',
  'hexdump, a space between bytes': `printf %s "$S" | hexdump -v -e '/1 "%02x "'`,
  'python bytes.hex()': py('import sys; print(sys.argv[1].encode().hex())'),
  'python bytes.hex().upper()': py('import sys; print(sys.argv[1].encode().hex().upper())'),
};

describe('every form real tools print is masked (nothing of 12 characters left)', () => {
  for (const [vi, value] of VALUES.entries()) {
    const m = new SecretMasker([value]);
    for (const [label, script] of Object.entries(TOOL_FORMS)) {
      it(`value ${vi}: ${label}`, (t) => checkMasked(t, m, value, label, sh(script, { S: value })));
    }
  }
});

describe('encodings of part of a value, or of a value inside other data', () => {
  const value = VALUES[0]!;
  const m = new SecretMasker([value]);

  it('each line of a multi-line value, encoded on its own', (t) => {
    const multi = VALUES[2]!;
    const mm = new SecretMasker([multi]);
    for (const line of multi.split('\n').filter((l) => l.length >= 6)) {
      for (const script of ['printf %s "$L" | base64', 'echo "$L" | base64 -w0', 'printf %s "$L" | xxd -p', 'printf %s "$L" | od -An -tx1']) {
        checkMasked(t, mm, line, script, sh(script, { L: line }));
      }
    }
  });

  it('the value inside a larger base64 document, at every offset (wrapped at 76 and 64)', (t) => {
    for (let pad = 0; pad < 80; pad++) {
      const before = 'x'.repeat(pad);
      for (const script of ['printf %s "$P$S" | base64', 'printf %s "$P$S" | openssl base64']) {
        const printed = sh(script, { S: value, P: before });
        // The stable part: what encodes the value's bytes alone (the prefix's own characters are not secret).
        const first = Math.ceil((8 * pad) / 6) + Math.floor(Math.ceil((8 * pad) / 6) / (script.includes('openssl') ? 64 : 76));
        checkMasked(t, m, value, `${script} after ${pad} bytes`, printed, (p) => p.slice(first + 8));
      }
    }
  });

  it('the value as a JSON field, base64-encoded and wrapped (a Kubernetes secret manifest)', (t) => {
    // A value that JSON writes unchanged (an escaped one is a different string: see the README's limits).
    const plain = `deploy-Pässword (x)*!~ 'single' quotes and spaces, long enough to wrap`;
    const printed = sh(
      `printf '{"user":"deploy","password":%s}' "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1], ensure_ascii=False))' "$S")" | base64`,
      { S: plain },
    );
    const inner = Buffer.from(plain).toString('base64').slice(4, -4); // the value's own characters, whatever its alignment
    checkMasked(t, new SecretMasker([plain]), plain, 'json | base64', printed, () => '');
    const masked = new SecretMasker([plain]).maskString(printed!.replace(/\n/g, ''));
    for (const w of windows(inner)) assert.ok(!masked.includes(w));
  });

  it('bash set -x trace of a command using the value (stderr)', () => {
    const r = spawnSync('bash', ['-c', 'set -x; : "$S"'], { env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8', S: value }, encoding: 'utf8' });
    const masked = m.maskString(r.stderr);
    for (const w of windows(value)) assert.ok(!masked.includes(w), masked);
  });

  it('a wrapped form whose first line holds fewer than 8 of its characters: only those stay visible', () => {
    // 73 bytes before the value: its base64 starts 2 characters before the end of a 76-column line.
    const printed = sh('printf %s "$P$S" | base64', { S: value, P: 'y'.repeat(55) })!;
    const masked = m.maskString(printed);
    const lines = printed.split('\n');
    assert.equal(masked.split('\n')[0], lines[0], 'the first line is released as it is');
    assert.match(masked, /^[^\n]*\n\*\*\*/);
    for (const w of windows(printed.slice(77))) assert.ok(!masked.includes(w), masked);
  });
});

describe('ordinary output is left alone', () => {
  it('logs, other base64 and hex, URLs and HTML pass byte for byte', () => {
    const m = new SecretMasker(VALUES);
    const other = 'an ordinary value that is not a secret at all, (quoted) "like" this!';
    const printed = sh(
      [
        'echo "2024-05-01T12:00:00Z INFO request served path=/v1/things/123 status=200"',
        'printf %s "$O" | base64',
        'printf %s "$O" | openssl base64',
        'printf %s "$O" | xxd -p',
        'printf %s "$O" | od -An -tx1',
        `python3 -c 'import sys,urllib.parse as u,html,shlex; print(u.quote(sys.argv[1]), html.escape(sys.argv[1]), shlex.quote(sys.argv[1]))' "$O"`,
      ].join('\n'),
      { O: other },
    );
    if (printed === undefined) return;
    assert.equal(m.maskString(printed), printed);
  });
});
