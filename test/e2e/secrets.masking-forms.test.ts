/**
 * Secret masking of encoded forms, end to end: a target with secrets set through `ferry secret
 * set`, a task that prints every form the README lists through the real tools (bash, base64,
 * openssl, python3, xxd, od, hexdump), including a value split across stdout and stderr, and
 * then the stored output (`ferry task logs`) and the live output (`ferry run`) must contain
 * none of them: each form is recomputed here, independently of the masker, and neither it nor
 * any 12-character window of it, or of the raw value, may appear on either stream.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startFerryServer, waitForAgents, type CliResult, type ServerHandle } from '../helpers/ferry.js';

/** Quotes, spaces, !'()*, non-ASCII, more than 57 bytes (so base64 wraps at 76 and 64 columns). */
const VALUE = `it's a "sp@ced" s3cret!(x)*~/é€ & <b> 100%+more-padding-to-exceed-57-bytes_xyz`;
const MULTI = `first line of the "multi" secret (1)*!\nsecond line: it's 'quoted' & ünïcode`;

/** Tools the task uses beyond bash, coreutils and python3; a form whose tool is missing here is reported, not checked. */
const OPTIONAL_TOOLS = ['openssl', 'xxd', 'hexdump'];
const missing = new Set(OPTIONAL_TOOLS.filter((t) => spawnSync('bash', ['-c', `command -v ${t}`]).status !== 0));

const PY = {
  encodebytes: 'import sys,base64; sys.stdout.write(base64.encodebytes(sys.argv[1].encode()).decode())',
  urlsafe: 'import sys,base64; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode().rstrip("="))',
  quote: 'import sys,urllib.parse as u; print(u.quote(sys.argv[1]))',
  quotePlus: 'import sys,urllib.parse as u; print(u.quote_plus(sys.argv[1]))',
  quoteLower: 'import sys,re,urllib.parse as u; print(re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), u.quote_plus(sys.argv[1])))',
  shlex: 'import sys,shlex; print("cmd --password=" + shlex.quote(sys.argv[1]))',
  html: 'import sys,html; print("<input value=\\"" + html.escape(sys.argv[1]) + "\\">")',
};
const py = (code: string, arg = '"$S"'): string => `python3 -c '${code}' ${arg}`;

