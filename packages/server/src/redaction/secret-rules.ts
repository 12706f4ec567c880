/**
 * Level `secrets` (also applied at `all`): credentials. Each rule keeps the label around a
 * value (`Authorization: `, `aws_secret_access_key = `) and replaces only the value, so output
 * stays readable. Private key blocks span lines, so they are not a line rule: their BEGIN and
 * END markers are at the end of this file, and the engine holds a block back until its END.
 */
import { redactionMarker as M, type LineRule, type RedactionRuleName } from './rules.js';
import { alt, lit, one, opt, run, seq, startPattern, startWithRun, type Start } from './starts.js';

/** A label, then `:` / `=` / `=>` / blanks, with optional quotes either side: `$1` is all of it. */
const LABEL_SEP = `["']?(?:[ \\t]*(?:=>|[:=])[ \\t]*|[ \\t]+)["']?`;

export const SECRET_RULES: readonly LineRule[] = [
  {
    name: 'authorization-header',
    anchor: { words: ['authorization'], ignoreCase: true },
    re: /(?<![A-Za-z0-9_])(authorization["']?[ \t]*:[ \t]*["']?)([^\s"'][^\r\n"']*)/gi,
    replace: `$1${M('authorization-header')}`,
  },
  {
    name: 'url-password',
    anchor: { words: ['://'] },
    // Anchored on the literal "://" (a lookbehind first would make the regex try every offset).
    re: /:\/\/(?<=[A-Za-z0-9+.-]:\/\/)([^\s:/?#@"'<>]*:)([^\s/?#"'<>\\]+)(@)/g,
    replace: `://$1${M('url-password')}$3`,
  },
  {
    name: 'aws-secret-key',
    anchor: { words: ['secret'], ignoreCase: true },
    re: new RegExp(`(?<![A-Za-z0-9])((?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)${LABEL_SEP})([A-Za-z0-9/+=]{20,})`, 'gi'),
    replace: `$1${M('aws-secret-key')}`,
  },
  {
    name: 'aws-session-token',
    anchor: { words: ['session'], ignoreCase: true },
    re: new RegExp(`(?<![A-Za-z0-9])((?:aws[_-]?session[_-]?token|session[_-]?token)${LABEL_SEP})([A-Za-z0-9/+=]{20,})`, 'gi'),
    replace: `$1${M('aws-session-token')}`,
  },
  {
    name: 'gcp-private-key',
    anchor: { words: ['"private_key"'] },
    re: /("private_key"[ \t]*:[ \t]*")((?:[^"\\\r\n]|\\.)+)(")/g,
    replace: `$1${M('gcp-private-key')}$3`,
  },
  {
    name: 'azure-storage-key',
    anchor: { words: ['accountkey', 'sharedaccesskey'], ignoreCase: true },
    re: /(?<![A-Za-z0-9])((?:Account|SharedAccess)Key[ \t]*=[ \t]*)([A-Za-z0-9+/]{20,}={0,2})/gi,
    replace: `$1${M('azure-storage-key')}`,
  },
  {
    name: 'jwt',
    anchor: { words: ['eyJ'] },
    re: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g,
    replace: M('jwt'),
  },
  {
    // The token must look like one: 16+ chars with a digit, or punctuation inside it.
    name: 'bearer-token',
    anchor: { words: ['bearer'], ignoreCase: true },
    re: /(?<![A-Za-z0-9_])(bearer[ \t]+)(?=[A-Za-z0-9._~+/-]*(?:[0-9]|[._~+/-][A-Za-z0-9]))([A-Za-z0-9._~+/-]{16,}=*)/gi,
    replace: `$1${M('bearer-token')}`,
  },
  {
    name: 'github-token',
    anchor: { words: ['gh'] },
    re: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})(?![A-Za-z0-9_])/g,
    replace: M('github-token'),
  },
  {
    name: 'gitlab-token',
    anchor: { words: ['gl'] },
    re: /(?<![A-Za-z0-9_-])gl(?:pat|dt|rt|ptt|soat)-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*/g,
    replace: M('gitlab-token'),
  },
  {
    name: 'slack-token',
    anchor: { words: ['xox'] },
    re: /(?<![A-Za-z0-9_-])xox[abprs]-[A-Za-z0-9-]{10,}/g,
    replace: M('slack-token'),
  },
  {
    name: 'stripe-key',
    anchor: { words: ['k_live_'] },
    re: /(?<![A-Za-z0-9_])[sr]k_live_[A-Za-z0-9]{10,}/g,
    replace: M('stripe-key'),
  },
  {
    name: 'npm-token',
    anchor: { words: ['npm_'] },
    re: /(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])/g,
    replace: M('npm-token'),
  },
  {
    name: 'google-api-key',
    anchor: { words: ['AIza'] },
    re: /(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])/g,
    replace: M('google-api-key'),
  },
  {
    // At least one digit so that hyphenated words after "sk-" are left alone.
    name: 'openai-key',
    anchor: { words: ['sk-'] },
    re: /(?<![A-Za-z0-9_-])sk-(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}/g,
    replace: M('openai-key'),
  },
  {
    // Ferry's own credentials: user tokens (ferry_u_), agent tokens (ferry_a_), join secrets
    // (ferry_j_), each 32 random bytes in base64url; and whole join tokens (ferryjoin1.…).
    name: 'ferry-token',
    anchor: { words: ['ferry'] },
    re: /(?<![A-Za-z0-9_-])(?:ferry_[uaj]_[A-Za-z0-9_-]{43}|ferryjoin1\.[A-Za-z0-9_-]{20,})(?![A-Za-z0-9_-])/g,
    replace: M('ferry-token'),
  },
  {
    name: 'aws-access-key',
    anchor: { words: ['AKIA', 'ASIA'] },
    re: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
    replace: M('aws-access-key'),
  },
];