/** [label, tool, bash]: each prints one form of $S (or of $M). */
const STEPS: [string, string, string][] = [
  ['raw', 'bash', 'printf "%s\\n" "$S"'],
  ['base64', 'base64', 'printf %s "$S" | base64'],
  ['base64 -w0', 'base64', 'printf %s "$S" | base64 -w0; echo'],
  ['openssl base64', 'openssl', 'printf %s "$S" | openssl base64'],
  ['python encodebytes', 'python3', py(PY.encodebytes)],
  ['urlsafe unpadded', 'python3', py(PY.urlsafe)],
  ['base64 without the first byte', 'base64', 'printf %s "${S:1}" | base64'],
  ['base64 without two bytes, unpadded', 'base64', 'printf %s "${S:2}" | base64 -w0 | tr -d =; echo'],
  ['quote', 'python3', py(PY.quote)],
  ['quote_plus', 'python3', py(PY.quotePlus)],
  ['quote_plus lower-case', 'python3', py(PY.quoteLower)],
  ['shlex.quote', 'python3', py(PY.shlex)],
  ['html.escape', 'python3', py(PY.html)],
  ['xxd -p', 'xxd', 'printf %s "$S" | xxd -p'],
  ['xxd -p -u', 'xxd', 'printf %s "$S" | xxd -p -u'],
  ['od -An -tx1', 'od', 'printf %s "$S" | od -An -tx1'],
  ['hexdump', 'hexdump', `printf %s "$S" | hexdump -v -e '/1 "%02x "'; echo`],
  ['split across stdout and stderr', 'bash', 'printf %s "${S:0:10}"; printf %s "${S:10}" >&2; echo; echo >&2'],
  ['multi-line raw', 'bash', 'printf "%s\\n" "$M"'],
  ['base64 of each line', 'base64', 'while IFS= read -r line; do printf %s "$line" | base64; done <<< "$M"'],
  ['base64 of the multi-line value', 'base64', 'printf %s "$M" | base64'],
];

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const wrap = (text: string, width: number): string => text.replace(new RegExp(`(.{${width}})(?=.)`, 'gs'), '$1\n');
const hexOf = (s: string): string => Buffer.from(s).toString('hex');
const percent = (s: string, keep: RegExp, plus: boolean): string =>
  [...s]
    .map((c) => (keep.test(c) ? c : plus && c === ' ' ? '+' : [...Buffer.from(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')))
    .join('');

/** Every form the task prints, recomputed here (not with the masker's code). */
function formsOf(value: string): string[] {
  const bytes = [...Buffer.from(value)].map((b) => b.toString(16).padStart(2, '0'));
  const quotePlus = percent(value, /^[A-Za-z0-9_.~-]$/, true);
  return [
    value,
    b64(value),
    wrap(b64(value), 76),
    wrap(b64(value), 64),
    Buffer.from(value).toString('base64url'),
    wrap(b64(value.slice(1)), 76),
    b64(value.slice(2)).replace(/=+$/, ''),
    percent(value, /^[A-Za-z0-9_.~/-]$/, false),
    quotePlus,
    quotePlus.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    `'${value.replace(/'/g, `'"'"'`)}'`,
    value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#x27;'),
    wrap(hexOf(value), 60),
    wrap(hexOf(value).toUpperCase(), 60),
    Array.from({ length: Math.ceil(bytes.length / 16) }, (_, i) => ` ${bytes.slice(16 * i, 16 * i + 16).join(' ')}`).join('\n'),
    `${bytes.join(' ')} `,
  ];
}

function windows(text: string, size = 12): string[] {
  const cps = [...text];
  const out = new Set<string>();
  for (let i = 0; i + size <= cps.length; i++) out.add(cps.slice(i, i + size).join(''));
  return [...out];
}

/** What must not appear anywhere: every form of both values, each line of the multi-line one, and their 12-character windows. */
function forbidden(): string[] {
  const lines = MULTI.split('\n');
  const forms = [...formsOf(VALUE), MULTI, ...lines, ...lines.map(b64), wrap(b64(MULTI), 76)];
  return [...new Set([...forms, ...forms.flatMap((f) => windows(f))])];
}

function assertNothingLeaks(where: string, r: Pick<CliResult, 'stdout' | 'stderr'>): void {
  for (const needle of forbidden()) {
    for (const [stream, text] of [
      ['stdout', r.stdout],
      ['stderr', r.stderr],
    ] as const) {
      assert.ok(!text.includes(needle), `${where} ${stream} contains ${JSON.stringify(needle)}:\n${text}`);
    }
  }
}

describe('secret masking of encoded forms, end to end', () => {
  let server: ServerHandle;
  let run: CliResult;
  let taskId: string;

  before(async () => {
    server = await startFerryServer();
    await waitForAgents(server, 1);
    assert.equal((await server.cli(['target', 'create', 'vault', '--type', 'shell'])).code, 0);
    for (const [name, value] of [
      ['MASK_ME', VALUE],
      ['MULTI_LINE', MULTI],
    ]) {
      const r = await server.cli(['secret', 'set', 'vault', name!], { input: value });
      assert.equal(r.code, 0, r.stderr);
    }
    const script = [
      'S="$MASK_ME"; M="$MULTI_LINE"',
      ...STEPS.filter(([, tool]) => !missing.has(tool)).map(([label, , bash]) => `echo "== ${label}"; ${bash}; echo "ok: ${label} (${'$'}{#S})"`),
    ].join('\n');
    run = await server.cli(['run', 'vault', '-c', script]);
    taskId = /task (t_[0-9a-z]+)/.exec(run.stderr)?.[1] ?? '';
  });
  after(async () => server?.stop());

  it('runs every tool on the real value', (t) => {
    assert.equal(run.code, 0, run.stderr);
    assert.ok(taskId, run.stderr);
    for (const tool of missing) t.diagnostic(`${tool} is not installed here: its forms were not printed`);
    for (const [label, tool] of STEPS) {
      if (!missing.has(tool)) assert.ok(run.stdout.includes(`ok: ${label} (${VALUE.length})`), `step ${label} did not run:\n${run.stdout}\n${run.stderr}`);
    }
    assert.ok((run.stdout.match(/\*\*\*/g) ?? []).length >= STEPS.length - missing.size, run.stdout);
  });

  it('the live output (ferry run) holds none of the forms on either stream', () => {
    assertNothingLeaks('ferry run', run);
  });

  it('the stored output (ferry task logs) holds none of the forms on either stream', async () => {
    const logs = await server.cli(['task', 'logs', taskId]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.ok(logs.stdout.includes('== split across stdout and stderr'), logs.stdout);
    assertNothingLeaks('ferry task logs', logs);
    // The split value is masked on both streams: stdout shows a mask where its first 10 characters were.
    assert.match(logs.stdout, /== split across stdout and stderr\n\*\*\*\n/);
    assert.match(logs.stderr, /\*\*\*/);
  });
});