/**
 * A line can only match a secret rule if it contains one of these (each alternative is a
 * substring of every match of some rule, case-folded where the rule is), so lines without a
 * hit are passed over by one scan instead of one per rule.
 */
export const SECRET_HINT = String.raw`authorization|://|secret[_-]?(?:access[_-]?)?key|session[_-]?token|"private_key"|accountkey|sharedaccesskey|eyJ|bearer|gh[pousr]_|github_pat_|gl(?:pat|dt|rt|ptt|soat)-|xox[abprs]-|[sr]k_live_|npm_|AIza|sk-|AKIA|ASIA|ferry_|ferryjoin1`;
const SEPS = ['', '_', '-'];
const words = (rule: RedactionRuleName, list: readonly string[]) => list.map((w) => [w, rule] as const);
/**
 * Every string SECRET_HINT matches, spelled out, with the rule each one is a hint for
 * (byte-scan.ts compares bytes with them, case folded; a test checks the two agree).
 */
export const SECRET_HINT_WORDS: readonly (readonly [word: string, rule: RedactionRuleName])[] = [
  ...words('authorization-header', ['authorization']),
  ...words('url-password', ['://']),
  ...words(
    'aws-secret-key',
    SEPS.flatMap((a) => ['', ...SEPS.map((b) => `access${b}`)].map((access) => `secret${a}${access}key`)),
  ),
  ...words(
    'aws-session-token',
    SEPS.map((a) => `session${a}token`),
  ),
  ...words('gcp-private-key', ['"private_key"']),
  ...words('azure-storage-key', ['accountkey', 'sharedaccesskey']),
  ...words('jwt', ['eyJ']),
  ...words('bearer-token', ['bearer']),
  ...words('github-token', [...[...'pousr'].map((c) => `gh${c}_`), 'github_pat_']),
  ...words(
    'gitlab-token',
    ['pat', 'dt', 'rt', 'ptt', 'soat'].map((w) => `gl${w}-`),
  ),
  ...words(
    'slack-token',
    [...'abprs'].map((c) => `xox${c}-`),
  ),
  ...words('stripe-key', ['sk_live_', 'rk_live_']),
  ...words('npm-token', ['npm_']),
  ...words('google-api-key', ['AIza']),
  ...words('openai-key', ['sk-']),
  ...words('ferry-token', ['ferry_', 'ferryjoin1']),
  ...words('aws-access-key', ['AKIA', 'ASIA']),
];

/** The first two characters of every word of SECRET_HINT, any case (hint-scan.ts; a test checks them). */
export const SECRET_HINT_PAIRS = ['au', ':/', 'se', 'sh', '"p', 'ac', 'ey', 'be', 'gh', 'gi', 'gl', 'xo', 'sk', 'rk', 'np', 'ai', 'ak', 'as', 'fe'];

/**
 * Private key block markers. Words are bounded so a marker is at most 96 chars (MAX_MARKER), and
 * each ends in fixed dashes, so a complete match in a prefix of the stream is the same match in
 * the whole stream (which is what makes the hold-back independent of chunking).
 */
export const BEGIN_RE = /-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----|---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----/g;
export const END_RE = /-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----|---- END SSH2 ENCRYPTED PRIVATE KEY ----/g;
export const BEGIN_AT = new RegExp(BEGIN_RE.source, 'y');
export const KEY_MARKER = M('private-key');
/** No BEGIN/END marker is longer than this (the regexes above bound it at 96). */
export const MAX_MARKER = 128;

const Q = one(`["']`);
const BLANKS = run('[ \\t]');
const SEP = seq(opt(Q), alt(seq(BLANKS, alt(lit('=>'), one('[:=]')), BLANKS), seq(one('[ \\t]'), BLANKS)), opt(Q));
const DASH = opt(one('[_-]'));
const label = (...words: string[]) => seq(...words.flatMap((w, i) => (i === 0 ? [lit(w)] : [DASH, lit(w)])));

/**
 * Where a secret rule's match (or a private key block's BEGIN marker) could begin, one pattern
 * per rule, in the rules' order (starts.ts). Each is the rule's shape with its repetition counts
 * dropped: a run of token characters is held back from its first character on, whatever its
 * length so far, until a character that no token may contain ends it.
 */
export const SECRET_STARTS: readonly Start[] = [
  // The heads below hold at most 17, 25, 21 and 19 characters that are not blanks (the labels, quotes, separators).
  startWithRun('(?<![A-Za-z0-9_])', seq(lit('authorization'), opt(Q), BLANKS, lit(':'), BLANKS, opt(Q), one(`[^\\s"']`)), `[^\\r\\n"']`, 17, 'i'),
  startPattern('(?<=[A-Za-z0-9+.-])', seq(lit('://'), run(`[^\\s:/?#@"'<>]`), lit(':'), run(`[^\\s/?#"'<>\\\\]`), lit('@'))),
  startWithRun(
    '(?<![A-Za-z0-9])',
    seq(alt(seq(label('aws', 'secret'), opt(seq(DASH, lit('access'))), DASH, lit('key')), label('secret', 'access', 'key')), SEP),
    '[A-Za-z0-9/+=]',
    25,
    'i',
  ),
  startWithRun('(?<![A-Za-z0-9])', seq(alt(label('aws', 'session', 'token'), label('session', 'token')), SEP), '[A-Za-z0-9/+=]', 21, 'i'),
  startPattern('', seq(lit('"private_key"'), BLANKS, lit(':'), BLANKS, lit('"'), run(`[^"\\\\\\r\\n]|\\\\[^\\r\\n]`), opt(lit('\\')), lit('"'))),
  startWithRun('(?<![A-Za-z0-9])', seq(alt(lit('account'), lit('sharedaccess')), lit('key'), BLANKS, lit('='), BLANKS), '[A-Za-z0-9+/=]', 19, 'i'),
  startPattern('(?<![A-Za-z0-9_-])', seq(lit('eyJ'), run('[A-Za-z0-9_-]'), lit('.'), run('[A-Za-z0-9_-]'), lit('.'), run('[A-Za-z0-9_-]'))),
  startPattern('(?<![A-Za-z0-9_])', seq(lit('bearer'), one('[ \\t]'), BLANKS, run('[A-Za-z0-9._~+/=-]')), 'i'),
  startPattern('(?<![A-Za-z0-9_])', alt(seq(lit('gh'), one('[pousr]'), lit('_'), run('[A-Za-z0-9]')), seq(lit('github_pat_'), run('[A-Za-z0-9_]')))),
  startPattern('(?<![A-Za-z0-9_-])', seq(lit('gl'), alt(lit('pat'), lit('dt'), lit('rt'), lit('ptt'), lit('soat')), lit('-'), run('[A-Za-z0-9_.-]'))),
  startPattern('(?<![A-Za-z0-9_-])', seq(lit('xox'), one('[abprs]'), lit('-'), run('[A-Za-z0-9-]'))),
  startPattern('(?<![A-Za-z0-9_])', seq(one('[sr]'), lit('k_live_'), run('[A-Za-z0-9]'))),
  startPattern('(?<![A-Za-z0-9_])', seq(lit('npm_'), run('[A-Za-z0-9]'))),
  startPattern('(?<![A-Za-z0-9_-])', seq(lit('AIza'), run('[A-Za-z0-9_-]'))),
  startPattern('(?<![A-Za-z0-9_-])', seq(lit('sk-'), run('[A-Za-z0-9_-]'))),
  startPattern('(?<![A-Za-z0-9_-])', alt(seq(lit('ferry_'), one('[uaj]'), lit('_'), run('[A-Za-z0-9_-]')), seq(lit('ferryjoin1.'), run('[A-Za-z0-9_-]')))),
  startPattern('(?<![A-Za-z0-9])', seq(alt(lit('AKIA'), lit('ASIA')), run('[A-Z0-9]'))),
  // Private key BEGIN markers (the engine then holds the whole block until its END).
  startPattern('', alt(seq(lit('-----BEGIN '), run('[A-Z0-9 ]'), lit('-----')), lit('---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----'))),
];
